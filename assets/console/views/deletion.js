// Delete my account: the request (username and the bound email, as the
// policy asks), where a request stands, and what the receipt will hold.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import { REQUEST_DELETION } from '../documents.js';
import { t, formatDateTime } from '../i18n.js';
import { liveRegion, notice, onSubmit, say } from '../forms.js';
import { receipt } from './links.js';

export async function render({ app }) {
  const request = app.me?.deletionRequest;
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('deletion.username'), h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true })),
    field(t('deletion.email'), h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, t('deletion.submit'))));
  onSubmit(form, status, async (values) => {
    await gql(REQUEST_DELETION, { input: { username: values.get('username'), email: values.get('email') } });
    // The same answer whether or not the two matched an account.
    form.reset();
    say(status, 'ok', t('deletion.sent'));
  });
  return [
    h('h1', {}, t('deletion.title')),
    request && stateOf(request),
    h('p', {}, t('deletion.intro')),
    h('ol', {}, ['deletion.step1', 'deletion.step2', 'deletion.step3', 'deletion.step4'].map((key) => h('li', {}, t(key)))),
    form, status,
    receipt(),
  ];
}

function stateOf(request) {
  switch (request.status) {
    case 'AWAITING_CONFIRMATION':
      return notice('warn', t('deletion.awaiting', { date: formatDateTime(request.requestedAt) }));
    case 'SCHEDULED':
      return notice('warn', t('deletion.purgeAfter', { date: formatDateTime(request.purgeAfter) }));
    case 'CANCELLED':
      return notice('', t('deletion.cancelled'));
    default:
      return null;
  }
}
