// The start page: what the console offers, and what needs attention.
import { h } from '../dom.js';
import { gql } from '../api.js';
import { RESEND_VERIFICATION } from '../documents.js';
import { t, formatDateTime } from '../i18n.js';
import { liveRegion, notice, say, errorNotice } from '../forms.js';

export async function render({ app }) {
  const me = app.me;
  if (!me) {
    return [
      h('h1', {}, t('home.title')),
      h('p', {}, t('home.intro')),
      h('div', { class: 'actions' },
        h('a', { href: '/signin' }, t('nav.signin')),
        h('a', { href: '/signup' }, t('nav.signup'))),
      cards([['/privacy', 'nav.policy', 'home.policy'], ['/support', 'nav.support', 'home.support'],
        ['/announcements', 'nav.announcements', 'home.announcements']]),
    ];
  }
  const status = liveRegion();
  const attention = [];
  if (!me.emailVerified) {
    attention.push(notice('warn', h('p', {}, t('home.unverified')),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          try {
            await gql(RESEND_VERIFICATION);
            say(status, 'ok', t('home.resent'));
          } catch (error) {
            status.replaceChildren(errorNotice(error));
          }
        },
      }, t('home.resend'))));
  }
  if (me.guardianConsent === 'PENDING') attention.push(notice('warn', t('home.guardianPending')));
  if (me.deletionRequest?.status === 'AWAITING_CONFIRMATION') {
    attention.push(notice('warn', t('deletion.awaiting', { date: formatDateTime(me.deletionRequest.requestedAt) })));
  }
  return [
    h('h1', {}, t('home.hello', { name: me.username })),
    attention, status,
    cards([['/settings/privacy', 'nav.privacy', 'home.privacy'], ['/my-data', 'nav.data', 'home.data'],
      ['/profile', 'nav.profile', 'home.profile'], ['/delete-account', 'nav.delete', 'home.delete'],
      ['/support', 'nav.support', 'home.support'], ['/announcements', 'nav.announcements', 'home.announcements']]),
  ];
}

function cards(items) {
  return h('ul', { class: 'cards' },
    items.map(([href, title, text]) => h('li', {}, h('a', { href }, t(title)), h('p', { class: 'hint' }, t(text)))));
}
