// My data: everything Custos holds about the person, shown readably, and
// the same document as a JSON file to keep.
import { h } from '../dom.js';
import { gql } from '../api.js';
import { MY_DATA } from '../documents.js';
import { t, formatDateTime } from '../i18n.js';

export async function render() {
  const { myData } = await gql(MY_DATA);
  const download = h('button', { type: 'button' }, t('data.download'));
  download.addEventListener('click', () => {
    // Made in the page from the answer: no second request, no server file.
    const blob = new Blob([JSON.stringify(myData, null, 2)], { type: 'application/json' });
    const link = h('a', { href: URL.createObjectURL(blob), download: `custos-my-data-${new Date().toISOString().slice(0, 10)}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  });
  return [
    h('h1', {}, t('data.title')),
    h('p', {}, t('data.intro')),
    h('div', { class: 'actions' }, download),
    Object.entries(myData).map(([key, value]) => h('section', {}, h('h2', {}, label(key)), show(value))),
  ];
}

const label = (key) => {
  const text = t(`data.key.${key}`);
  if (text !== `data.key.${key}`) return text;
  const words = key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
};

/** A JSON value as lists and tables a person can read. */
function show(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'hint' }, t('data.none'));
  if (Array.isArray(value)) {
    if (value.length === 0) return h('p', { class: 'hint' }, t('data.none'));
    return h('ol', {}, value.map((item) => h('li', {}, show(item))));
  }
  if (typeof value === 'object') {
    return h('dl', { class: 'data' }, Object.entries(value).map(([key, item]) => [h('dt', {}, label(key)), h('dd', {}, show(item))]));
  }
  if (typeof value === 'boolean') return t(value ? 'data.yes' : 'data.no');
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) return formatDateTime(value);
  return String(value);
}
