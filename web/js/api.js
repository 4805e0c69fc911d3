// The one way pages talk to the API (same origin, through the same nginx).
//
// - The bearer token lives in sessionStorage (never in a URL, gone with the
//   tab) and goes out as Authorization.
// - A failed answer becomes an ApiError carrying the problem document
//   (RFC 9457: title, detail, code and any extra such as currentTotal).
// - 503, and 409 IDEMPOTENCY_IN_FLIGHT, with Retry-After are retried after
//   that many seconds, up to RETRIES times, with the same Idempotency-Key;
//   onWait(seconds) is told each second so the page can show a countdown.
// - A write that moves money gets its key from the caller: one fresh key
//   per click (newKey), the same key on every retry of that click.

const SESSION = 'jangteo.session';
const RETRIES = 5;

export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION)) || null;
    } catch {
      return null;
    }
  },
  set(s) {
    sessionStorage.setItem(SESSION, JSON.stringify(s));
  },
  clear() {
    sessionStorage.removeItem(SESSION);
  },
};

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem.code || '';
    this.retryAfter = retryAfter;
  }
  // Worth trying again with the same key (the server said so, or the
  // answer never came).
  get retryable() {
    return this.status === 503 || this.status === 502 || this.status === 504 || this.code === 'NETWORK'
      || this.code === 'IDEMPOTENCY_IN_FLIGHT' || this.code === 'RATE_LIMITED';
  }
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function once(method, path, { body, key, headers = {} }) {
  const h = { Accept: 'application/json', ...headers };
  const s = session.get();
  if (s && s.token) h.Authorization = `Bearer ${s.token}`;
  if (key) h['Idempotency-Key'] = key;
  const init = { method, headers: h, cache: 'no-store' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { code: 'NETWORK', title: String(e.message || e), detail: '' }, 0);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.ok) return { status: res.status, data, headers: res.headers };
  const problem = data && typeof data === 'object' && !Array.isArray(data)
    ? data : { title: res.statusText || `HTTP ${res.status}`, detail: '', status: res.status };
  const ra = parseInt(res.headers.get('Retry-After') || '', 10);
  if (res.status === 401 && problem.code === 'UNAUTHORIZED') session.clear();
  throw new ApiError(res.status, problem, Number.isFinite(ra) ? ra : 0);
}

// api(method, path, {body, key, headers, onWait}) -> {status, data, headers}
export async function api(method, path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(method, path, opts);
    } catch (e) {
      const waitable = e instanceof ApiError && e.retryAfter > 0
        && (e.status === 503 || e.code === 'IDEMPOTENCY_IN_FLIGHT');
      if (!waitable || attempt >= RETRIES) throw e;
      for (let s = Math.min(e.retryAfter, 30); s > 0; s--) {
        if (opts.onWait) opts.onWait(s);
        await sleep(1000);
      }
      if (opts.onWait) opts.onWait(0);
    }
  }
}

export const get = (path, opts) => api('GET', path, opts).then((r) => r.data);
