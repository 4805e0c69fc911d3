// Card payment in a browser, through the gateway simulator's pay page
// (t/94-browser-card.t makes the data and checks the database and the
// simulator afterwards). Scenarios, in order:
//
//   pay-verify   a buyer picks the card at checkout (the button says so), is
//                sent to the simulator's pay page (Korean, with the English
//                switch, and back), pays with a Shinhan card, comes back to
//                payment.html, which verifies: PAID with the exact total;
//                my orders shows it paid; cancelling refunds the card
//   pay-later    a card order left at the pay page: my orders shows it
//                awaiting payment with a pay link, which pays it; then its
//                own page cancels it, refunded to the card
//   english      checkout and the payment page in English
//
// Every page is watched for console errors, uncaught errors and promise
// rejections, and failed requests (lib.mjs).
import { BASE, DATA, login, newPage, note, ok, run, shipping, shot } from './lib.mjs';

const PAY = new RegExp(`^${DATA.simUrl}/pay/jt[0-9a-f]{32}\\?`);
const BACK = new RegExp(`^${BASE}/payment\\.html\\?`);
const digits = (s) => Number(String(s).replace(/[^0-9]/g, ''));


async function toCheckout(page, id) {
  await page.goto(`${BASE}/product.html?id=${id}`);
  await page.getByRole('button', { name: '바로 주문하기' }).click();
  await page.waitForURL(/checkout\.html/);
  await page.locator('#lines tbody tr[data-product]').waitFor();
}


// Checkout by card, to the gateway's pay page; returns the order id.
async function cardCheckout(page, company) {
  await toCheckout(page, DATA.product.id);
  ok(await page.getByRole('button', { name: '포인트로 결제하기' }).isVisible(), 'checkout: points by default');
  await page.getByLabel('카드', { exact: true }).check();
  await page.getByLabel('카드사').selectOption(company);
  ok(await page.getByRole('button', { name: '카드로 결제하기' }).isVisible(), 'with the card chosen, the button says so');
  ok(digits(await page.locator('#total').textContent()) === DATA.total, `checkout shows the total ${DATA.total}`);
  await shipping(page, '김카드');
  await shot(page, 'checkout-card');
  await page.getByRole('button', { name: '카드로 결제하기' }).click();
  await page.waitForURL(PAY);
  const back = new URL(new URL(page.url()).searchParams.get('return'));
  return Number(back.searchParams.get('order'));
}

async function payHere(page, company) {
  await page.locator('#card').selectOption(company);
  await page.getByRole('button', { name: '결제하기' }).click();
  await page.waitForURL(BACK);
}

const SCENARIOS = {
  async 'pay-verify'() {
    const page = await newPage('buyer');
    await login(page, DATA.buyer);
    const order = await cardCheckout(page, 'SHINHAN');
    ok(order > 0, `order ${order} reserved; the browser is at the gateway's pay page`);
    ok((await page.locator('h1').textContent()) === '카드 결제', 'the pay page, in Korean');
    ok(digits(await page.locator('#amount').textContent()) === DATA.total, `it asks for exactly ${DATA.total}`);
    await shot(page, 'pay-page');
    await page.getByRole('button', { name: 'English' }).click();
    ok((await page.locator('h1').textContent()) === 'Card payment' && await page.evaluate(() => document.documentElement.lang) === 'en',
      'the English switch: "Card payment", lang=en');
    ok(await page.getByRole('button', { name: 'Pay' }).isVisible(), '... and the button "Pay"');
    await shot(page, 'pay-page-english');
    await page.getByRole('button', { name: '한국어' }).click();
    ok((await page.locator('h1').textContent()) === '카드 결제', 'and back to Korean');

    await payHere(page, 'SHINHAN');
    await page.locator('#result[data-status]').waitFor();
    ok((await page.locator('#result').getAttribute('data-status')) === 'PAID', 'back at the shop: verified, PAID');
    const msg = await page.locator('.msg.info').textContent();
    ok(msg.includes(`주문 ${order}번이 카드로 결제되었습니다.`) && msg.includes('신한카드'),
      'the message names the order and the card', msg);
    ok(digits(await page.locator('#order-total').textContent()) === DATA.total, `paid ${DATA.total}`);
    await shot(page, 'payment-verified');

    await page.goto(`${BASE}/orders.html`);
    const row = page.locator(`tr[data-order="${order}"]`);
    await row.waitFor();
    ok((await row.locator('.status').textContent()) === '결제 완료', 'my orders: PAID (결제 완료)');
    await row.getByRole('button', { name: '주문 취소' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('.msg.info').textContent()).includes('카드로'), 'cancelled: refunded to the card');
    ok((await page.locator(`tr[data-order="${order}"] .status`).textContent()) === '취소됨', 'cancelled (취소됨)');
    await shot(page, 'orders-card-cancelled');
    console.log(`# paid ${order}`);
  },

  async 'pay-later'() {
    const page = await newPage('buyer-later');
    await login(page, DATA.buyer2);
    const order = await cardCheckout(page, 'NH');
    // the buyer leaves the pay page without paying
    await page.goto(`${BASE}/orders.html`);
    const row = page.locator(`tr[data-order="${order}"]`);
    await row.waitFor();
    ok((await row.locator('.status').textContent()) === '결제 대기', 'my orders: awaiting payment (결제 대기)');
    await shot(page, 'orders-pending');
    await row.getByRole('link', { name: '결제하기' }).click();
    await page.waitForURL(PAY);
    await payHere(page, 'NH');
    await page.locator('#result[data-status]').waitFor();
    ok((await page.locator('#result').getAttribute('data-status')) === 'PAID', 'paid later from my orders: PAID');
    // the order's own page cancels a card order as my orders does
    await page.goto(`${BASE}/order.html?id=${order}`);
    await page.locator('#order:not([hidden])').waitFor();
    await page.getByRole('button', { name: '주문 취소' }).click();
    await page.locator('.msg.info').waitFor();
    const said = await page.locator('.msg.info').textContent();
    ok(said.includes('카드로') && said.includes('15,000'), 'the order page: cancelled, refunded to the card', said);
    ok((await page.locator('#order-status').textContent()) === '취소됨', '... and shows it CANCELLED (취소됨)');
    ok(await page.getByRole('button', { name: '주문 취소' }).isHidden(), '... with no cancel button any more');
    await shot(page, 'order-card-cancelled');
    console.log(`# later ${order}`);
  },

  async english() {
    const page = await newPage('english');
    await login(page, DATA.buyer);
    await page.getByRole('button', { name: 'English' }).click();
    await page.waitForLoadState('load');
    await page.goto(`${BASE}/checkout.html`);
    await page.locator('#method legend').waitFor();
    ok((await page.locator('#method legend').textContent()) === 'Payment method', 'checkout in English: "Payment method"');
    await page.getByLabel('Card', { exact: true }).check();
    ok(await page.getByRole('button', { name: 'Pay by card' }).isVisible(), 'the button "Pay by card"');
    ok(await page.getByLabel('Card company').isVisible(), 'the card company, labelled');
    await shot(page, 'checkout-english');
    await page.goto(`${BASE}/payment.html`);
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('h1').textContent()) === 'Card payment' && await page.locator('#messages .msg.error').count() === 0,
      'the payment page with nothing to check: English, no problem');
    await page.getByRole('button', { name: '한국어' }).click();
    await page.waitForLoadState('load');
  },
};

run(async () => {
  const names = process.argv.slice(2);
  for (const n of names.length ? names : Object.keys(SCENARIOS)) {
    note(`scenario ${n}`);
    await SCENARIOS[n]();
  }
});
