// The product list: search, sale-status filter, paging, live stock, and the
// popular products. The query lives in the URL (?q=&status=&page=).
import { get } from '../api.js';
import { t } from '../i18n.js';
import { $, badge, el, krw, showProblem, startPage } from '../ui.js';

const SIZE = 20;
const LIVE_MS = 5000;
const state = { q: '', status: '', page: 1, pages: 1 };

function query() {
  const p = new URLSearchParams({ page: state.page, size: SIZE });
  if (state.q) p.set('q', state.q);
  if (state.status) p.set('status', state.status);
  return p;
}

async function load({ live = false } = {}) {
  let page;
  try {
    page = await get(`/api/v1/products?${query()}`);
  } catch (e) {
    if (!live) showProblem(e, { retry: () => load() });
    return;
  }
  const body = $('#products tbody');
  if (live && body.children.length === page.items.length) {
    // only the stock and status move between two reads of one page
    page.items.forEach((p, i) => {
      const row = body.children[i];
      if (row.dataset.id !== String(p.id)) return;
      row.querySelector('.stock').textContent = p.stock.toLocaleString('ko-KR');
      row.querySelector('.state').replaceChildren(badge(p.status));
    });
    return;
  }
  body.replaceChildren(...page.items.map((p) => el('tr', { 'data-id': p.id },
    el('td', {}, el('a', { href: `/product.html?id=${p.id}` }, p.name)),
    el('td', { class: 'num' }, krw(p.price)),
    el('td', { class: 'num stock' }, p.stock.toLocaleString('ko-KR')),
    el('td', { class: 'state' }, badge(p.status)))));
  if (!page.items.length) body.append(el('tr', {}, el('td', { colspan: 4 }, t('products.none'))));
  state.pages = Math.max(1, Math.ceil(page.total / SIZE));
  const from = page.total ? (state.page - 1) * SIZE + 1 : 0;
  $('#count').textContent = t('products.count', { total: page.total, from, to: from ? from + page.items.length - 1 : 0 });
  $('#page').textContent = t('pager.page', { page: state.page, pages: state.pages });
  $('#prev').disabled = state.page <= 1;
  $('#next').disabled = state.page >= state.pages;
  const shown = new URLSearchParams();
  if (state.q) shown.set('q', state.q);
  if (state.status) shown.set('status', state.status);
  if (state.page > 1) shown.set('page', state.page);
  history.replaceState(null, '', shown.toString() ? `?${shown}` : location.pathname);
}

async function popular() {
  try {
    const items = await get('/api/v1/products/popular');
    $('#popular').replaceChildren(...items.map((p) => el('li', {},
      el('a', { href: `/product.html?id=${p.id}` }, p.name), ' ', krw(p.price), ' ',
      el('span', { class: 'muted' }, t('products.sold', { n: p.salesCount })))));
  } catch {
    $('#popular').replaceChildren();
  }
}

startPage();
const u = new URLSearchParams(location.search);
state.q = u.get('q') || '';
state.status = u.get('status') || '';
state.page = Math.max(1, parseInt(u.get('page') || '1', 10) || 1);
$('#q').value = state.q;
$('#status').value = state.status;
$('#search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.q = $('#q').value.trim();
  state.status = $('#status').value;
  state.page = 1;
  load();
});
$('#status').addEventListener('change', () => $('#search').requestSubmit());
$('#prev').addEventListener('click', () => { state.page--; load(); });
$('#next').addEventListener('click', () => { state.page++; load(); });
load();
popular();
setInterval(() => { if (!document.hidden) load({ live: true }); }, LIVE_MS);
