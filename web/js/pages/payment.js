// Where the gateway's pay window sends the buyer back
// (?order=&imp_uid=&merchant_uid=&imp_success=). The page never takes the
// payment's word for it: it asks the server to verify the payment, which
// looks it up at the gateway. One Idempotency-Key per payment, kept in the
// tab, so a reload or a retry asks again with the same key.
import { api, newKey } from '../api.js';
import { t } from '../i18n.js';
import { $, badge, krw, param, requireLogin, showInfo, showProblem, startPage } from '../ui.js';

requireLogin();
const order = param('order');
const imp = param('imp_uid');

function keyFor(orderId, impUid) {
  const k = `jangteo.verify.${orderId}.${impUid}`;
  let v = sessionStorage.getItem(k);
  if (!v) {
    v = newKey();
    sessionStorage.setItem(k, v);
  }
  return v;
}

function show(o) {
  $('#result').hidden = false;
  $('#order-id').textContent = String(o.orderId);
  $('#order-status').replaceChildren(badge(o.status));
  $('#order-total').textContent = krw(o.total);
  $('#result').dataset.status = o.status;
}

async function verify() {
  showInfo(t('payment.checking'));
  try {
    const { data } = await api('POST', `/api/v1/orders/${order}/payments`,
      { body: { impUid: imp }, key: keyFor(order, imp) });
    show(data);
    showInfo(`${t('payment.paid', { id: data.orderId })} ${t('payment.paidDetail',
      { total: krw(data.total), card: t(`card.${data.payment.cardCompany}`) })}`,
    [{ label: t('checkout.toOrders'), href: '/orders.html' }]);
  } catch (e) {
    showProblem(e, {
      retry: e.code === 'PAYMENT_NOT_FOUND' || e.retryable ? verify : null,
      actions: [{ label: t('checkout.toOrders'), href: '/orders.html' }],
    });
  }
}

startPage();
if (!order || !/^[0-9]+$/.test(order) || !imp) {
  showInfo(t('payment.none'), [{ label: t('checkout.toOrders'), href: '/orders.html' }]);
} else if (param('imp_success') !== 'true') {
  showInfo(`${t('payment.notDone')} ${t('payment.notDoneDetail')}`, [{ label: t('checkout.toOrders'), href: '/orders.html' }]);
} else {
  verify();
}
