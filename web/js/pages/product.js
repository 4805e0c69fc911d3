// One product: options with their extra prices, quantity, and "add to the
// order" / "order now" (the checkout list is kept in this tab).
import { get } from '../api.js';
import { t } from '../i18n.js';
import { $, badge, checkoutList, el, krw, param, showInfo, showProblem, startPage } from '../ui.js';

async function load() {
  const box = $('#product');
  let p;
  try {
    p = await get(`/api/v1/products/${encodeURIComponent(param('id') || '')}`);
  } catch (e) {
    box.replaceChildren();
    box.removeAttribute('aria-busy');
    showProblem(e, { actions: [{ label: t('nav.products'), href: '/' }] });
    return;
  }
  document.title = `${p.name} — ${t('site.name')}`;
  const price = el('p', { class: 'price', id: 'unit-price' }, krw(p.price));
  const qty = el('input', { id: 'qty', type: 'number', min: 1, max: 999, value: 1, required: true });
  const options = p.options.length
    ? el('fieldset', {}, el('legend', {}, t('product.options')), p.options.map((o, i) =>
      el('label', { class: 'inline' },
        el('input', { type: 'radio', name: 'option', value: o.id, checked: i === 0 && o.stock > 0, disabled: o.stock <= 0,
          'data-extra': o.extraPrice,
          onchange: () => { price.textContent = krw(p.price + o.extraPrice); } }),
        `${o.name} (${t('product.extra', { price: krw(o.extraPrice) })}, ${t('product.stockLeft', { stock: o.stock })})`)))
    : null;
  if (p.options.length) {
    const first = p.options.find((o) => o.stock > 0);
    if (first) price.textContent = krw(p.price + first.extraPrice);
  }
  const choose = () => {
    const o = box.querySelector('input[name="option"]:checked');
    return { optionId: o ? Number(o.value) : null, quantity: Math.max(1, Math.min(999, parseInt(qty.value, 10) || 1)) };
  };
  const canBuy = p.status === 'ON_SALE' && p.stock > 0;
  const form = el('form', { id: 'buy' },
    options,
    el('label', { for: 'qty' }, t('product.quantity')), qty,
    el('p', { class: 'row' },
      el('button', { type: 'submit', id: 'add', disabled: !canBuy }, t('product.add')),
      el('button', { type: 'button', id: 'buy-now', class: 'secondary', disabled: !canBuy, onclick: () => {
        if (!form.reportValidity()) return;
        const c = choose();
        checkoutList.add(p.id, c.optionId, c.quantity);
        location.href = '/checkout.html';
      } }, t('product.buy'))));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (p.options.length && !choose().optionId) return;
    const c = choose();
    checkoutList.add(p.id, c.optionId, c.quantity);
    showInfo(t('product.added'), [{ label: t('product.goCheckout'), href: '/checkout.html' }]);
  });
  box.replaceChildren(
    el('h2', { id: 'product-name' }, p.name), price,
    el('p', {}, badge(p.status), ' ', el('span', { id: 'stock' }, t('product.stockLeft', { stock: p.stock }))),
    el('p', {}, p.description || t('product.noDescription')),
    form);
  box.removeAttribute('aria-busy');
}

startPage();
load();
