// What every page shares: the header (menu, who is logged in and their
// balance, the language switch), the message area (problems shown by their
// title and detail, never as raw JSON), actions with progress and retry,
// formatting, and the checkout list kept in sessionStorage.

import { api, ApiError, get, newKey, session } from './api.js';
import { applyI18n, lang, own, setLang, t } from './i18n.js';

export const $ = (sel, root = document) => root.querySelector(sel);

// el('a', {href: '/x', class: 'y'}, 'text', child, ...)
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const krw = (n) => t('common.krw', { n: Number(n).toLocaleString('ko-KR') });

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(lang() === 'ko' ? 'ko-KR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}

export function badge(status) {
  return el('span', { class: `badge ${status}` }, t(`status.${status}`));
}

export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

// The gateway's pay window for a card order, set to send the buyer back to
// payment.html for that order (the gateway adds imp_uid, merchant_uid and
// imp_success), in the page's language.
export function payWindow(payUrl, orderId) {
  const back = new URL('/payment.html', location.origin);
  back.searchParams.set('order', String(orderId));
  const u = new URL(payUrl);
  u.searchParams.set('return', back.toString());
  u.searchParams.set('lang', lang());
  return u.toString();
}

// --- messages -------------------------------------------------------------

function box() {
  return $('#messages');
}

export function clearMessages() {
  box().replaceChildren();
}

export function showInfo(text, actions = []) {
  box().replaceChildren(el('div', { class: 'msg info', role: 'status' }, el('p', {}, text), actionRow(actions)));
}

function actionRow(actions) {
  if (!actions.length) return null;
  return el('div', { class: 'actions' }, actions.map((a) => (a.href
    ? el('a', { class: 'button secondary', href: a.href }, a.label)
    : el('button', { type: 'button', class: 'secondary', onclick: a.onClick }, a.label))));
}

// A problem: a heading in the user's language (by code), then the API's
// own title and detail; retry re-sends the same request (same key).
export function showProblem(err, { retry, actions = [] } = {}) {
  const p = err instanceof ApiError ? err.problem : { title: String(err.message || err), detail: '' };
  const code = err instanceof ApiError ? err.code : '';
  const heading = (code && own(`problem.${code}`)) || p.title || t('common.network');
  const lines = [];
  if (code === 'NETWORK') {
    lines.push(t('common.networkDetail'));
  } else {
    if (p.title && p.title !== heading) lines.push(p.title);
    if (p.detail && p.detail !== p.title) lines.push(p.detail);
  }
  const all = [...actions];
  if (retry) all.unshift({ label: t('common.retry'), onClick: retry });
  box().replaceChildren(el('div', { class: 'msg error', role: 'alert', 'data-code': code || null },
    el('h2', {}, heading), lines.map((l) => el('p', {}, l)), actionRow(all)));
}

// The countdown of a retry the server asked for (503 + Retry-After).
export function showWait(seconds) {
  const old = $('#wait');
  if (seconds <= 0) {
    if (old) old.remove();
    return;
  }
  const m = el('div', { class: 'msg wait', id: 'wait', role: 'status' }, t('common.wait', { s: seconds }));
  if (old) old.replaceWith(m);
  else box().prepend(m);
}

// Runs one user action: progress on the button, a fresh Idempotency-Key
// for this click, the server's retries with a countdown, and on failure the
// problem with "try again" (the same key) when trying again can help.
// run({key, onWait}) does the work; problemActions(err) adds next steps;
// after() runs once the button is itself again.
export function act(button, run, { problemActions, after } = {}) {
  const key = newKey();
  const attempt = async () => {
    clearMessages();
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await run({ key, onWait: showWait });
    } catch (e) {
      showWait(0);
      showProblem(e, {
        retry: e instanceof ApiError && e.retryable ? attempt : null,
        actions: problemActions ? problemActions(e) : [],
      });
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (after) after();
    }
  };
  return attempt();
}

// A form's submit, as act() on its submit button.
export function onSubmit(form, run, opts) {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    act(form.querySelector('[type="submit"]'), run, opts);
  });
}

