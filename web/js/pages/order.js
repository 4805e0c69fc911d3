// One order: its status and how it got there (every move, oldest first,
// with who made it), its lines, and what the buyer may do now: cancel
// while it is PAID or PREPARING, ask for a return while it is DELIVERED and
// the return window is open. Every action answers with the order as it now
// stands, which the page shows in place.
import { api, get } from '../api.js';
import { t } from '../i18n.js';
import { $, act, badge, el, krw, param, refreshBalance, requireLogin, showInfo, showProblem, startPage, when }
  from '../ui.js';

requireLogin();
const id = Number(param('id'));

function step(label, at, by) {
  return el('li', {}, el('span', { class: 'when' }, when(at)), ' ', label,
    by ? el('span', { class: 'by' }, ` (${t(`order.by.${by}`)})`) : null);
}

let shown = null;   // the order as last shown

function show(o) {
  shown = o;
  $('#order-title').textContent = t('order.heading', { id: o.orderId });
  $('#order-status').replaceChildren(badge(o.status));
  $('#order-total').textContent = krw(o.total);
  $('#order-tracking').textContent = o.trackingNumber || t('common.none');
  $('#order-return-until').textContent = o.returnableUntil ? when(o.returnableUntil) : t('common.none');
  $('#timeline').replaceChildren(step(t('order.placed'), o.paidAt || o.createdAt),
    ...(o.history || []).map((h) => step(t(`status.${h.to}`), h.at, h.actor)));
  $('#order-items').replaceChildren(...o.items.map((i) =>
    el('li', {}, `${i.name} × ${i.quantity} — ${krw(i.lineTotal)}`)));
  if (o.returnReason) $('#order-items').after(el('p', { class: 'muted' }, t('order.returnReason', { reason: o.returnReason })));
  // a card cancel waiting for the gateway's refund may be asked again
  $('#order-cancel').hidden = !(o.status === 'PAID' || o.status === 'PREPARING' || o.status === 'CANCEL_PENDING');
  const open = o.status === 'DELIVERED' && o.returnableUntil && new Date(o.returnableUntil) > new Date();
  $('#return').hidden = !open;
  if (o.status === 'DELIVERED' && !open) showInfo(t('order.returnClosed'));
  $('#order').hidden = false;
}

async function load() {
  show(await get(`/api/v1/orders/${id}`));
}

startPage();
load().catch((e) => showProblem(e));
$('#order-cancel').addEventListener('click', (ev) => {
  const card = !!(shown && shown.payment);
  if (!confirm(t(card ? 'orders.confirmCancelCard' : 'orders.confirmCancel', { id }))) return;
  act(ev.target, async ({ onWait }) => {
    // a card order's refund goes through the gateway: 200 once it is
    // refunded, 202 while the refund is on its way (CANCEL_PENDING)
    const { status, data } = await api('POST', `/api/v1/orders/${id}/cancel`, { onWait });
    show(data);
    const done = card ? 'order.cancelledCard' : 'order.cancelled';
    showInfo(t(status === 202 ? 'order.cancelPending' : done, { total: krw(data.total) }));
    refreshBalance();
  });
});
$('#return').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!ev.target.reportValidity()) return;
  act(ev.target.querySelector('[type="submit"]'), async ({ key, onWait }) => {
    const { data } = await api('POST', `/api/v1/orders/${id}/return`,
      { body: { reason: $('#return-reason').value }, key, onWait });
    show(data);
    showInfo(t('order.returnRequested'));
  });
});
