// The shop in a browser, as buyers and a seller use it (t/92-browser-shop.t
// makes the data and checks the database afterwards). Scenarios, in order:
//
//   order-cancel   a buyer signs up, charges 50,000, orders two products,
//                  sees the order PAID and the balance drop by the total,
//                  cancels, and sees the balance whole again
//   last-unit      two buyers pay for the last unit at once: one success,
//                  one out-of-stock message
//   seller-search  a seller creates a product; a buyer finds it by search
//   retry-503      a charge while MariaDB is down: the page counts down to
//                  the server's Retry-After and retries with the same key
//   cart-wishlist  a buyer fills the cart from product pages, changes a
//                  quantity (free shipping at 30,000), pays the cart in one
//                  step and sees it empty; wishes for a product and orders
//                  the wishlist, clearing it; renames themself and changes
//                  the password (the other session is logged out)
//   every-page     every page, in Korean and English: labelled controls,
//                  the keyboard, the first product page's size
//
// Every page is watched for console errors, uncaught errors and promise
// rejections, and failed requests (lib.mjs).
import { BASE, DATA, HOME, control, expect4xx, login, newPage, note, ok, run, shipping, shot, sleep } from './lib.mjs';

const krw = (n) => `${Number(n).toLocaleString('ko-KR')}원`;
const digits = (s) => Number(String(s).replace(/[^0-9]/g, ''));

async function signup(page, u) {
  await page.goto(`${BASE}/login.html`);
  const f = page.locator('#signup');
  await f.getByLabel('이메일').fill(u.email);
  await f.getByLabel('비밀번호').fill(u.password);
  await f.getByLabel('이름').fill(u.name);
  await f.getByLabel('휴대폰 번호').fill(u.phone);
  await f.getByRole('button', { name: '가입하고 로그인' }).click();
  await page.waitForURL(HOME);
}


async function headerBalance(page, want) {
  const b = page.locator('#balance');
  await page.waitForFunction((w) => document.querySelector('#balance')?.dataset.balance === String(w), want,
    { timeout: 10000 }).catch(() => {});
  return Number(await b.getAttribute('data-balance'));
}


async function addToOrder(page, id) {
  await page.goto(`${BASE}/product.html?id=${id}`);
  await page.getByRole('button', { name: '주문 목록에 담기' }).click();
  await page.locator('.msg.info').waitFor();
}

