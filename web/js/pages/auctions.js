// Auctions: newest first, filtered by state, with the price now.
import { get } from '../api.js';
import { t } from '../i18n.js';
import { $, badge, el, krw, showProblem, startPage } from '../ui.js';

function mmss(s) {
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

async function load() {
  const st = $('#a-status').value;
  const list = await get(`/api/v1/auctions?size=50${st ? `&status=${st}` : ''}`);
  const body = $('#auctions tbody');
  body.replaceChildren(...list.map((a) => el('tr', { 'data-id': a.id },
    el('td', {}, el('a', { href: `/auction.html?id=${a.id}` }, a.productName)),
    el('td', { class: 'num' }, krw(a.currentPrice)), el('td', { class: 'num' }, krw(a.originPrice)),
    el('td', {}, badge(a.status)), el('td', { class: 'num' }, mmss(a.remainingSeconds)))));
  if (!list.length) body.append(el('tr', {}, el('td', { colspan: 5 }, t('auctions.empty'))));
}

startPage();
$('#a-status').value = new URLSearchParams(location.search).get('status') || '';
$('#a-status').addEventListener('change', () => load().catch((e) => showProblem(e)));
$('#filter').addEventListener('submit', (ev) => ev.preventDefault());
load().catch((e) => showProblem(e));
setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 5000);
