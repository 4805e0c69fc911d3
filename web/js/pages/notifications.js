// What the shop told me, newest first (the messages are written in Korean
// by the server, as its users read them); unread ones can be marked read,
// and an order's message links to the order.
import { api } from '../api.js';
import { t } from '../i18n.js';
import { $, act, cursorTable, el, requireLogin, showProblem, startPage, when } from '../ui.js';

const s = requireLogin();

function row(n) {
  const read = n.readAt
    ? el('span', { class: 'muted' }, t('notifications.readDone'))
    : el('button', { type: 'button', class: 'secondary', 'aria-label': `${t('notifications.read')}: ${n.message}`,
      onclick: (ev) => act(ev.target, async ({ onWait }) => {
        const { data } = await api('POST', `/api/v1/users/${s.userId}/notifications/${n.id}/read`, { onWait });
        ev.target.closest('tr').replaceWith(row(data));
      }) }, t('notifications.read'));
  const link = n.type.startsWith('order.')
    ? el('a', { href: `/order.html?id=${n.refId}` }, t('notifications.open')) : null;
  return el('tr', { 'data-notification': n.id, class: n.readAt ? 'read' : 'unread' },
    el('td', {}, when(n.createdAt)), el('td', { class: 'message' }, n.message, link ? ' ' : null, link),
    el('td', {}, read));
}

const load = cursorTable({ path: `/api/v1/users/${s.userId}/notifications`, body: '#notifications tbody', row,
  query: () => ($('#unread').checked ? { unread: 'true' } : {}), empty: t('notifications.empty'), colspan: 3,
  more: '#notifications-more' });

startPage();
load().catch((e) => showProblem(e));
$('#unread').addEventListener('change', () => load().catch((e) => showProblem(e)));
$('#notifications-more').addEventListener('click', () => load(true).catch((e) => showProblem(e)));