// A cursor-paged list (limit + nextCursor) in a table body: returns
// load(more), which (re)fills the body from the first page, or appends the
// next one; the "more" button shows while there is one. query() gives the
// page's own parameters.
export function cursorTable({ path, query = () => ({}), body, row, empty, colspan, more }) {
  let cursor = null;
  return async (append = false) => {
    const q = new URLSearchParams({ limit: 20, ...query() });
    if (append && cursor) q.set('cursor', cursor);
    const page = await get(`${path}?${q}`);
    const tbody = $(body);
    if (append) tbody.append(...page.items.map(row));
    else tbody.replaceChildren(...page.items.map(row));
    if (!tbody.children.length) tbody.append(el('tr', {}, el('td', { colspan }, empty)));
    cursor = page.nextCursor;
    $(more).hidden = !cursor;
  };
}

// --- the logged-in user ------------------------------------------------------

export function requireLogin() {
  const s = session.get();
  if (!s) {
    location.replace(`/login.html?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error('not logged in');
  }
  return s;
}

// Re-reads the balance into the header (after a charge, order or cancel).
export async function refreshBalance() {
  const s = session.get();
  const slot = $('#balance');
  if (!s || !slot) return null;
  try {
    const u = await get(`/api/v1/users/${s.userId}`);
    slot.textContent = t('who.balance', { balance: krw(u.balance) });
    slot.dataset.balance = String(u.balance);
    return u;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) renderHeader();
    return null;
  }
}

const PAGES = [
  ['/', 'nav.products'],
  ['/auctions.html', 'nav.auctions'],
  ['/checkout.html', 'nav.checkout'],
  ['/cart.html', 'nav.cart', 'user'],
  ['/wishlist.html', 'nav.wishlist', 'user'],
  ['/orders.html', 'nav.orders', 'user'],
  ['/points.html', 'nav.points', 'user'],
  ['/receipts.html', 'nav.receipts', 'user'],
  ['/notifications.html', 'nav.notifications', 'user'],
  ['/account.html', 'nav.account', 'user'],
  ['/seller.html', 'nav.seller', 'seller'],
  ['/admin.html', 'nav.admin', 'admin'],
  ['/api/docs', 'nav.docs'],
];

export function renderHeader() {
  const s = session.get();
  const here = location.pathname === '/index.html' ? '/' : location.pathname;
  const show = (need) => !need || (s && (need === 'user' || (need === 'seller' && s.role !== 'BUYER')
    || (need === 'admin' && s.role === 'ADMIN')));
  const links = PAGES.filter(([, , need]) => show(need)).map(([href, key]) =>
    el('li', {}, el('a', { href, 'aria-current': href === here ? 'page' : null }, t(key))));
  const who = el('div', { class: 'who' });
  if (s) {
    who.append(el('span', { id: 'who' }, s.name || s.email || ''), el('span', { id: 'balance' }, ''),
      el('button', { type: 'button', id: 'nav-logout', onclick: logout }, t('nav.logout')));
  } else {
    who.append(el('a', { href: `/login.html?next=${encodeURIComponent(location.pathname + location.search)}`, id: 'nav-login' },
      t('nav.login')));
  }
  who.append(el('button', {
    type: 'button', id: 'lang', lang: lang() === 'ko' ? 'en' : 'ko', title: t('lang.label'),
    onclick: () => { setLang(lang() === 'ko' ? 'en' : 'ko'); location.reload(); },
  }, t('lang.switch')));
  const header = $('#site-header');
  header.className = 'site';
  header.replaceChildren(el('div', { class: 'bar' },
    el('a', { class: 'logo', href: '/' }, t('site.name')),
    el('nav', { 'aria-label': t('nav.main') }, el('ul', {}, links)),
    who));
  if (s) refreshBalance();
}

async function logout() {
  try {
    await api('DELETE', '/api/v1/auth/tokens/current');
  } catch {
    // the token is dropped here either way
  }
  session.clear();
  location.href = '/';
}

// --- placing an order (checkout, cart, wishlist) ---------------------------------

// Fills form with an order's shipping fields, then `extra` controls and
// the submit button (#pay) labelled t(payKey).
export function shippingForm(form, payKey, extra = []) {
  const field = (id, name, key, attrs) => el('div', {}, el('label', { for: id }, t(key)), el('input', { id, name, ...attrs }));
  form.replaceChildren(
    el('h2', {}, t('checkout.shipping')),
    el('div', { class: 'row' },
      field('recipient', 'recipient', 'checkout.recipient', { required: true, maxlength: 50, autocomplete: 'name' }),
      field('ship-phone', 'phone', 'checkout.phone', { type: 'tel', required: true, pattern: '01[016789]-?[0-9]{3,4}-?[0-9]{4}',
        placeholder: '010-1234-5678', autocomplete: 'tel' }),
      field('zip', 'zipCode', 'checkout.zip', { required: true, pattern: '[0-9]{5}', inputmode: 'numeric', maxlength: 5,
        autocomplete: 'postal-code' })),
    el('label', { for: 'address' }, t('checkout.address')),
    el('input', { id: 'address', name: 'address', required: true, maxlength: 200, size: 60, autocomplete: 'street-address' }),
    el('label', { for: 'request' }, t('checkout.request')),
    el('input', { id: 'request', name: 'request', maxlength: 200, size: 60 }),
    ...extra,
    el('p', {}, el('button', { type: 'submit', id: 'pay' }, t(payKey))));
}

// The shipping block of an order body, from a shippingForm.
export function readShipping(form) {
  const f = new FormData(form);
  const shipping = { recipient: f.get('recipient').trim(), phone: f.get('phone').trim(), zipCode: f.get('zipCode').trim(),
    address: f.get('address').trim() };
  if (f.get('request').trim()) shipping.request = f.get('request').trim();
  return shipping;
}

// An order's answer: its number, what it cost and what is left, a link to
// the orders, and the balance in the header.
export function showPaid(order) {
  showInfo(`${t('checkout.paid', { id: order.orderId })} ${t('checkout.paidDetail', { total: krw(order.total),
    balance: krw(order.balance) })}`, [{ label: t('checkout.toOrders'), href: '/orders.html' }]);
  $('#messages').dataset.order = String(order.orderId);
  refreshBalance();
}

// The next steps an order's refusal offers: drop the short lines
// (removeShort(productIds)), pay the new total (payAt(event, total): the
// buyer agreed to a new amount, so a new action and a new key), or charge
// points.
export function orderSteps(err, { removeShort, payAt }) {
  if (err.code === 'OUT_OF_STOCK' && Array.isArray(err.problem.productIds) && removeShort) {
    return [{ label: t('checkout.removeShort'), onClick: () => removeShort(err.problem.productIds) }];
  }
  if (err.code === 'PRICE_CHANGED') {
    const now = err.problem.currentTotal;
    return [{ label: t('checkout.payNew', { total: krw(now) }), onClick: (ev) => payAt(ev, now) }];
  }
  if (err.code === 'INSUFFICIENT_BALANCE') return [{ label: t('checkout.toPoints'), href: '/points.html' }];
  return [];
}

// --- the checkout list -------------------------------------------------------

const CHECKOUT = 'jangteo.checkout';

export const checkoutList = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(CHECKOUT)) || [];
    } catch {
      return [];
    }
  },
  set(items) {
    sessionStorage.setItem(CHECKOUT, JSON.stringify(items));
  },
  add(productId, optionId, quantity) {
    const items = this.get();
    const same = items.find((i) => i.productId === productId && (i.optionId || null) === (optionId || null));
    if (same) same.quantity = Math.min(999, same.quantity + quantity);
    else items.push({ productId, optionId: optionId || null, quantity });
    this.set(items);
  },
};

// Every page: text in the chosen language, then the header.
export function startPage() {
  applyI18n();
  renderHeader();
}
