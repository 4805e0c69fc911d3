// The cart and the wishlist pages (cart.js, wishlist.js say which): the
// lines as the server prices them now (this page computes no price), the
// quantity of a line set on the server, and one order of every line paid
// with points, sent with the total shown as expectedTotal (409
// PRICE_CHANGED offers the new one). The list's answer is the truth after
// every change: the page shows what the server sent back.
import { api, get } from './api.js';
import { t } from './i18n.js';
import {
  $, act, el, krw, onSubmit, orderSteps, readShipping, requireLogin, shippingForm, showInfo, showPaid, showProblem, startPage,
} from './ui.js';

// k: { path: 'cart', key: 'lines', order: 'checkout', title, empty, pay,
//      remove(line): the DELETE path below the list, clearAfter: a
//      "clear" checkbox for the order, clearAll: a button emptying it,
//      changed: the code of "the list changed meanwhile" }
export function basketPage(k) {
  const s = requireLogin();
  const base = `/api/v1/users/${s.userId}/${k.path}`;
  let list = null;

  function render(data) {
    list = data;
    const lines = data[k.key];
    const body = $('#lines tbody');
    body.replaceChildren(...lines.map((l) => {
      const qty = el('input', { type: 'number', min: 1, max: 999, value: l.quantity,
        'aria-label': `${l.name} ${t('product.quantity')}`, onchange: (ev) => setQuantity(ev.target, l) });
      return el('tr', { 'data-product': l.productId, 'data-line': l.lineId },
        el('td', {}, el('a', { href: `/product.html?id=${l.productId}` }, l.name)),
        el('td', { class: 'num' }, krw(l.unitPrice)), el('td', {}, qty),
        el('td', { class: 'num line-total' }, krw(l.lineTotal)),
        el('td', { class: l.available ? 'available' : 'muted unavailable' },
          l.available ? t('basket.available') : t('basket.unavailable', { stock: l.stock })),
        el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-label': `${t('checkout.remove')}: ${l.name}`,
          onclick: (ev) => remove(ev.target, l) }, t('checkout.remove'))));
    }));
    if (!lines.length) body.append(el('tr', {}, el('td', { colspan: 6 }, t(k.empty))));
    $('#items-total').textContent = krw(data.itemsTotal);
    $('#fee').textContent = krw(data.shippingFee);
    $('#total').textContent = krw(data.total);
    $('#total').dataset.total = String(data.total);
    $('#pay').disabled = !lines.length;
    if (k.clearAll) $('#clear-all').disabled = !lines.length;
  }

  const load = async () => render(await get(base));

  function setQuantity(input, l) {
    const quantity = Math.max(1, Math.min(999, parseInt(input.value, 10) || 1));
    act(input, async ({ onWait }) => {
      const { data } = await api('PUT', `${base}/items`, { body: { productId: l.productId, optionId: l.optionId, quantity }, onWait });
      render(data);
    });
  }

  function remove(button, l) {
    act(button, async ({ onWait }) => {
      await api('DELETE', `${base}/${k.remove(l)}`, { onWait });
      await load();
    });
  }

  async function pay({ key, onWait }, expectedTotal) {
    const body = { shipping: readShipping($('#order')), expectedTotal };
    if (k.clearAfter && $('#clear-after').checked) body.clear = true;
    const { data } = await api('POST', `${base}/${k.order}`, { body, key, onWait });
    showPaid(data);
    await load();
  }

  function nextSteps(err) {
    const steps = orderSteps(err, {
      removeShort: (ids) => act($('#pay'), async ({ onWait }) => {
        for (const l of list[k.key].filter((x) => ids.includes(x.productId))) {
          await api('DELETE', `${base}/${k.remove(l)}`, { onWait });
        }
        await load();
      }),
      payAt: (ev, now) => act(ev.target, (a) => pay(a, now), { problemActions: nextSteps }),
    });
    if (err.code === k.changed) steps.push({ label: t('basket.reload'), onClick: () => load().catch((e) => showProblem(e)) });
    return steps;
  }

  // the list's table and totals (the same for both lists)
  function skeleton() {
    const th = (key, cls) => el('th', { scope: 'col', class: cls }, key ? t(key) : '');
    const total = (id, label) => el('tr', { class: id === 'total' ? 'total' : null }, el('td', {}, label), el('td', { class: 'num', id }));
    $('#basket').replaceChildren(
      el('h2', { id: 'items-h' }, t('basket.items')),
      el('p', { class: 'muted' }, t('basket.priced')),
      el('table', { id: 'lines' },
        el('thead', {}, el('tr', {}, th('products.name'), th('products.price', 'num'), th('product.quantity'),
          th('checkout.lineTotal', 'num'), th('basket.state'), th(null))),
        el('tbody')),
      el('table', { class: 'totals', 'aria-live': 'polite' },
        total('items-total', t('checkout.itemsTotal')),
        total('fee', [el('span', {}, t('checkout.fee')), ' ', el('small', { class: 'muted' }, t('checkout.freeFrom'))]),
        total('total', t('checkout.total'))));
    $('#basket').removeAttribute('aria-busy');
  }

  startPage();
  skeleton();
  const extra = k.clearAfter
    ? [el('label', { class: 'inline' }, el('input', { type: 'checkbox', id: 'clear-after' }), t(k.clearAfter))] : [];
  shippingForm($('#order'), k.pay, extra);
  if (k.clearAll) {
    $('#basket').append(el('p', {}, el('button', { type: 'button', id: 'clear-all', class: 'secondary', onclick: (ev) => {
      act(ev.target, async ({ onWait }) => {
        await api('DELETE', base, { onWait });
        await load();
        showInfo(t(k.clearAll.done));
      });
    } }, t(k.clearAll.label))));
  }
  load().catch((e) => showProblem(e));
  onSubmit($('#order'), (a) => pay(a, list ? list.total : 0), { problemActions: nextSteps });
}