const SCENARIOS = {
  async 'order-cancel'() {
    const page = await newPage('buyer');
    const [p1, p2] = DATA.products;
    await signup(page, DATA.buyer);
    ok(await page.locator('#who').textContent() === DATA.buyer.name, 'signed up and logged in: the header names the buyer');
    await shot(page, 'products');

    await page.goto(`${BASE}/points.html`);
    await page.getByLabel('충전 금액 (1,000원 ~ 1,000,000원)').fill('50000');
    await page.getByRole('button', { name: '충전하기' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('#points-balance').textContent()) === krw(50000), 'the points page shows 50,000원');
    ok(await headerBalance(page, 50000) === 50000, 'the header balance is 50,000');
    await page.locator('#ledger tbody tr').first().waitFor();
    await shot(page, 'points-charged');

    await addToOrder(page, p1.id);
    await page.goto(`${BASE}/product.html?id=${p2.id}`);
    await page.getByRole('button', { name: '바로 주문하기' }).click();
    await page.waitForURL(/checkout\.html/);
    await page.locator('#lines tbody tr[data-product]').nth(1).waitFor();
    const total = p1.price + p2.price + (p1.price + p2.price >= 30000 ? 0 : 3000);
    ok(digits(await page.locator('#total').textContent()) === total, `checkout shows the total ${total} with the shipping fee`);
    ok(digits(await page.locator('#fee').textContent()) === 3000, 'and the 3,000 shipping fee');
    await shipping(page);
    await shot(page, 'checkout');
    await page.getByRole('button', { name: '포인트로 결제하기' }).click();
    await page.locator('.msg.info').waitFor();
    const order = Number(await page.locator('#messages').getAttribute('data-order'));
    ok(order > 0, `order ${order} paid`);
    ok(await headerBalance(page, 50000 - total) === 50000 - total, `the balance dropped by exactly ${total}`);
    await page.goto(`${BASE}/orders.html`);
    const row = page.locator(`tr[data-order="${order}"]`);
    await row.waitFor();
    ok((await row.locator('.status').textContent()) === '결제 완료', 'my orders: the order is PAID (결제 완료)');
    await shot(page, 'orders-paid');

    await row.getByRole('button', { name: '주문 취소' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator(`tr[data-order="${order}"] .status`).textContent()) === '취소됨', 'cancelled (취소됨)');
    ok(await headerBalance(page, 50000) === 50000, 'the balance is 50,000 again');
    await shot(page, 'orders-cancelled');
    console.log(`# order ${order}`);
  },

  async 'last-unit'() {
    const [a, b] = [await newPage('buyer-a'), await newPage('buyer-b')];
    const id = DATA.lastUnit.id;
    for (const [page, u] of [[a, DATA.buyerA], [b, DATA.buyerB]]) {
      await login(page, u);
      await addToOrder(page, id);
      await page.goto(`${BASE}/checkout.html`);
      await page.locator('#lines tbody tr[data-product]').waitFor();
      await shipping(page);
      expect4xx(page, 409, /^\/api\/v1\/orders$/);
    }
    await Promise.all([a, b].map((p) => p.getByRole('button', { name: '포인트로 결제하기' }).click()));
    const outcome = async (p) => {
      await p.locator('.msg').first().waitFor();
      if (await p.locator('.msg.info').count()) return 'paid';
      return (await p.locator('.msg.error').getAttribute('data-code')) || 'error';
    };
    const got = [await outcome(a), await outcome(b)];
    ok(got.sort().join(' ') === 'OUT_OF_STOCK paid', `one buyer paid, the other was told it is out of stock (${got})`);
    const loser = (await a.locator('.msg.error').count()) ? a : b;
    ok((await loser.locator('.msg.error h2').textContent()) === '재고가 부족합니다.', 'the out-of-stock message, in Korean');
    ok(await loser.getByRole('button', { name: '재고가 부족한 상품 빼기' }).isVisible(), 'with the next step: remove the item');
    await shot(a, 'last-unit-a');
    await shot(b, 'last-unit-b');
  },

  async 'seller-search'() {
    const seller = await newPage('seller');
    await login(seller, DATA.seller);
    await seller.goto(`${BASE}/seller.html`);
    const f = seller.locator('#new-product');
    await f.getByLabel('상품명').fill(DATA.newName);
    await f.getByLabel('가격 (원)').fill('15000');
    await f.getByLabel('재고 (옵션이 없을 때)').fill('7');
    await f.getByLabel('설명').fill('브라우저 시험에서 등록한 상품');
    await f.getByRole('button', { name: '상품 등록하기' }).click();
    await seller.locator('.msg.info').waitFor();
    const id = Number(await seller.locator('#messages').getAttribute('data-product'));
    ok(id > 0, `the seller created product ${id}`);
    await shot(seller, 'seller-created');

    const buyer = await newPage('searcher');
    await buyer.goto(`${BASE}/`);
    await buyer.getByLabel('상품 검색').fill(DATA.searchFor);
    await buyer.getByRole('button', { name: '검색' }).click();
    const row = buyer.locator(`#products tr[data-id="${id}"]`);
    await row.waitFor();
    ok((await row.locator('a').textContent()) === DATA.newName, `searching "${DATA.searchFor}" finds it`);
    await shot(buyer, 'search-found');
    await row.locator('a').click();
    await buyer.locator('#product-name').waitFor();
    ok((await buyer.locator('#product-name').textContent()) === DATA.newName, 'and its page opens');
    console.log(`# product ${id}`);
  },

  async 'retry-503'() {
    const page = await newPage('retry');
    await login(page, DATA.retryBuyer);
    await page.goto(`${BASE}/points.html`);
    await page.locator('#ledger tbody tr').first().waitFor();
    expect4xx(page, 503, /^\/api\/v1\/users\/\d+\/charge$/);
    expect4xx(page, 503, /^\/api\/v1\/users\/\d+(\/points)?$/);
    await control('stop-mariadb');
    await page.getByLabel('충전 금액 (1,000원 ~ 1,000,000원)').fill('10000');
    await page.getByRole('button', { name: '충전하기' }).click();
    const wait = page.locator('#wait');
    await wait.waitFor({ timeout: 10000 });
    const text = await wait.textContent();
    ok(/서버가 바쁩니다\. \d+초 뒤에 다시 시도합니다/.test(text), `a visible countdown: "${text}"`);
    ok(await page.getByRole('button', { name: '충전하기' }).isDisabled(), 'the button waits (busy)');
    await shot(page, 'retry-countdown');
    await control('start-mariadb');
    await page.locator('.msg.info').waitFor({ timeout: 30000 });
    ok((await page.locator('#points-balance').textContent()) === krw(60000), 'the retried charge went through, once: 50,000원 + 10,000원');
    await shot(page, 'retry-done');
  },

  async 'cart-wishlist'() {
    const page = await newPage('cart');
    const u = DATA.cartBuyer;
    const [p1, p2] = DATA.products;
    await login(page, u);
    const start = await headerBalance(page, u.balance);
    ok(start === u.balance, `the buyer starts with ${u.balance}`);
    for (const p of [p1, p2]) {
      await page.goto(`${BASE}/product.html?id=${p.id}`);
      await page.getByRole('button', { name: '장바구니에 담기' }).click();
      await page.locator('.msg.info').waitFor();
    }
    ok((await page.locator('.msg.info p').textContent()) === '장바구니에 1개를 담았습니다.', 'the product page says it is in the cart');
    await page.goto(`${BASE}/cart.html`);
    await page.locator('#lines tbody tr[data-product]').nth(1).waitFor();
    const below = p1.price + p2.price;
    ok(digits(await page.locator('#total').textContent()) === below + 3000, `the cart: ${below} + 3,000 shipping`);
    await shot(page, 'cart');
    const qty = page.locator(`#lines tbody tr[data-product="${p1.id}"] input`);
    await qty.fill('2');
    await qty.press('Tab');
    const total = 2 * p1.price + p2.price;
    await page.waitForFunction((w) => document.querySelector('#total')?.dataset.total === String(w), total);
    ok(digits(await page.locator('#fee').textContent()) === 0, `2 of the first: ${total}, free shipping (the server's figures)`);
    await shipping(page);
    await page.getByRole('button', { name: '장바구니 결제하기' }).click();
    await page.locator('.msg.info').waitFor();
    const order = Number(await page.locator('#messages').getAttribute('data-order'));
    ok(order > 0, `the cart is paid: order ${order}`);
    ok(await headerBalance(page, start - total) === start - total, `the balance dropped by exactly ${total}`);
    await page.locator('#lines tbody td[colspan]').waitFor();
    ok((await page.locator('#lines tbody').textContent()) === '장바구니가 비어 있습니다.', 'and the cart is empty');
    await shot(page, 'cart-paid');

    await page.goto(`${BASE}/product.html?id=${p2.id}`);
    await page.getByRole('button', { name: '찜하기' }).click();
    await page.locator('.msg.info').waitFor();
    await page.goto(`${BASE}/wishlist.html`);
    await page.locator('#lines tbody tr[data-product]').waitFor();
    ok(digits(await page.locator('#total').textContent()) === p2.price + 3000, 'the wishlist: one item, with shipping');
    await shipping(page);
    await page.getByLabel('주문한 뒤 찜 목록 비우기').check();
    await page.getByRole('button', { name: '찜 목록 전체 주문하기' }).click();
    await page.locator('.msg.info').waitFor();
    const after = start - total - p2.price - 3000;
    ok(await headerBalance(page, after) === after, 'the wishlist is ordered');
    await page.locator('#lines tbody td[colspan]').waitFor();
    ok((await page.locator('#lines tbody').textContent()) === '찜한 상품이 없습니다.', 'and cleared');

    await page.goto(`${BASE}/account.html`);
    await page.locator('#sessions tbody tr').first().waitFor();
    ok(await page.locator('#sessions tbody tr').count() === 2, 'two sessions: the test\'s and this browser\'s');
    await page.getByLabel('이름', { exact: true }).fill(u.newName);
    await page.getByRole('button', { name: '프로필 저장하기' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('#who').textContent()) === u.newName, 'renamed: the header says the new name');
    await page.getByLabel('현재 비밀번호').fill(u.password);
    await page.getByLabel('새 비밀번호 (8~72자)').fill(u.newPassword);
    await page.getByRole('button', { name: '비밀번호 바꾸기' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('.msg.info p').textContent()) === '비밀번호를 바꿨습니다. 다른 세션 1개를 로그아웃시켰습니다.',
      'the password is changed and the other session logged out');
    await page.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 1);
    ok(true, 'one session left: this one');
    await shot(page, 'account');
  },

  async 'every-page'() {
    const page = await newPage('visitor');
    // the first product list page, as a new visitor gets it (gzip on)
    await page.goto(`${BASE}/`);
    await page.locator('#products tbody tr').first().waitFor();
    await page.locator('#popular').waitFor({ state: 'attached' });
    await sleep(500);
    const bytes = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, nav.transferSize);
    });
    ok(bytes > 0 && bytes < 150 * 1024, `the first product list page transferred ${bytes} bytes (< 150 KB)`);
    const gz = await page.evaluate(async () => (await fetch('/js/i18n.js')).headers.get('content-encoding'));
    ok(gz === 'gzip', `static files come gzipped (${gz})`);

    // keyboard: the first Tab reaches the skip link, Enter moves to the content
    await page.keyboard.press('Tab');
    ok(await page.evaluate(() => document.activeElement.className) === 'skip', 'the first Tab is the skip link');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    const inMain = await page.evaluate(() => !!document.activeElement.closest('main'));
    ok(inMain, 'after it, Tab moves within the content');
    await page.getByLabel('상품 검색').focus();
    await page.keyboard.type(DATA.searchFor);
    await page.keyboard.press('Enter');
    await page.locator('#products tbody tr[data-id]').first().waitFor();
    ok(await page.locator('#products tbody tr[data-id]').count() >= 1, 'search works from the keyboard alone');

    await page.goto(`${BASE}/login.html`);
    const l = page.locator('#login');
    await l.getByLabel('이메일').fill(DATA.admin.email);
    await l.getByLabel('비밀번호').fill(DATA.admin.password);
    await l.getByLabel('비밀번호').press('Enter');
    await page.waitForURL(HOME);

    const pages = ['/', `/product.html?id=${DATA.products[0].id}`, `/product.html?id=${DATA.optionProduct}`, '/points.html',
      '/checkout.html', '/cart.html', '/wishlist.html', '/orders.html', '/auctions.html', `/auction.html?id=${DATA.auction}`,
      '/receipts.html', '/account.html', '/seller.html', '/admin.html'];
    for (const p of pages) {
      await page.goto(BASE + p);
      await page.locator('#site-header nav').waitFor();
      await page.waitForLoadState('networkidle').catch(() => {});
      const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter((e) => e.type !== 'hidden' && e.offsetParent !== null)
        .filter((e) => (e.tagName === 'BUTTON' ? !e.textContent.trim() && !e.getAttribute('aria-label')
          : !(e.labels && e.labels.length) && !e.getAttribute('aria-label')))
        .map((e) => e.outerHTML.slice(0, 80)));
      ok(unlabelled.length === 0, `${p}: every control has a label`, unlabelled.join('\n'));
      ok(await page.locator('h1').count() === 1 && await page.locator('#messages .msg.error').count() === 0,
        `${p}: renders without a problem`, await page.locator('#messages').textContent());
    }
    await page.goto(`${BASE}/admin.html`);
    await page.getByRole('button', { name: '점검 실행' }).click();
    await page.locator('#audit tbody tr').first().waitFor();
    ok((await page.locator('#audit-summary').textContent()) === '위반 없음: 모든 불변식이 지켜지고 있습니다.',
      'admin: the audit is clean');
    await shot(page, 'admin-audit');

    // the English switch, and back
    await page.goto(`${BASE}/`);
    await page.getByRole('button', { name: 'English' }).click();
    await page.waitForLoadState('load');
    await page.locator('h1').waitFor();
    ok((await page.locator('h1').textContent()) === 'Products' && await page.evaluate(() => document.documentElement.lang) === 'en',
      'English: the list is "Products", lang=en');
    await page.locator('#products tbody tr').first().waitFor();
    await shot(page, 'products-english');
    await page.getByRole('button', { name: '한국어' }).click();
    await page.waitForLoadState('load');
    ok((await page.locator('h1').textContent()) === '상품', 'back to Korean');

    await page.goto(`${BASE}/api/docs`);
    await page.getByText('jangteo API').first().waitFor({ timeout: 30000 });
    await sleep(1000);
    await shot(page, 'api-docs');
    const spec = await page.evaluate(async () => {
      const r = await fetch('/api/openapi.yaml');
      return [r.status, (await r.text()).slice(0, 13)];
    });
    ok(spec[0] === 200 && spec[1] === 'openapi: 3.1.', '/api/openapi.yaml is the spec');
  },
};

run(async () => {
  const names = process.argv.slice(2);
  for (const n of names.length ? names : Object.keys(SCENARIOS)) {
    note(`scenario ${n}`);
    await SCENARIOS[n]();
  }
});
