// Announcements: security incidents and policy updates, public.
import { h } from '../dom.js';
import { gql } from '../api.js';
import { ANNOUNCEMENTS } from '../documents.js';
import { t, formatDateTime } from '../i18n.js';

export async function render() {
  const { announcements } = await gql(ANNOUNCEMENTS);
  return [
    h('h1', {}, t('announcements.title')),
    announcements.length === 0 ? h('p', {}, t('announcements.none')) : announcements.map((item) =>
      h('article', { 'aria-labelledby': `announcement-${item.id}` },
        h('h2', { id: `announcement-${item.id}` }, item.title, h('span', { class: 'badge' }, t(`announcement.${item.kind}`))),
        h('p', { class: 'hint' }, formatDateTime(item.publishedAt)),
        h('p', { class: 'policy-text' }, item.body))),
  ];
}
