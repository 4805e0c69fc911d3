// Checkout: the lines of this tab's order list priced from the server, the
// shipping form, and payment with points or by card. The total shown is
// sent as expectedTotal, so the server never charges another amount without
// asking: 409 PRICE_CHANGED offers the new total, 409 OUT_OF_STOCK removes
// the short lines, INSUFFICIENT_BALANCE leads to the points page. A card
// order holds the stock and answers with the gateway's pay page (payUrl, the
// local simulator's): the browser goes there, and comes back to
// payment.html, which asks the server to verify the payment.
import { api, get } from '../api.js';
import { t } from '../i18n.js';
import {
  $, act, checkoutList, el, krw, onSubmit, orderSteps, payWindow, readShipping, requireLogin, shippingForm, showInfo, showPaid,
  showProblem, startPage,
} from '../ui.js';

const FREE_FROM = 30000;   // the server's rule (src/domain/orders.h); the server's total wins
const FEE = 3000;
requireLogin();
let lines = [];            // [{productId, optionId, quantity, name, unitPrice}]

async function price() {
  const items = checkoutList.get();
  const products = await Promise.all(items.map((i) => get(`/api/v1/products/${i.productId}`).catch(() => null)));
  lines = items.map((i, n) => {
    const p = products[n];
    if (!p) return null;
    const o = i.optionId ? p.options.find((x) => x.id === i.optionId) : null;
    return { ...i, name: o ? `${p.name} / ${o.name}` : p.name, unitPrice: p.price + (o ? o.extraPrice : 0) };
  }).filter(Boolean);
  checkoutList.set(lines.map(({ productId, optionId, quantity }) => ({ productId, optionId, quantity })));
  render();
}

function totals() {
  const items = lines.reduce((s, l) => s + l.unitPrice * l.quantity, 0);
  const fee = items > 0 && items < FREE_FROM ? FEE : 0;
  return { items, fee, total: items + fee };
}

function save() {
  checkoutList.set(lines.map(({ productId, optionId, quantity }) => ({ productId, optionId, quantity })));
  render();
}

function render() {
  const body = $('#lines tbody');
  body.replaceChildren(...lines.map((l, i) => {
    const qty = el('input', { type: 'number', min: 1, max: 999, value: l.quantity, 'aria-label': `${l.name} ${t('product.quantity')}`,
      onchange: (ev) => { l.quantity = Math.max(1, Math.min(999, parseInt(ev.target.value, 10) || 1)); save(); } });
    return el('tr', { 'data-product': l.productId },
      el('td', {}, el('a', { href: `/product.html?id=${l.productId}` }, l.name)),
      el('td', { class: 'num' }, krw(l.unitPrice)), el('td', {}, qty),
      el('td', { class: 'num' }, krw(l.unitPrice * l.quantity)),
      el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-label': `${t('checkout.remove')}: ${l.name}`,
        onclick: () => { lines.splice(i, 1); save(); } }, t('checkout.remove'))));
  }));
  if (!lines.length) body.append(el('tr', {}, el('td', { colspan: 5 }, t('checkout.empty'))));
  const x = totals();
  $('#items-total').textContent = krw(x.items);
  $('#fee').textContent = krw(x.fee);
  $('#total').textContent = krw(x.total);
  $('#total').dataset.total = String(x.total);
  $('#pay').disabled = !lines.length;
  const card = method() === 'CARD';
  $('#card-box').hidden = !card;
  $('#pay').textContent = t(card ? 'checkout.payCard' : 'checkout.pay');
}

function method() {
  return new FormData($('#order')).get('method') === 'CARD' ? 'CARD' : 'POINTS';
}


async function pay({ key, onWait }, expectedTotal) {
  const body = {
    items: lines.map((l) => (l.optionId ? { productId: l.productId, optionId: l.optionId, quantity: l.quantity }
      : { productId: l.productId, quantity: l.quantity })),
    shipping: readShipping($('#order')),
    expectedTotal,
  };
  const card = method() === 'CARD';
  if (card) body.payment = { method: 'CARD', cardCompany: new FormData($('#order')).get('cardCompany') };
  const { data } = await api('POST', '/api/v1/orders', { body, key, onWait });
  lines = [];
  checkoutList.set([]);
  render();
  if (card) {
    $('#messages').dataset.order = String(data.orderId);
    if (data.payment.payUrl) {
      showInfo(t('checkout.toPay', { id: data.orderId }));
      location.assign(payWindow(data.payment.payUrl, data.orderId));
    } else {
      showInfo(t('checkout.noPayUrl', { id: data.orderId, uid: data.payment.merchantUid, total: krw(data.total) }),
        [{ label: t('checkout.toOrders'), href: '/orders.html' }]);
    }
    return;
  }
  showPaid(data);
}

function nextSteps(err) {
  return orderSteps(err, {
    removeShort: (ids) => {
      lines = lines.filter((l) => !ids.includes(l.productId));
      save();
      price();
    },
    payAt: (ev, now) => act(ev.target, (a) => pay(a, now), { problemActions: nextSteps, after: render }),
  });
}

startPage();
// the shipping form, then how to pay: points, or a card of one of the
// gateway's companies
const radio = (value, key, checked) => el('label', {},
  el('input', { type: 'radio', name: 'method', value, checked, onchange: render }), ' ', el('span', {}, t(key)));
shippingForm($('#order'), 'checkout.pay', [
  el('fieldset', { id: 'method' }, el('legend', {}, t('checkout.method')),
    radio('POINTS', 'checkout.byPoints', true), radio('CARD', 'checkout.byCard', false),
    el('span', { id: 'card-box', hidden: true },
      el('label', { for: 'card-company' }, t('checkout.cardCompany')),
      el('select', { id: 'card-company', name: 'cardCompany' },
        ...['NH', 'SHINHAN', 'KAKAOBANK'].map((c) => el('option', { value: c }, t(`card.${c}`)))))),
]);
price().catch((e) => showProblem(e));
onSubmit($('#order'), (a) => pay(a, totals().total), { problemActions: nextSteps, after: render });
