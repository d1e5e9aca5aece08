// The privacy centre (/settings/privacy): a switch per purpose, the
// consent history, and a review when a major policy change awaits. And
// the public policy page (/privacy) with every published version.
import { h } from '../dom.js';
import { gql } from '../api.js';
import { POLICY_NOW, POLICY_VERSIONS, RECORD_CONSENT, ACCEPT_POLICY, CONSENT_HISTORY } from '../documents.js';
import { t, currentLanguage, formatDateTime, formatDate } from '../i18n.js';
import { liveRegion, notice, say, errorNotice } from '../forms.js';

/** A purpose's title with its kind, its description and the data it uses. */
export function purposeText(purpose) {
  return [
    h('strong', {}, purpose.title),
    purpose.required && h('span', { class: 'badge' }, t('purpose.required')),
    purpose.sensitive && h('span', { class: 'badge' }, t('purpose.sensitive')),
    h('p', {}, purpose.description),
    purpose.dataCategories.length > 0 &&
      h('p', { class: 'hint' }, t('purpose.data', { categories: purpose.dataCategories.join(', ') })),
  ];
}

/** Every consent decision, page by page (200 a page, as the API allows). */
async function loadHistory() {
  const events = [];
  let after = null;
  for (;;) {
    const { myConsentHistory: page } = await gql(CONSENT_HISTORY, { after });
    events.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return events;
    after = page.pageInfo.endCursor;
  }
}

export async function centre({ app }) {
  const [{ policy }, myConsentHistory] = await Promise.all([
    gql(POLICY_NOW, { language: currentLanguage() }), loadHistory(),
  ]);
  const status = liveRegion();
  const granted = new Map(app.me.consents.map((c) => [c.purpose, c.granted]));
  const decided = new Set(myConsentHistory.map((e) => e.purpose));
  const title = (code) => policy.purposes.find((p) => p.code === code)?.title || code;
  const history = h('section', { 'aria-labelledby': 'history-heading' },
    h('h2', { id: 'history-heading' }, t('privacy.history')), historyTable(myConsentHistory, title));

  const review = app.me.needsPolicyAcceptance && h('section', { 'aria-labelledby': 'review-heading' },
    h('h2', { id: 'review-heading' }, t('review.title', { version: policy.version })),
    h('p', {}, t('review.intro')),
    h('h3', {}, t('review.changes')),
    h('p', { class: 'policy-text' }, policy.summaryOfChanges),
    policy.purposes.some((p) => !decided.has(p.code) && !p.required) &&
      h('p', {}, t('review.newPurposes')),
    h('div', { class: 'actions' }, h('button', {
      type: 'button',
      onclick: async () => {
        try {
          app.me = (await gql(ACCEPT_POLICY, { version: policy.version })).acceptPolicy;
          await app.rerender();
          say(document.querySelector('main [role="status"]'), 'ok', t('review.accepted', { version: policy.version }));
        } catch (error) {
          status.replaceChildren(errorNotice(error));
        }
      },
    }, t('review.accept', { version: policy.version }))));

  const switches = policy.purposes.map((purpose) => {
    const input = h('input', {
      type: 'checkbox',
      role: 'switch',
      id: `purpose-${purpose.code}`,
      checked: purpose.required || granted.get(purpose.code) === true,
      disabled: purpose.required,
    });
    input.addEventListener('change', async () => {
      const want = input.checked;
      input.disabled = true;
      try {
        await gql(RECORD_CONSENT, { purpose: purpose.code, granted: want });
        say(status, 'ok', t(want ? 'consent.granted' : 'consent.withdrawn', { purpose: purpose.title }));
        // Only the history changes on the page: the switch keeps its focus.
        history.lastChild.replaceWith(historyTable(await loadHistory(), title));
        await app.refresh();
      } catch (error) {
        input.checked = !want;
        status.replaceChildren(errorNotice(error));
      } finally {
        input.disabled = false;
      }
    });
    return h('div', { class: 'purpose' }, input, h('label', { for: input.id }, purposeText(purpose),
      purpose.required && h('span', { class: 'hint' }, t('purpose.requiredHint'))));
  });

  return [
    h('h1', {}, t('privacy.title')),
    review,
    h('section', { 'aria-labelledby': 'purposes-heading' },
      h('h2', { id: 'purposes-heading' }, t('privacy.purposes')),
      h('p', { class: 'hint' }, t('privacy.purposesHint', { version: policy.version })),
      switches),
    status,
    history,
    h('p', {}, h('a', { href: '/privacy' }, t('privacy.policyLink'))),
  ];
}

/** The consent decisions, newest first. */
function historyTable(events, title) {
  if (events.length === 0) return h('p', {}, t('privacy.noHistory'));
  return h('table', {},
    h('caption', { class: 'visually-hidden' }, t('privacy.history')),
    h('thead', {}, h('tr', {}, ['history.when', 'history.purpose', 'history.decision', 'history.version', 'history.source']
      .map((key) => h('th', { scope: 'col' }, t(key))))),
    h('tbody', {}, [...events].reverse().map((event) => h('tr', {},
      h('td', {}, formatDateTime(event.at)), h('td', {}, title(event.purpose)),
      h('td', {}, t(event.granted ? 'history.granted' : 'history.withdrawn')),
      h('td', {}, event.policyVersion), h('td', {}, t(`source.${event.source}`))))));
}

export async function policy() {
  const { policyVersions } = await gql(POLICY_VERSIONS, { language: currentLanguage() });
  const [current, ...older] = policyVersions;
  return [
    h('h1', {}, t('policy.title')),
    h('p', {}, t('policy.current', { version: current.version, date: formatDate(current.publishedAt) })),
    h('div', { class: 'policy-text', tabindex: '0', role: 'region', 'aria-label': t('signup.policyText') }, current.text),
    h('h2', {}, t('policy.purposes')),
    h('ul', {}, current.purposes.map((p) => h('li', {}, purposeText(p)))),
    h('h2', {}, t('policy.versions')),
    h('ul', {}, policyVersions.map((version) => h('li', {},
      h('details', {},
        h('summary', {}, `${version.version} · ${formatDate(version.publishedAt)}`,
          version.major && h('span', { class: 'badge' }, t('policy.major'))),
        h('h3', {}, t('review.changes')),
        h('p', {}, version.summaryOfChanges),
        h('div', { class: 'policy-text' }, version.text))))),
    older.length === 0 && h('p', { class: 'hint' }, t('policy.onlyOne')),
  ];
}
