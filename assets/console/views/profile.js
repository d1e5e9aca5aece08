// Profile and security: username, email (re-verified), password, and the
// sessions signed in, each of which can be ended.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import {
  CHANGE_USERNAME, CHANGE_EMAIL, CHANGE_PASSWORD, SESSIONS, REVOKE_SESSION, REVOKE_OTHER_SESSIONS,
} from '../documents.js';
import { t, formatDateTime } from '../i18n.js';
import { liveRegion, onSubmit, say, errorNotice } from '../forms.js';

export async function render({ app }) {
  const me = app.me;
  const { mySessions } = await gql(SESSIONS);
  return [
    h('h1', {}, t('profile.title')),
    h('dl', { class: 'data' },
      h('dt', {}, t('profile.username')), h('dd', {}, me.username),
      h('dt', {}, t('profile.email')), h('dd', {}, me.email, ' ',
        h('span', { class: 'badge' }, t(me.emailVerified ? 'profile.verified' : 'profile.unverified'))),
      h('dt', {}, t('profile.since')), h('dd', {}, formatDateTime(me.createdAt))),
    usernameForm(app), emailForm(), passwordForm(), sessions(app, mySessions),
  ];
}

function section(id, title, ...children) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

function usernameForm(app) {
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('profile.newUsername'), h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true }),
      t('signup.usernameRules')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('profile.changeUsername'))));
  onSubmit(form, status, async (values) => {
    app.me = (await gql(CHANGE_USERNAME, { username: values.get('username') })).changeUsername;
    await app.rerender();
    say(document.getElementById('username-status'), 'ok', t('profile.usernameChanged', { name: app.me.username }));
  });
  status.id = 'username-status';
  return section('username-heading', t('profile.changeUsername'), form, status);
}

function emailForm() {
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('profile.newEmail'), h('input', { type: 'email', name: 'newEmail', autocomplete: 'email', required: true })),
    field(t('profile.password'), h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('profile.changeEmail'))));
  onSubmit(form, status, async (values) => {
    await gql(CHANGE_EMAIL, { newEmail: values.get('newEmail'), password: values.get('password') });
    form.reset();
    say(status, 'ok', t('profile.emailSent'));
  });
  return section('email-heading', t('profile.changeEmail'), h('p', { class: 'hint' }, t('profile.emailHint')), form, status);
}

function passwordForm() {
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('profile.currentPassword'), h('input', { type: 'password', name: 'currentPassword', autocomplete: 'current-password', required: true })),
    field(t('profile.newPassword'), h('input', { type: 'password', name: 'newPassword', autocomplete: 'new-password', required: true }),
      t('signup.passwordRules')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('profile.changePassword'))));
  onSubmit(form, status, async (values) => {
    await gql(CHANGE_PASSWORD, { currentPassword: values.get('currentPassword'), newPassword: values.get('newPassword') });
    form.reset();
    say(status, 'ok', t('profile.passwordChanged'));
  });
  return section('password-heading', t('profile.changePassword'), form, status);
}

function sessions(app, list) {
  const status = liveRegion();
  const others = list.filter((s) => !s.current).length;
  const rows = list.map((session) => h('tr', {},
    h('td', {}, session.userAgent || t('sessions.unknownDevice'), session.current && h('span', { class: 'badge' }, t('sessions.current'))),
    h('td', {}, formatDateTime(session.createdAt)),
    h('td', {}, formatDateTime(session.lastSeenAt)),
    h('td', {}, session.current ? '' : h('button', {
      type: 'button',
      class: 'secondary',
      'aria-label': t('sessions.endOne', { date: formatDateTime(session.createdAt) }),
      onclick: async () => {
        try {
          await gql(REVOKE_SESSION, { id: session.id });
          await app.rerender();
        } catch (error) {
          status.replaceChildren(errorNotice(error));
        }
      },
    }, t('sessions.end')))));
  const endOthers = h('button', {
    type: 'button',
    disabled: others === 0,
    onclick: async () => {
      try {
        const ended = (await gql(REVOKE_OTHER_SESSIONS)).revokeOtherSessions;
        await app.rerender();
        say(document.getElementById('sessions-status'), 'ok', t('sessions.ended', { count: ended }));
      } catch (error) {
        status.replaceChildren(errorNotice(error));
      }
    },
  }, t('sessions.endOthers'));
  status.id = 'sessions-status';
  return section('sessions-heading', t('sessions.title'),
    h('table', {},
      h('thead', {}, h('tr', {}, ['sessions.device', 'sessions.started', 'sessions.lastUsed', 'sessions.action']
        .map((key) => h('th', { scope: 'col' }, t(key))))),
      h('tbody', {}, rows)),
    h('div', { class: 'actions' }, endOthers), status);
}
