// Support: file a ticket (signed in, or as a guest who is told when no
// reply is possible), and, signed in, read and answer one's tickets.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import { CREATE_TICKET, MY_TICKETS, REPLY_TICKET, CLOSE_TICKET } from '../documents.js';
import { t, formatDateTime } from '../i18n.js';
import { liveRegion, onSubmit, say } from '../forms.js';

const CATEGORIES = ['CONSULTATION', 'COMPLAINT', 'APPEAL', 'DATA_REQUEST', 'OTHER'];

// The thread last answered stays open when the list is drawn again.
let openTicket = null;

export async function render({ app }) {
  const tickets = app.me ? (await gql(MY_TICKETS)).myTickets : [];
  return [
    h('h1', {}, t('support.title')),
    newTicket(app),
    app.me && h('section', { 'aria-labelledby': 'tickets-heading' },
      h('h2', { id: 'tickets-heading' }, t('support.mine')),
      tickets.length === 0 ? h('p', {}, t('support.none')) : tickets.map((ticket) => thread(app, ticket))),
  ];
}

// Filing and being answered need no optional purpose: handling a request
// is necessary for the request itself, so the form asks for nothing first.
function newTicket(app) {
  let status = liveRegion();
  status.id = 'new-ticket-status';
  const guest = !app.me && h('fieldset', { class: 'box' }, h('legend', {}, t('support.contact')),
    h('p', { class: 'hint' }, t('support.guestHint')),
    field(t('support.contactUsername'), h('input', { type: 'text', name: 'contactUsername', autocomplete: 'username' })),
    field(t('support.contactEmail'), h('input', { type: 'email', name: 'contactEmail', autocomplete: 'email' })));
  const form = h('form', { novalidate: true },
    field(t('support.category'), h('select', { name: 'category' },
      CATEGORIES.map((c) => h('option', { value: c }, t(`category.${c}`))))),
    field(t('support.subject'), h('input', { type: 'text', name: 'subject', required: true, maxlength: '200' })),
    field(t('support.body'), h('textarea', { name: 'body', required: true, maxlength: '10000' })),
    guest,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('support.submit'))));
  onSubmit(form, status, async (values) => {
    const input = { category: values.get('category'), subject: values.get('subject'), body: values.get('body') };
    if (!app.me) {
      input.contactUsername = values.get('contactUsername') || null;
      input.contactEmail = values.get('contactEmail') || null;
    }
    const ticket = (await gql(CREATE_TICKET, { input })).createTicket;
    form.reset();
    if (app.me) {
      // Signed in: the new ticket joins "My tickets" below.
      await app.rerender();
      status = document.getElementById('new-ticket-status');
    }
    say(status, ticket.canReply ? 'ok' : 'warn',
      h('p', {}, t('support.filed', { reference: ticket.reference })),
      !ticket.canReply && h('p', {}, t('support.noReply'), ' ', ticket.cannotReplyReason || ''));
  });
  return h('section', { 'aria-labelledby': 'new-ticket-heading' },
    h('h2', { id: 'new-ticket-heading' }, t('support.new')), form, status);
}

function thread(app, ticket) {
  const status = liveRegion();
  const reply = h('form', { novalidate: true },
    field(t('support.reply'), h('textarea', { name: 'body', required: true, maxlength: '10000' })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, t('support.send')),
      ticket.status !== 'CLOSED' && h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          await gql(CLOSE_TICKET, { ticketId: ticket.id });
          await app.rerender();
        },
      }, t('support.close'))));
  onSubmit(reply, status, async (values) => {
    await gql(REPLY_TICKET, { ticketId: ticket.id, body: values.get('body') });
    openTicket = ticket.id;
    await app.rerender();
  });
  return h('details', { open: ticket.id === openTicket },
    h('summary', {}, `${ticket.reference} · ${ticket.subject} · ${t(`ticketStatus.${ticket.status}`)}`),
    h('p', { class: 'hint' }, t(`category.${ticket.category}`), ' · ', formatDateTime(ticket.createdAt)),
    ticket.messages.map((message) => h('div', { class: `message ${message.author === 'STAFF' ? 'staff' : ''}` },
      h('p', { class: 'hint' }, t(`author.${message.author}`), ' · ', formatDateTime(message.createdAt)),
      message.body)),
    reply, status);
}
