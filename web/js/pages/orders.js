// My orders, newest first, with their status; one that has not shipped
// (PAID or PREPARING) can be cancelled (stock back, points refunded, or a
// card payment refunded by the gateway: 202 while the gateway has not yet
// confirmed it); a card order waiting for its payment links to the
// gateway's pay window. Each links to its page (order.js): the timeline, a
// return request.
import { api } from '../api.js';
import { t } from '../i18n.js';
import { $, act, badge, cursorTable, el, krw, payWindow, refreshBalance, requireLogin, showInfo, showProblem, startPage,
  when } from '../ui.js';

const s = requireLogin();

function row(o) {
  const first = o.items[0] ? o.items[0].name : '';
  const what = o.items.length > 1 ? t('orders.andMore', { name: first, n: o.items.length - 1 }) : first;
  const card = !!o.payment;
  let action = null;
  if (o.status === 'PAID' || o.status === 'PREPARING' || o.status === 'CANCEL_PENDING') {
    action = el('button', { type: 'button', class: 'secondary', 'data-cancel': o.orderId,
      'aria-label': `${t('orders.cancel')} ${o.orderId}`, onclick: (ev) => {
        if (!confirm(t(card ? 'orders.confirmCancelCard' : 'orders.confirmCancel', { id: o.orderId }))) return;
        act(ev.target, async ({ onWait }) => {
          const { status, data } = await api('POST', `/api/v1/orders/${o.orderId}/cancel`, { onWait });
          $(`tr[data-order="${o.orderId}"]`).replaceWith(row(data));
          const done = card ? 'orders.cancelledCard' : 'orders.cancelled';
          showInfo(t(status === 202 ? 'orders.cancelPending' : done, { id: o.orderId, total: krw(data.total) }));
          refreshBalance();
        });
      } }, t('orders.cancel'));
  } else if (o.status === 'PAYMENT_PENDING' && card && o.payment.payUrl) {
    action = el('a', { class: 'button', href: payWindow(o.payment.payUrl, o.orderId), 'data-pay': o.orderId,
      'aria-label': `${t('orders.pay')} ${o.orderId}` }, t('orders.pay'));
  }
  return el('tr', { 'data-order': o.orderId },
    el('td', {}, el('a', { href: `/order.html?id=${o.orderId}`, 'aria-label': t('orders.detail', { id: o.orderId }) },
      String(o.orderId))), el('td', {}, when(o.createdAt)), el('td', {}, what),
    el('td', { class: 'num' }, krw(o.total)), el('td', { class: 'status' }, badge(o.status)), el('td', {}, action));
}

const load = cursorTable({ path: `/api/v1/users/${s.userId}/orders`, body: '#orders tbody', row,
  empty: t('orders.empty'), colspan: 6, more: '#orders-more' });

startPage();
load().catch((e) => showProblem(e));
$('#orders-more').addEventListener('click', () => load(true).catch((e) => showProblem(e)));
