// Sign-up: the policy and every purpose are shown before anything is sent.
// Required purposes are explained, optional ones start off, and sensitive
// ones are asked one by one in a group of their own.
import { h, field } from '../dom.js';
import { gql } from '../api.js';
import { POLICY_NOW, SIGNUP } from '../documents.js';
import { t, currentLanguage } from '../i18n.js';
import { liveRegion, onSubmit, say } from '../forms.js';
import { purposeText } from './privacy.js';

export async function render({ app }) {
  if (app.me) return [h('h1', {}, t('signup.title')), h('p', {}, t('signup.already'))];
  const policy = (await gql(POLICY_NOW, { language: currentLanguage() })).policy;
  const required = policy.purposes.filter((p) => p.required);
  const optional = policy.purposes.filter((p) => !p.required && !p.sensitive);
  const sensitive = policy.purposes.filter((p) => !p.required && p.sensitive);
  const status = liveRegion();

  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true });
  const strength = h('p', { class: 'hint', 'aria-live': 'polite' });
  password.addEventListener('input', () => { strength.textContent = strengthHint(password.value); });
  const guardian = field(t('signup.guardianEmail'),
    h('input', { type: 'email', name: 'guardianEmail', autocomplete: 'off' }), t('signup.guardianHint'));
  guardian.hidden = true;
  const ages = ['ADULT', 'SELF_SUPPORTING_16_PLUS', 'MINOR'].map((age) => choice('radio', 'age', age,
    t(`age.${age}`), age === 'ADULT', () => { guardian.hidden = age !== 'MINOR'; }));

  const form = h('form', { novalidate: true },
    field(t('signup.username'), h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true }),
      t('signup.usernameRules')),
    field(t('signup.email'), h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true }),
      t('signup.emailHint')),
    field(t('signup.password'), password, t('signup.passwordRules')),
    strength,
    h('fieldset', {}, h('legend', {}, t('signup.age')), ages),
    guardian,
    h('section', { 'aria-labelledby': 'policy-heading' },
      h('h2', { id: 'policy-heading' }, t('signup.policy', { version: policy.version })),
      h('div', { class: 'policy-text', tabindex: '0', role: 'region', 'aria-label': t('signup.policyText') }, policy.text),
      h('h3', {}, t('signup.required')),
      h('p', { class: 'hint' }, t('signup.requiredHint')),
      h('ul', {}, required.map((p) => h('li', {}, purposeText(p)))),
      optional.length > 0 && h('fieldset', { class: 'box' }, h('legend', {}, t('signup.optional')),
        h('p', { class: 'hint' }, t('signup.optionalHint')),
        optional.map((p) => choice('checkbox', 'grantPurposes', p.code, purposeText(p), false))),
      sensitive.length > 0 && h('fieldset', { class: 'box' }, h('legend', {}, t('signup.sensitive')),
        h('p', { class: 'hint' }, t('signup.sensitiveHint')),
        sensitive.map((p) => choice('checkbox', 'grantPurposes', p.code,
          [purposeText(p), ' ', t('signup.sensitiveAsk')], false)))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('signup.submit', { version: policy.version }))));

  onSubmit(form, status, async (values) => {
    const minor = values.get('age') === 'MINOR';
    await gql(SIGNUP, {
      input: {
        username: values.get('username'),
        email: values.get('email'),
        password: values.get('password'),
        acceptPolicyVersion: policy.version,
        grantPurposes: values.getAll('grantPurposes'),
        age: values.get('age'),
        guardianEmail: minor ? values.get('guardianEmail') : null,
      },
    });
    form.replaceWith(h('p', {}, t(minor ? 'signup.doneMinor' : 'signup.done')));
    say(status, 'ok', t('signup.checkMail'));
  });
  return [h('h1', {}, t('signup.title')), h('p', {}, t('signup.intro')), form, status];
}

/** A checkbox or radio button with its label beside it. */
export function choice(type, name, value, label, checked, onchange) {
  const input = h('input', { type, name, value, checked, onchange });
  input.id = `${name}-${value}`;
  return h('div', { class: 'choice' }, input, h('label', { for: input.id }, label));
}

/** A rough hint only: the server decides (length, common passwords, the username). */
function strengthHint(value) {
  if (!value) return '';
  if (value.length < 8) return t('strength.short');
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(value)).length;
  if (value.length >= 14 || (value.length >= 10 && kinds >= 3)) return t('strength.good');
  return t('strength.fair');
}
