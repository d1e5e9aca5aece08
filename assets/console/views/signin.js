// Sign in, and the request for a password reset link.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import { LOGIN, REQUEST_PASSWORD_RESET } from '../documents.js';
import { t } from '../i18n.js';
import { liveRegion, onSubmit, say } from '../forms.js';

export async function signIn({ app, next }) {
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('signin.login'), h('input', { type: 'text', name: 'login', autocomplete: 'username', required: true })),
    field(t('signin.password'), h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('signin.submit'))));
  onSubmit(form, status, async (values) => {
    await gql(LOGIN, { input: { login: values.get('login'), password: values.get('password') } });
    await app.refresh();
    await app.navigate(next || '/');
  });
  return [
    h('h1', {}, t('signin.title')),
    next && h('p', {}, t('signin.needed')),
    form, status,
    h('p', {}, h('a', { href: '/forgot-password' }, t('signin.forgot'))),
    h('p', {}, t('signin.noAccount'), ' ', h('a', { href: '/signup' }, t('nav.signup'))),
  ];
}

export async function forgotPassword() {
  const status = liveRegion();
  const form = h('form', { novalidate: true },
    field(t('forgot.email'), h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('forgot.submit'))));
  onSubmit(form, status, async (values) => {
    await gql(REQUEST_PASSWORD_RESET, { email: values.get('email') });
    // The same answer whether or not the address has an account.
    say(status, 'ok', t('forgot.sent'));
    form.reset();
  });
  return [h('h1', {}, t('forgot.title')), h('p', {}, t('forgot.intro')), form, status];
}
