// My auction receipts (bought or sold), and refunds of purchases once the
// auction has finished.
import { api, get } from '../api.js';
import { t } from '../i18n.js';
import { $, act, badge, el, krw, refreshBalance, requireLogin, showInfo, showProblem, startPage, when } from '../ui.js';

const s = requireLogin();

function row(r, role) {
  const refund = role === 'buyer' && r.status === 'PURCHASED'
    ? el('button', { type: 'button', class: 'secondary', 'aria-label': `${t('receipts.refund')}: ${r.productName}`,
      onclick: (ev) => act(ev.target, async ({ onWait }) => {
        const { data } = await api('POST', `/api/v1/receipts/${r.receiptId}/refund`, { onWait });
        ev.target.closest('tr').replaceWith(row(data, role));
        showInfo(t('receipts.refunded'));
        refreshBalance();
      }) }, t('receipts.refund'))
    : null;
  return el('tr', { 'data-receipt': r.receiptId },
    el('td', {}, when(r.createdAt)), el('td', {}, r.productName), el('td', { class: 'num' }, krw(r.price)),
    el('td', { class: 'num' }, String(r.quantity)), el('td', {}, badge(r.status)), el('td', {}, refund));
}

async function load() {
  const role = new FormData($('#role')).get('role');
  const page = await get(`/api/v1/users/${s.userId}/receipts?role=${role}&limit=50`);
  const body = $('#receipts tbody');
  body.replaceChildren(...page.items.map((r) => row(r, role)));
  if (!page.items.length) body.append(el('tr', {}, el('td', { colspan: 6 }, t('receipts.empty'))));
}

startPage();
$('#role').addEventListener('change', () => load().catch((e) => showProblem(e)));
load().catch((e) => showProblem(e));
