// For sellers: create a product (with options), restock, and create an
// auction with its price policy.
import { api } from '../api.js';
import { t } from '../i18n.js';
import { $, el, onSubmit, requireLogin, showInfo, startPage } from '../ui.js';

requireLogin();
startPage();

function optionRow() {
  const n = $('#np-option-rows').children.length + 1;
  const row = el('div', { class: 'row option' },
    el('div', {}, el('label', { for: `op-name-${n}` }, t('seller.optionName')), el('input', { id: `op-name-${n}`, name: 'opName', required: true, maxlength: 100 })),
    el('div', {}, el('label', { for: `op-extra-${n}` }, t('seller.optionExtra')), el('input', { id: `op-extra-${n}`, name: 'opExtra', type: 'number', min: 0, value: 0, required: true })),
    el('div', {}, el('label', { for: `op-stock-${n}` }, t('seller.optionStock')), el('input', { id: `op-stock-${n}`, name: 'opStock', type: 'number', min: 0, value: 0, required: true })),
    el('div', {}, el('button', { type: 'button', class: 'secondary', onclick: () => row.remove() }, t('seller.removeOption'))));
  $('#np-option-rows').append(row);
  row.querySelector('input').focus();
}
$('#np-add-option').addEventListener('click', optionRow);

onSubmit($('#new-product'), async ({ onWait }) => {
  const f = $('#new-product');
  const body = { name: f.name.value.trim(), price: parseInt(f.price.value, 10) };
  if (f.description.value.trim()) body.description = f.description.value.trim();
  const rows = [...f.querySelectorAll('.option')];
  if (rows.length) {
    body.options = rows.map((r) => ({ name: r.querySelector('[name=opName]').value.trim(),
      extraPrice: parseInt(r.querySelector('[name=opExtra]').value, 10), stock: parseInt(r.querySelector('[name=opStock]').value, 10) }));
  } else {
    body.stock = parseInt(f.stock.value || '0', 10);
  }
  const { data } = await api('POST', '/api/v1/products', { body, onWait });
  showInfo(t('seller.created', { id: data.id, name: data.name }), [{ label: data.name, href: `/product.html?id=${data.id}` }]);
  $('#messages').dataset.product = String(data.id);
  f.reset();
  $('#np-option-rows').replaceChildren();
});

onSubmit($('#restock'), async ({ onWait }) => {
  const f = $('#restock');
  const body = { delta: parseInt(f.delta.value, 10) };
  if (f.optionId.value) body.optionId = parseInt(f.optionId.value, 10);
  const { data } = await api('POST', `/api/v1/products/${parseInt(f.id.value, 10)}/stock`, { body, onWait });
  showInfo(t('seller.restocked', { id: data.id, stock: data.stock }));
});

onSubmit($('#new-auction'), async ({ onWait }) => {
  const f = $('#new-auction');
  const start = new Date(f.startsAt.value);   // local time in the form, UTC on the wire
  const end = new Date(start.getTime() + parseInt(f.minutes.value, 10) * 60000);
  const policy = f.policy.value === 'PERCENTAGE'
    ? { type: 'PERCENTAGE', discountRate: Number(f.discountRate.value) }
    : { type: 'CONSTANT', variationWidth: parseInt(f.variationWidth.value, 10) };
  const body = {
    productName: f.productName.value.trim(), originPrice: parseInt(f.originPrice.value, 10),
    stock: parseInt(f.stock.value, 10), maxPerBuyer: parseInt(f.maxPerBuyer.value, 10), pricePolicy: policy,
    variationSeconds: parseInt(f.variationSeconds.value, 10), startsAt: start.toISOString(), endsAt: end.toISOString(),
    showStock: f.showStock.checked,
  };
  const { data } = await api('POST', '/api/v1/auctions', { body, onWait });
  showInfo(t('seller.auctionCreated', { id: data.id }), [{ label: data.productName, href: `/auction.html?id=${data.id}` }]);
});
