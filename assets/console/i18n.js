// The console's languages. Every visible string lives in strings-<tag>.js;
// the language is the account's when signed in, else the browser's first
// supported one, else zh-CN (the platform's default).
import en from './strings-en.js';
import zhCN from './strings-zh-CN.js';

const TABLES = { 'zh-CN': zhCN, en };
export const LANGUAGES = Object.keys(TABLES);

let current = fromBrowser(navigator.languages || [navigator.language]);

/** The supported language for a list of BCP 47 tags, in order of preference. */
export function fromBrowser(tags) {
  for (const tag of tags) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (primary === 'zh') return 'zh-CN';
    if (primary === 'en') return 'en';
  }
  return 'zh-CN';
}

export const currentLanguage = () => current;

export function useLanguage(tag) {
  current = TABLES[tag] ? tag : 'zh-CN';
  document.documentElement.lang = current;
}

/** The string `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = TABLES[current][key] ?? TABLES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ''));
}

/** A date and time in the console's language and the browser's time zone. */
export function formatDateTime(iso) {
  if (!iso) return '';
  return new Intl.DateTimeFormat(current, { dateStyle: 'long', timeStyle: 'short' }).format(new Date(iso));
}

/** A date alone. */
export function formatDate(iso) {
  if (!iso) return '';
  return new Intl.DateTimeFormat(current, { dateStyle: 'long' }).format(new Date(iso));
}
