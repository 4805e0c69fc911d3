// What the browser scenarios share: Debian's chromium driven by
// playwright-core (nothing downloaded), a fresh profile per run, and a
// watch on every page for console errors, uncaught exceptions, unhandled
// promise rejections and failed requests. Results go to stdout as lines
// the Perl test turns into TAP:
//
//   ok <name> | not ok <name> | # <diagnostic> | shot <path>
//
// A 4xx the scenario expects is declared with expect4xx(page, status, path
// regex); any other 4xx or 5xx answer, or a request that failed, fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.JANGTEO_URL;          // http://127.0.0.1:PORT
export const SHOTS = process.env.JANGTEO_SHOTS;       // the test's temp dir
export const DATA = JSON.parse(process.env.JANGTEO_DATA || '{}');

let failures = 0;
export function ok(cond, name, diag) {
  console.log(`${cond ? 'ok' : 'not ok'} ${name}`);
  if (!cond) {
    failures++;
    if (diag) for (const l of String(diag).split('\n')) console.log(`# ${l}`);
  }
  return cond;
}
export const note = (s) => console.log(`# ${s}`);

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let ctx;
let profile;
const watched = [];

// A fresh profile directory per run: playwright passes it to chromium as
// --user-data-dir.
export async function launch() {
  profile = mkdtempSync(join(tmpdir(), 'jangteo-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1200, height: 900 },
    locale: 'ko-KR',
    timeout: 60000,
  });
  ctx.setDefaultTimeout(15000);
  for (const p of ctx.pages()) await p.close();
  return ctx;
}

// A new tab: its own sessionStorage, so its own logged-in user (the token
// lives there), watched.
export async function newPage(label) {
  const page = await ctx.newPage();
  const w = { label, page, problems: [], expected: [] };
  watched.push(w);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // the browser's own line for an answer we expected is not a fault
    const st = /Failed to load resource: the server responded with a status of (\d{3})/.exec(m.text());
    if (st && w.expected.some((e) => e.status === Number(st[1]))) return;
    w.problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => w.problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => {
    // a fetch the page itself dropped by moving on to the next page (the
    // test clicks faster than a person) is not a failure of the server
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    w.problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    const st = r.status();
    if (st < 400) return;
    const url = new URL(r.url());
    const hit = w.expected.find((e) => e.status === st && e.path.test(url.pathname));
    if (hit) {
      hit.seen++;
      return;
    }
    w.problems.push(`unexpected ${st}: ${r.request().method()} ${url.pathname}`);
  });
  page.on('dialog', (d) => d.accept());
  // unhandled promise rejections also reach pageerror in Chromium; count
  // them explicitly as well, in case a page swallows the event
  await page.addInitScript(() => {
    window.addEventListener('unhandledrejection', (e) => console.error(`unhandledrejection: ${e.reason}`));
  });
  return page;
}

export function expect4xx(page, status, path) {
  const w = watched.find((x) => x.page === page);
  const e = { status, path, seen: 0 };
  w.expected.push(e);
  return e;
}

let shotNo = 0;
export async function shot(page, name) {
  const p = join(SHOTS, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: p, fullPage: true });
  console.log(`shot ${p}`);
  return p;
}

// Runs the scenario, then the watch's verdict on every page; exit 0 only
// when everything held.
export async function run(scenario) {
  try {
    await launch();
    await scenario();
  } catch (e) {
    ok(false, 'the scenario ran to its end', e.stack || String(e));
    for (const w of watched) {
      try { await shot(w.page, `${w.label}-at-failure`); } catch { /* closed */ }
    }
  }
  for (const w of watched) {
    ok(w.problems.length === 0, `${w.label}: no console error, uncaught error or unexpected failed request`,
      w.problems.join('\n'));
  }
  try { await ctx?.close(); } catch { /* gone */ }
  if (profile) rmSync(profile, { recursive: true, force: true });
  process.exit(failures ? 1 : 0);
}

// The API straight from the test (setup and checks, not the page).
export async function apiCall(method, path, body, token) {
  const h = { Accept: 'application/json' };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (token) h.Authorization = `Bearer ${token}`;
  const r = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// Asks the Perl test to act on the stack (stop-mariadb, start-mariadb, ...)
// and waits until it says it is done.
let stdinLines;
export function control(word) {
  if (!stdinLines) {
    stdinLines = { buf: '', waiting: [] };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => {
      stdinLines.buf += d;
      let i;
      while ((i = stdinLines.buf.indexOf('\n')) >= 0) {
        stdinLines.buf = stdinLines.buf.slice(i + 1);
        const w = stdinLines.waiting.shift();
        if (w) w();
      }
    });
  }
  return new Promise((resolve) => {
    stdinLines.waiting.push(resolve);
    console.log(`control ${word}`);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Fills a form field found by its label (as a person would).
export async function fill(page, label, value) {
  await page.getByLabel(label, { exact: true }).fill(String(value));
}

// As a person would: log in from the login page, and fill the shipping form.
export const HOME = new RegExp(`^${BASE}/(\\?.*)?$`);
export async function login(page, u) {
  await page.goto(`${BASE}/login.html`);
  const f = page.locator('#login');
  await f.getByLabel('이메일').fill(u.email);
  await f.getByLabel('비밀번호').fill(u.password);
  await f.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL(HOME);
}

export async function shipping(page, recipient = '김브라') {
  await page.getByLabel('받는 분').fill(recipient);
  await page.getByLabel('연락처').fill('010-1234-5678');
  await page.getByLabel('우편번호 (5자리)').fill('06236');
  await page.getByLabel('주소', { exact: true }).fill('서울시 강남구 테헤란로 1');
}
