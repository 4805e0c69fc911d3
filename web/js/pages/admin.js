// For admins: the audit of every invariant, with its figures.
import { get } from '../api.js';
import { t } from '../i18n.js';
import { $, act, el, requireLogin, startPage } from '../ui.js';

requireLogin();
startPage();
$('#audit-run').addEventListener('click', (ev) => act(ev.target, async ({ onWait }) => {
  const a = await get('/api/v1/admin/audit', { onWait });
  $('#audit-summary').textContent = a.clean ? t('admin.clean') : t('admin.dirty', { n: a.violations });
  $('#audit tbody').replaceChildren(...a.checks.map((c) => el('tr', { class: c.violations ? 'bad' : '' },
    el('td', {}, c.name), el('td', {}, c.invariant), el('td', { class: 'num' }, String(c.checked)),
    el('td', { class: 'num' }, String(c.violations)), el('td', {}, c.sampleIds || '—'))));
  $('#audit').hidden = false;
}));
