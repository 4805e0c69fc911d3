// Auctions in the browser (t/93-browser-auction.t makes the auctions):
//
//   price-rule   web/js/auction-price.js against the server: for several
//                clock offsets (POST /test/clock moves the server's auction
//                clock), the JS price, next drop and status at the answer's
//                asOf equal the server's currentPrice, nextDropAt/nextPrice
//                and status, for a CONSTANT and an awkward PERCENTAGE rule
//   bid          a buyer opens a running auction, waits for the countdown
//                to reach a drop, bids at the new price it shows, and sees
//                the receipt PURCHASED
import { nextDropAt, priceAt, priceOfStep, ruleOf, stepAt, statusAt } from '../../web/js/auction-price.js';
import { BASE, DATA, apiCall, newPage, note, ok, run, shot, sleep } from './lib.mjs';

async function clockTo(targetMs) {
  const r = await apiCall('POST', '/test/clock', { offsetMs: Math.round(targetMs - Date.now()) });
  if (r.status !== 200) throw new Error(`POST /test/clock: ${r.status}`);
}

async function priceRule() {
  for (const a0 of DATA.ruleAuctions) {
    const rule = ruleOf(a0);
    const v = rule.variationMs;
    const offsets = [-30000, -1, 0, 1, v - 1, v, v + 1, 2 * v + v / 2, 5 * v - 1, 5 * v,
      rule.endsMs - rule.startsMs - v - 1, rule.endsMs - rule.startsMs - 1, rule.endsMs - rule.startsMs, rule.endsMs - rule.startsMs + 5000];
    let agree = 0;
    const bad = [];
    for (const off of offsets) {
      await clockTo(rule.startsMs + off);
      const r = await apiCall('GET', `/api/v1/auctions/${a0.id}`);
      const a = r.json;
      const at = Date.parse(a.asOf);
      const js = priceAt(rule, at);
      const next = nextDropAt(rule, at);
      const jsNextPrice = next === null ? null : priceOfStep(rule, at < rule.startsMs ? 0 : stepAt(rule, at) + 1);
      const same = js === a.currentPrice && statusAt(rule, 1, at) === a.status
        && (next === null ? a.nextDropAt === null : Date.parse(a.nextDropAt) === next)
        && jsNextPrice === a.nextPrice;
      if (same) agree++;
      else bad.push(`offset ${off} ms (asOf ${a.asOf}): server ${a.currentPrice} ${a.status} next ${a.nextDropAt} ${a.nextPrice};`
        + ` js ${js} ${statusAt(rule, 1, at)} next ${next === null ? null : new Date(next).toISOString()} ${jsNextPrice}`);
    }
    ok(agree === offsets.length, `${a0.pricePolicy.type} ${JSON.stringify(a0.pricePolicy)}: the JS rule agrees with the server at ${agree} of ${offsets.length} clock offsets`, bad.join('\n'));
  }
}

async function bid() {
  const a0 = DATA.bidAuction;
  const rule = ruleOf(a0);
  const page = await newPage('bidder');
  await page.goto(`${BASE}/login.html?next=${encodeURIComponent(`/auction.html?id=${a0.id}`)}`);
  const f = page.locator('#login');
  await f.getByLabel('이메일').fill(DATA.buyer.email);
  await f.getByLabel('비밀번호').fill(DATA.buyer.password);
  await f.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL((u) => u.pathname.endsWith('/auction.html'));
  await page.locator('#current-price').waitFor();
  // then two drops in, the next one 6 s away, and the page loaded again at
  // that clock: a login slowed by a busy machine cannot eat the margin
  await clockTo(rule.startsMs + 3 * rule.variationMs - 6000);
  await page.reload();
  await page.locator('#current-price[data-price]').waitFor();
  const before = Number(await page.locator('#current-price').getAttribute('data-price'));
  ok(before === priceOfStep(rule, 2), `the page shows the price after two drops: ${before}`);
  ok(/^0:0[0-6]$/.test(await page.locator('#countdown').textContent()), `the countdown to the next drop: ${await page.locator('#countdown').textContent()}`);
  await shot(page, 'auction-before-drop');
  const want = priceOfStep(rule, 3);
  await page.waitForFunction((w) => document.querySelector('#current-price')?.dataset.price === String(w), want, { timeout: 10000 });
  ok(true, `at the drop the page shows the new price ${want}`);
  const button = page.getByRole('button', { name: /에 입찰하기$/ });
  await button.waitFor();
  await page.waitForFunction(() => !document.querySelector('#bid').disabled, null, { timeout: 5000 });
  ok((await button.textContent()) === `${want.toLocaleString('ko-KR')}원에 입찰하기`, `the button offers the price on display: ${await button.textContent()}`);
  await shot(page, 'auction-after-drop');
  await button.click();
  await page.waitForFunction(() => document.querySelector('#messages')?.dataset.receiptStatus, null, { timeout: 30000 });
  const status = await page.locator('#messages').getAttribute('data-receipt-status');
  ok(status === 'PURCHASED', `the receipt is PURCHASED (${status})`);
  ok(/구매 완료/.test(await page.locator('#messages').textContent()), 'and the page says so: 구매 완료');
  await shot(page, 'auction-purchased');
  note(`bid at ${want}`);
  await page.goto(`${BASE}/receipts.html`);
  await page.locator('#receipts tbody tr[data-receipt]').first().waitFor();
  await shot(page, 'receipts');
}

run(async () => {
  await priceRule();
  await bid();
  await apiCall('POST', '/test/clock', { offsetMs: 0 });
});
