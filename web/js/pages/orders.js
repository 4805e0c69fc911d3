// My orders, newest first, with their status; one that has not shipped
// (PAID or PREPARING) can be cancelled (stock back, points refunded). Each
// links to its page (order.js): the timeline, a return request.
import { api } from '../api.js';
import { t } from '../i18n.js';
import { $, act, badge, cursorTable, el, krw, refreshBalance, requireLogin, showInfo, showProblem, startPage, when }
  from '../ui.js';

const s = requireLogin();

function row(o) {
  const first = o.items[0] ? o.items[0].name : '';
  const what = o.items.length > 1 ? t('orders.andMore', { name: first, n: o.items.length - 1 }) : first;
  const cancel = o.status === 'PAID' || o.status === 'PREPARING'
    ? el('button', { type: 'button', class: 'secondary', 'data-cancel': o.orderId,
      'aria-label': `${t('orders.cancel')} ${o.orderId}`, onclick: (ev) => {
        if (!confirm(t('orders.confirmCancel', { id: o.orderId }))) return;
        act(ev.target, async ({ onWait }) => {
          const { data } = await api('POST', `/api/v1/orders/${o.orderId}/cancel`, { onWait });
          $(`tr[data-order="${o.orderId}"]`).replaceWith(row(data));
          showInfo(t('orders.cancelled', { id: o.orderId, total: krw(data.total) }));
          refreshBalance();
        });
      } }, t('orders.cancel'))
    : null;
  return el('tr', { 'data-order': o.orderId },
    el('td', {}, el('a', { href: `/order.html?id=${o.orderId}`, 'aria-label': t('orders.detail', { id: o.orderId }) },
      String(o.orderId))), el('td', {}, when(o.createdAt)), el('td', {}, what),
    el('td', { class: 'num' }, krw(o.total)), el('td', { class: 'status' }, badge(o.status)), el('td', {}, cancel));
}

const load = cursorTable({ path: `/api/v1/users/${s.userId}/orders`, body: '#orders tbody', row,
  empty: t('orders.empty'), colspan: 6, more: '#orders-more' });

startPage();
load().catch((e) => showProblem(e));
$('#orders-more').addEventListener('click', () => load(true).catch((e) => showProblem(e)));
