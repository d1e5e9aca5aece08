// The pages behind emailed links. Each calls its mutation with the token
// the page was opened with (already gone from the address bar) and says
// clearly what happened, or that the link is used or expired.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import {
  VERIFY_EMAIL, RESET_PASSWORD, CONFIRM_DELETION, CANCEL_DELETION, GUARDIAN_REQUEST, GUARDIAN_ANSWER,
} from '../documents.js';
import { t, formatDateTime } from '../i18n.js';
import { liveRegion, notice, onSubmit, say, errorNotice } from '../forms.js';
import { purposeText } from './privacy.js';

const noToken = (title) => [h('h1', {}, t(title)), notice('warn', t('link.missing'))];

function linkFailed(error, hintKey) {
  if (error.code === 'INVALID_TOKEN') return notice('warn', h('p', {}, t('link.invalid')), h('p', {}, t(hintKey)));
  return errorNotice(error);
}

// Verifying runs as the page opens: the link itself is the person's action.
const verified = new Map();

export async function verifyEmail({ app, token }) {
  if (!token) return noToken('verify.title');
  // A re-render (a language switch) must not spend the link twice.
  if (!verified.has(token)) verified.set(token, gql(VERIFY_EMAIL, { token }));
  try {
    await verified.get(token);
  } catch (error) {
    return [h('h1', {}, t('verify.title')), linkFailed(error, 'verify.again')];
  }
  if (app.me) await app.refresh();
  return [h('h1', {}, t('verify.title')), notice('ok', t('verify.done')),
    h('p', {}, h('a', { href: app.me ? '/' : '/signin' }, t(app.me ? 'nav.home' : 'nav.signin')))];
}

export async function resetPassword({ app, token }) {
  if (!token) return noToken('reset.title');
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('reset.password'), h('input', { type: 'password', name: 'newPassword', autocomplete: 'new-password', required: true }),
      t('signup.passwordRules')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('reset.submit'))));
  onSubmit(form, status, async (values) => {
    try {
      await gql(RESET_PASSWORD, { token, newPassword: values.get('newPassword') });
    } catch (error) {
      if (error.code !== 'INVALID_TOKEN') throw error;
      status.replaceChildren(linkFailed(error, 'reset.again'));
      return;
    }
    app.forget();
    form.replaceWith(h('p', {}, h('a', { href: '/signin' }, t('nav.signin'))));
    say(status, 'ok', t('reset.done'));
  });
  return [h('h1', {}, t('reset.title')), form, status];
}

export async function confirmDeletion({ app, token }) {
  if (!token) return noToken('confirm.title');
  const status = liveRegion();
  const button = h('button', { type: 'button', class: 'danger' }, t('confirm.submit'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const request = (await gql(CONFIRM_DELETION, { token })).confirmAccountDeletion;
      app.forget();
      button.remove();
      say(status, 'ok', h('p', {}, t('confirm.done')),
        h('p', {}, h('strong', {}, t('deletion.purgeAfter', { date: formatDateTime(request.purgeAfter) }))),
        h('p', {}, t('confirm.cancelHint')));
    } catch (error) {
      button.disabled = false;
      status.replaceChildren(linkFailed(error, 'confirm.again'));
    }
  });
  return [h('h1', {}, t('confirm.title')), h('p', {}, t('confirm.intro')), receipt(), h('div', { class: 'actions' }, button), status];
}

export async function cancelDeletion({ token }) {
  if (!token) return noToken('cancel.title');
  const status = liveRegion();
  const button = h('button', { type: 'button' }, t('cancel.submit'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await gql(CANCEL_DELETION, { token });
      button.remove();
      say(status, 'ok', h('p', {}, t('cancel.done')), h('p', {}, h('a', { href: '/signin' }, t('nav.signin'))));
    } catch (error) {
      button.disabled = false;
      status.replaceChildren(linkFailed(error, 'cancel.again'));
    }
  });
  return [h('h1', {}, t('cancel.title')), h('p', {}, t('cancel.intro')), h('div', { class: 'actions' }, button), status];
}

export async function guardianConsent({ token }) {
  if (!token) return noToken('guardian.title');
  const request = (await gql(GUARDIAN_REQUEST, { token })).guardianConsentRequest;
  if (!request) return [h('h1', {}, t('guardian.title')), notice('warn', t('link.invalid'))];
  const status = liveRegion();
  const answer = (granted) => async () => {
    for (const button of buttons.querySelectorAll('button')) button.disabled = true;
    try {
      await gql(GUARDIAN_ANSWER, { token, granted });
      buttons.remove();
      say(status, 'ok', t(granted ? 'guardian.granted' : 'guardian.refused'));
    } catch (error) {
      for (const button of buttons.querySelectorAll('button')) button.disabled = false;
      status.replaceChildren(linkFailed(error, 'guardian.again'));
    }
  };
  const buttons = h('div', { class: 'actions' },
    h('button', { type: 'button', onclick: answer(true) }, t('guardian.grant')),
    h('button', { type: 'button', class: 'danger', onclick: answer(false) }, t('guardian.refuse')));
  return [
    h('h1', {}, t('guardian.title')),
    h('p', {}, t('guardian.intro', { name: request.username })),
    h('h2', {}, t('guardian.purposes')),
    h('ul', {}, request.purposes.map((p) => h('li', {}, purposeText(p)))),
    h('p', {}, t('guardian.refuseMeans')),
    buttons, status,
  ];
}

/** What the erasure receipt mailed after the purge contains. */
export function receipt() {
  return h('section', {}, h('h2', {}, t('receipt.title')), h('p', {}, t('receipt.intro')),
    h('ul', {}, ['receipt.when', 'receipt.what', 'receipt.kept'].map((key) => h('li', {}, t(key)))));
}
