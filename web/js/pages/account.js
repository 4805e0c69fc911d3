// My account: the profile (name and phone, by the sign-up's rules), the
// password (a change logs every other session out; this one stays), and
// the sessions, each of which can be logged out here.
import { api, get, session } from '../api.js';
import { t } from '../i18n.js';
import { $, act, el, onSubmit, renderHeader, requireLogin, showInfo, showProblem, startPage, when } from '../ui.js';

const s = requireLogin();
const me = `/api/v1/users/${s.userId}`;
let cursor = null;

async function profile() {
  const u = await get(me);
  $('#email').value = u.email;
  $('#name').value = u.name;
  $('#phone').value = u.phone;
}

function row(x) {
  const revoke = x.current ? el('span', { class: 'badge' }, t('account.here'))
    : el('button', { type: 'button', class: 'secondary', 'data-session': x.tokenId,
      'aria-label': `${t('account.revoke')} ${x.tokenId}`, onclick: (ev) => act(ev.target, async ({ onWait }) => {
        await api('DELETE', `${me}/tokens/${x.tokenId}`, { onWait });
        await sessions();
        showInfo(t('account.revoked', { id: x.tokenId }));
      }) }, t('account.revoke'));
  return el('tr', { 'data-token': x.tokenId },
    el('td', {}, when(x.createdAt)), el('td', {}, x.lastUsedAt ? when(x.lastUsedAt) : t('account.never')),
    el('td', {}, when(x.expiresAt)), el('td', {}, revoke));
}

async function sessions(more = false) {
  const q = new URLSearchParams({ limit: 20 });
  if (more && cursor) q.set('cursor', cursor);
  const page = await get(`${me}/tokens?${q}`);
  const body = $('#sessions tbody');
  if (more) body.append(...page.items.map(row));
  else body.replaceChildren(...page.items.map(row));
  cursor = page.nextCursor;
  $('#sessions-more').hidden = !cursor;
}

startPage();
profile().catch((e) => showProblem(e));
sessions().catch((e) => showProblem(e));
$('#sessions-more').addEventListener('click', () => sessions(true).catch((e) => showProblem(e)));
onSubmit($('#profile'), async ({ onWait }) => {
  const body = { name: $('#name').value.trim(), phone: $('#phone').value.trim() };
  const { data } = await api('PATCH', me, { body, onWait });
  session.set({ ...session.get(), name: data.name });
  renderHeader();
  showInfo(t('account.saved'));
});
onSubmit($('#password'), async ({ onWait }) => {
  const body = { currentPassword: $('#current-password').value, newPassword: $('#new-password').value };
  const { data } = await api('POST', `${me}/password`, { body, onWait });
  $('#password').reset();
  showInfo(t('account.changed', { n: data.revokedSessions }));
  await sessions();
});
