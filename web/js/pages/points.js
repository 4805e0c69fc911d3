// My points: the balance, a charge (one fresh Idempotency-Key per click, the
// same key when the charge is retried), and the ledger, newest first.
import { api, get } from '../api.js';
import { t } from '../i18n.js';
import { $, el, krw, onSubmit, refreshBalance, requireLogin, showInfo, showProblem, startPage, when } from '../ui.js';

const s = requireLogin();
let cursor = null;

async function balance() {
  const u = await refreshBalance();
  if (u) $('#points-balance').textContent = krw(u.balance);
}

async function ledger(more = false) {
  const q = new URLSearchParams({ limit: 20 });
  if (more && cursor) q.set('cursor', cursor);
  const page = await get(`/api/v1/users/${s.userId}/points?${q}`);
  const rows = page.items.map((r) => el('tr', {},
    el('td', {}, when(r.createdAt)), el('td', {}, t(`kind.${r.kind}`)),
    el('td', { class: 'num' }, (r.delta > 0 ? '+' : '') + krw(r.delta)), el('td', { class: 'num' }, krw(r.balanceAfter))));
  const body = $('#ledger tbody');
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 4 }, t('points.empty'))));
  cursor = page.nextCursor;
  $('#ledger-more').hidden = !cursor;
}

startPage();
balance();
ledger().catch((e) => showProblem(e));
$('#ledger-more').addEventListener('click', () => ledger(true).catch((e) => showProblem(e)));
onSubmit($('#charge'), async ({ key, onWait }) => {
  const amount = parseInt($('#amount').value, 10);
  const { data } = await api('POST', `/api/v1/users/${s.userId}/charge`, { body: { amount }, key, onWait });
  showInfo(t('points.charged', { amount: krw(data.charged), balance: krw(data.balance) }));
  $('#points-balance').textContent = krw(data.balance);
  refreshBalance();
  await ledger();
});
