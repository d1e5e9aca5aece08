// The account console: one page, one view per path. Emailed links
// (/verify-email?token=…) open their view; the token is taken out of the
// address bar before anything else runs, so it stays out of history,
// bookmarks and screenshots.
import { h, replace } from './dom.js';
import { gql } from './api.js';
import { ME, LOGOUT, SET_LANGUAGE } from './documents.js';
import { t, useLanguage, currentLanguage, LANGUAGES, fromBrowser } from './i18n.js';
import { errorNotice, notice } from './forms.js';
import * as home from './views/home.js';
import * as signup from './views/signup.js';
import * as signin from './views/signin.js';
import * as links from './views/links.js';
import * as privacy from './views/privacy.js';
import * as data from './views/data.js';
import * as profile from './views/profile.js';
import * as deletion from './views/deletion.js';
import * as support from './views/support.js';
import * as announcements from './views/announcements.js';

const ROUTES = {
  '/': home.render,
  '/signup': signup.render,
  '/signin': signin.signIn,
  '/forgot-password': signin.forgotPassword,
  '/verify-email': links.verifyEmail,
  '/reset-password': links.resetPassword,
  '/confirm-deletion': links.confirmDeletion,
  '/cancel-deletion': links.cancelDeletion,
  '/guardian-consent': links.guardianConsent,
  '/privacy': privacy.policy,
  '/settings/privacy': privacy.centre,
  '/my-data': data.render,
  '/profile': profile.render,
  '/delete-account': deletion.render,
  '/support': support.render,
  '/announcements': announcements.render,
};

/** Views that need a signed-in account; others work for everybody. */
const SIGNED_IN_ONLY = new Set(['/settings/privacy', '/my-data', '/profile']);

/** What views share: the signed-in account and a way to move on. */
const app = {
  me: null,
  /** The token of the emailed link this view was opened with. */
  token: null,
  async refresh() {
    app.me = (await gql(ME)).me;
    if (app.me) useLanguage(app.me.language);
    renderChrome();
  },
  navigate(path) {
    app.token = null;
    history.pushState(null, '', path);
    return render({ focus: true });
  },
  rerender() {
    return render({ focus: false });
  },
  /** The session ended elsewhere (a confirmed deletion, a reset password). */
  forget() {
    app.me = null;
    renderChrome();
  },
  async signOut() {
    await gql(LOGOUT).catch(() => {});
    app.me = null;
    await app.navigate('/');
  },
};

function navItems() {
  if (app.me) {
    return [['/', 'nav.home'], ['/settings/privacy', 'nav.privacy'], ['/my-data', 'nav.data'],
      ['/profile', 'nav.profile'], ['/delete-account', 'nav.delete'], ['/support', 'nav.support'],
      ['/announcements', 'nav.announcements']];
  }
  return [['/signin', 'nav.signin'], ['/signup', 'nav.signup'], ['/privacy', 'nav.policy'],
    ['/support', 'nav.support'], ['/announcements', 'nav.announcements']];
}

function renderChrome() {
  const path = location.pathname;
  const items = navItems().map(([href, key]) =>
    h('li', {}, h('a', { href, 'aria-current': href === path ? 'page' : null }, t(key))));
  if (app.me) {
    items.push(h('li', {}, h('button', { type: 'button', class: 'secondary', onclick: app.signOut }, t('nav.signout'))));
  }
  const nav = document.getElementById('nav');
  nav.setAttribute('aria-label', t('nav.label'));
  replace(nav, h('ul', {}, items));
  replace(document.getElementById('language'), languageSwitch());
  const banner = document.getElementById('banner');
  replace(banner, app.me?.needsPolicyAcceptance && path !== '/settings/privacy'
    ? notice('warn', t('policy.banner'), ' ', h('a', { href: '/settings/privacy' }, t('policy.review')))
    : null);
  document.querySelector('.skip').textContent = t('skip');
}

function languageSwitch() {
  const names = { 'zh-CN': '中文', en: 'English' };
  return h('div', { role: 'group', 'aria-label': t('language.label') },
    LANGUAGES.map((tag) => h('button', {
      type: 'button',
      class: 'secondary',
      lang: tag,
      'aria-pressed': String(tag === currentLanguage()),
      onclick: () => switchLanguage(tag),
    }, names[tag])));
}

async function switchLanguage(tag) {
  if (app.me) {
    // Signed in: the account's language also decides its mail.
    try {
      app.me = (await gql(SET_LANGUAGE, { language: tag })).setLanguage;
    } catch (error) {
      replace(document.getElementById('banner'), errorNotice(error));
      return;
    }
  }
  useLanguage(tag);
  await app.rerender();
  document.querySelector(`#language button[lang="${tag}"]`)?.focus();
}

async function render({ focus }) {
  const path = ROUTES[location.pathname] ? location.pathname : '/';
  const params = new URLSearchParams(location.search);
  if (params.has('token')) {
    app.token = params.get('token');
    history.replaceState(null, '', location.pathname);
  }
  renderChrome();
  const main = document.getElementById('main');
  replace(main, h('p', {}, t('loading')));
  let content;
  try {
    if (SIGNED_IN_ONLY.has(path) && !app.me) content = await signin.signIn({ app, token: null, next: path });
    else content = await ROUTES[path]({ app, token: app.token });
  } catch (error) {
    content = [h('h1', {}, t('error.title')), errorNotice(error)];
  }
  replace(main, content);
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Custos` : 'Custos';
  if (focus && heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="/"]');
  if (!link || link.hasAttribute('download') || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  app.navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', () => render({ focus: true }));
window.addEventListener('custos:session-expired', () => app.forget());

useLanguage(fromBrowser(navigator.languages || [navigator.language]));
try {
  await app.refresh();
} catch {
  // Signed out, or the server is unreachable: views say so themselves.
}
await render({ focus: false });
