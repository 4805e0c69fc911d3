// One auction, live: the price now computed with the server's own rule
// (../auction-price.js) on the server's clock, a countdown to the next drop,
// and a bid button that sends the price on display. The clock is set from
// the answer's asOf (the instant the server priced it), taken at the middle
// of the request, and again at every refresh.
import { api, get } from '../api.js';
import { nextDropAt, priceAt, priceOfStep, ruleOf, stepAt, statusAt } from '../auction-price.js';
import { t } from '../i18n.js';
import { $, act, badge, el, krw, param, refreshBalance, requireLogin, showInfo, showProblem, startPage } from '../ui.js';

const id = param('id');
const GUARD_MS = 400;      // no bid this close to a drop: the two clocks may disagree by a little
const REFRESH_MS = 10000;
let auction = null;
let rule = null;
let offset = 0;            // server clock - Date.now()
let shown = null;          // the price on display

const serverNow = () => Date.now() + offset;

async function fetchAuction() {
  const t0 = Date.now();
  const a = await get(`/api/v1/auctions/${encodeURIComponent(id || '')}`);
  const t1 = Date.now();
  offset = Date.parse(a.asOf) - (t0 + t1) / 2;
  auction = a;
  rule = ruleOf(a);
  return a;
}

function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

function render() {
  const a = auction;
  const box = $('#auction');
  const policy = a.pricePolicy.type === 'CONSTANT'
    ? t('auction.constant', { every: a.variationSeconds, width: krw(a.pricePolicy.variationWidth) })
    : t('auction.percentage', { every: a.variationSeconds, rate: a.pricePolicy.discountRate });
  const qty = el('input', { id: 'bid-qty', type: 'number', min: 1, max: a.maxPerBuyer, value: 1, required: true });
  const bid = el('button', { type: 'submit', id: 'bid' }, '');
  const form = el('form', { id: 'bid-form' }, el('label', { for: 'bid-qty' }, t('auction.quantity')), qty, el('p', {}, bid));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    placeBid(bid, shown, parseInt(qty.value, 10));
  });
  box.replaceChildren(
    el('h2', { id: 'auction-name' }, a.productName),
    el('p', {}, el('span', { id: 'auction-status' }), ' ', a.stock !== undefined
      ? el('span', { id: 'auction-stock' }, t('auction.stock', { stock: a.stock })) : null,
    ' ', el('span', { class: 'muted' }, t('auction.limit', { n: a.maxPerBuyer }))),
    el('p', {}, t('auction.current'), el('br'), el('span', { class: 'price', id: 'current-price', 'aria-live': 'polite' })),
    el('p', {}, el('span', { id: 'drop-label' }), el('br'), el('span', { class: 'countdown', id: 'countdown', role: 'timer' })),
    el('p', { id: 'next-price', class: 'muted' }),
    el('p', { class: 'muted' }, `${t('auction.policy')}: ${policy}`),
    el('p', { class: 'muted', id: 'ends' }),
    form);
  box.removeAttribute('aria-busy');
  tick();
}

// Four times a second: the price, the countdown and the button from the clock.
function tick() {
  if (!rule) return;
  const now = serverNow();
  const stock = auction.stock !== undefined ? auction.stock : 1;
  const status = auction.status === 'SOLD_OUT' ? 'SOLD_OUT' : statusAt(rule, stock, now);
  const price = priceAt(rule, now);
  const next = nextDropAt(rule, now);
  $('#auction-status').replaceChildren(badge(status));
  if ($('#auction-stock')) $('#auction-stock').textContent = t('auction.stock', { stock: auction.stock });
  $('#current-price').textContent = krw(price);
  $('#current-price').dataset.price = String(price);
  if (status === 'WAITING') {
    $('#drop-label').textContent = t('auction.startsIn');
    $('#countdown').textContent = countdown(rule.startsMs - now);
    $('#next-price').textContent = '';
  } else if (next !== null && status === 'RUNNING') {
    $('#drop-label').textContent = t('auction.nextDrop');
    $('#countdown').textContent = countdown(next - now);
    $('#next-price').textContent = `${t('auction.nextPrice')}: ${krw(priceOfStep(rule, stepAt(rule, now) + 1))}`;
  } else {
    $('#drop-label').textContent = status === 'RUNNING' ? t('auction.lastStep') : '';
    $('#countdown').textContent = '';
    $('#next-price').textContent = '';
  }
  $('#ends').textContent = status === 'RUNNING' ? `${t('auction.endsIn')} ${countdown(rule.endsMs - now)}` : '';
  const bid = $('#bid');
  const nearDrop = (next !== null && next - now < GUARD_MS) || now - (rule.startsMs + stepAt(rule, now) * rule.variationMs) < GUARD_MS;
  if (!bid.hasAttribute('aria-busy')) {
    bid.disabled = status !== 'RUNNING' || nearDrop;
    bid.textContent = nearDrop && status === 'RUNNING' ? t('auction.dropping') : t('auction.bid', { price: krw(price) });
  }
  if (shown !== null && price !== shown) refresh();
  shown = price;
}

async function refresh() {
  try {
    await fetchAuction();
  } catch {
    // the clock goes on; the next refresh tries again
  }
}

function placeBid(button, price, quantity) {
  act(button, async ({ key, onWait }) => {
    const r = await api('POST', `/api/v1/auctions/${auction.id}/bids`, { body: { price, quantity }, key, onWait });
    let receipt = r.data;
    showInfo(t('auction.queued'));
    for (let i = 0; receipt.status === 'PENDING' && i < 60; i++) {
      await new Promise((res) => setTimeout(res, 500));
      receipt = await get(`/api/v1/receipts/${receipt.receiptId}`);
    }
    showInfo(t('auction.receipt', { id: receipt.receiptId, status: t(`status.${receipt.status}`) }),
      [{ label: t('nav.receipts'), href: '/receipts.html' }]);
    $('#messages').dataset.receiptStatus = receipt.status;
    refreshBalance();
    refresh();
  }, {
    problemActions: (e) => (e.code === 'PRICE_MISMATCH' && e.problem.currentPrice
      ? [{ label: t('auction.bidNow', { price: krw(e.problem.currentPrice) }),
        onClick: (ev) => placeBid(ev.target, e.problem.currentPrice, quantity) }]
      : []),
  });
}

startPage();
requireLogin();
fetchAuction().then(() => {
  document.title = `${auction.productName} — ${t('site.name')}`;
  render();
  setInterval(tick, 250);
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}).catch((e) => {
  $('#auction').replaceChildren();
  $('#auction').removeAttribute('aria-busy');
  showProblem(e, { actions: [{ label: t('nav.auctions'), href: '/auctions.html' }] });
});
