// An order's life in a browser (t/91-browser-lifecycle.t makes the orders
// and moves them as the seller, then checks the database). Scenarios:
//
//   timeline      the buyer's order list shows a delivered order; its page
//                 shows every move with who made it and the tracking
//                 number, and takes a return request; the status changes
//                 in place
//   cancel        an order being prepared is cancelled from its page; the
//                 balance is whole again
//   notifications the Korean messages of those moves, newest first; one is
//                 marked read and leaves the unread filter
//   every-page    both pages in Korean and in English: labelled controls,
//                 one heading, no problem shown
import { BASE, DATA, login, newPage, note, ok, run, shot } from './lib.mjs';

let page;

const SCENARIOS = {
  async timeline() {
    page = await newPage('buyer');
    await login(page, DATA.buyer);
    await page.goto(`${BASE}/orders.html`);
    const row = page.locator(`tr[data-order="${DATA.delivered}"]`);
    await row.waitFor();
    ok((await row.locator('.status').textContent()) === '배송 완료', 'my orders: the order is DELIVERED (배송 완료)');
    ok(await row.getByRole('button', { name: '주문 취소' }).count() === 0, 'a delivered order offers no cancel');
    await row.getByRole('link', { name: `주문 ${DATA.delivered}번 보기` }).click();
    await page.waitForURL(new RegExp(`order\\.html\\?id=${DATA.delivered}$`));
    await page.locator('#timeline li').nth(3).waitFor();
    const steps = await page.locator('#timeline li').allTextContents();
    ok(steps.length === 4, `the timeline has four steps (${steps.length})`, steps.join('\n'));
    ok(/주문 완료/.test(steps[0]) && /상품 준비 중 \(판매자\)/.test(steps[1]) && /배송 중 \(판매자\)/.test(steps[2])
      && /배송 완료 \(판매자\)/.test(steps[3]), 'ordered, preparing, shipping, delivered, each by the seller', steps.join('\n'));
    ok((await page.locator('#order-tracking').textContent()) === DATA.tracking, `the tracking number ${DATA.tracking}`);
    ok((await page.locator('h1').textContent()) === `주문 ${DATA.delivered}번`, 'the heading names the order');
    await shot(page, 'order-delivered');
    await page.getByLabel('반품 사유').fill(DATA.reason);
    await page.getByRole('button', { name: '반품 신청하기' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('.msg.info').textContent()).startsWith('반품 신청이 접수되었습니다.'), 'the return is taken');
    ok((await page.locator('#order-status').textContent()) === '반품 신청', 'the status is RETURN_REQUESTED (반품 신청)');
    ok(await page.locator('#timeline li').count() === 5, 'the timeline has the fifth step');
    ok(/반품 신청/.test(await page.locator('#timeline li').nth(4).textContent()), '... the return request, by the buyer');
    ok(await page.locator('#return').isHidden(), 'the return form is gone');
    await shot(page, 'order-return-requested');
  },

  async cancel() {
    await page.goto(`${BASE}/order.html?id=${DATA.preparing}`);
    await page.locator('#order-status .badge').waitFor();
    ok((await page.locator('#order-status').textContent()) === '상품 준비 중', 'an order being prepared (상품 준비 중)');
    ok(await page.locator('#return').isHidden(), 'no return form before delivery');
    await page.waitForFunction(() => document.querySelector('#balance')?.dataset.balance, null, { timeout: 10000 });
    const before = Number(await page.locator('#balance').getAttribute('data-balance'));
    await page.getByRole('button', { name: '주문 취소' }).click();
    await page.locator('.msg.info').waitFor();
    ok((await page.locator('#order-status').textContent()) === '취소됨', 'cancelled (취소됨)');
    await page.waitForFunction((w) => Number(document.querySelector('#balance')?.dataset.balance) === w,
      before + DATA.preparingTotal, { timeout: 10000 }).catch(() => {});
    ok(Number(await page.locator('#balance').getAttribute('data-balance')) === before + DATA.preparingTotal,
      `the balance is back up by ${DATA.preparingTotal}`);
    await shot(page, 'order-cancelled');
  },

  async notifications() {
    await page.goto(`${BASE}/notifications.html`);
    await page.locator('#notifications tbody tr[data-notification]').first().waitFor();
    const texts = await page.locator('#notifications tbody td.message').allTextContents();
    ok(texts.some((m) => m.startsWith(`배송이 시작되었습니다. 주문번호 ${DATA.delivered}, 운송장번호 ${DATA.tracking}`)),
      'the shipping message, with the tracking number', texts.join('\n'));
    ok(texts.some((m) => m.startsWith(`주문이 완료되었습니다. 주문번호 ${DATA.delivered}`)), '주문이 완료되었습니다');
    const first = page.locator('#notifications tbody tr[data-notification]').first();
    const nid = await first.getAttribute('data-notification');
    await first.getByRole('button').click();
    await page.locator(`tr[data-notification="${nid}"].read`).waitFor();
    ok((await page.locator(`tr[data-notification="${nid}"] td`).last().textContent()) === '읽음', 'marked read (읽음)');
    await page.getByLabel('읽지 않은 알림만').check();
    await page.waitForFunction((id) => !document.querySelector(`tr[data-notification="${id}"]`), nid, { timeout: 10000 })
      .catch(() => {});
    ok(await page.locator(`tr[data-notification="${nid}"]`).count() === 0, 'and it leaves the unread list');
    ok(await page.locator('#notifications tbody tr[data-notification]').count() > 0, 'the others stay');
    await shot(page, 'notifications');
    note(`read notification ${nid}`);
    console.log(`# read ${nid}`);
  },

  async 'every-page'() {
    for (const lang of ['ko', 'en']) {
      for (const p of [`/order.html?id=${DATA.delivered}`, '/notifications.html']) {
        await page.goto(BASE + p);
        await page.locator('#site-header nav').waitFor();
        await page.waitForLoadState('networkidle').catch(() => {});
        const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, a')]
          .filter((e) => e.type !== 'hidden' && e.offsetParent !== null)
          .filter((e) => (['BUTTON', 'A'].includes(e.tagName) ? !e.textContent.trim() && !e.getAttribute('aria-label')
            : !(e.labels && e.labels.length) && !e.getAttribute('aria-label')))
          .map((e) => e.outerHTML.slice(0, 80)));
        ok(unlabelled.length === 0, `${lang} ${p}: every control has a label`, unlabelled.join('\n'));
        ok(await page.locator('h1').count() === 1 && await page.locator('#messages .msg.error').count() === 0,
          `${lang} ${p}: renders without a problem`, await page.locator('#messages').textContent());
      }
      if (lang === 'ko') {
        await page.getByRole('button', { name: 'English' }).click();
        await page.waitForLoadState('load');
      }
    }
    await page.goto(`${BASE}/order.html?id=${DATA.delivered}`);
    await page.locator('#order-status .badge').waitFor();
    ok((await page.locator('h1').textContent()) === `Order ${DATA.delivered}`, 'English: the heading is "Order N"');
    ok((await page.locator('#order-status').textContent()) === 'Return requested', 'English: "Return requested"');
    ok(/\(seller\)/.test(await page.locator('#timeline li').nth(1).textContent()), 'English: moves say who made them');
    await shot(page, 'order-english');
    await page.getByRole('button', { name: '한국어' }).click();
    await page.waitForLoadState('load');
  },
};

run(async () => {
  for (const n of Object.keys(SCENARIOS)) {
    note(`scenario ${n}`);
    await SCENARIOS[n]();
  }
});
