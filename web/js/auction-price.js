// The auction price rule, exactly as the server computes it
// (src/domain/auction_price.c, README "Auction prices"):
//
//   steps = (endsAt - startsAt) / variationSeconds
//   k     = floor((now - startsAt) / variationSeconds), clamped to 0..steps-1
//   CONSTANT    price = origin - k * width
//   PERCENTAGE  k times p = floor(p * (10000 - rateBp) / 10000)
//               (rateBp: the rate in hundredths of a percent, 12.5 % = 1250)
//
// Every value stays below 2^53 (price <= 1e9, factor <= 9999), so plain
// numbers are exact integers here. t/91-web-auction-price.t checks this file
// against the server's currentPrice at several clock offsets.

export function ruleOf(auction) {
  const p = auction.pricePolicy;
  return {
    policy: p.type,
    origin: auction.originPrice,
    width: p.type === 'CONSTANT' ? p.variationWidth : 0,
    rateBp: p.type === 'PERCENTAGE' ? Math.round(p.discountRate * 100) : 0,
    variationMs: auction.variationSeconds * 1000,
    startsMs: Date.parse(auction.startsAt),
    endsMs: Date.parse(auction.endsAt),
  };
}

export function steps(r) {
  if (r.variationMs <= 0 || r.endsMs <= r.startsMs) return 1;
  return Math.floor((r.endsMs - r.startsMs) / r.variationMs);
}

export function stepAt(r, nowMs) {
  if (nowMs <= r.startsMs || r.variationMs <= 0) return 0;
  const k = Math.floor((nowMs - r.startsMs) / r.variationMs);
  const n = steps(r);
  return k >= n ? n - 1 : k;
}

export function priceOfStep(r, k) {
  if (r.policy === 'CONSTANT') return r.origin - k * r.width;
  let p = r.origin;
  for (let i = 0; i < k; i++) {
    const x = p * (10000 - r.rateBp);
    p = (x - (x % 10000)) / 10000;
  }
  return p;
}

export function priceAt(r, nowMs) {
  return priceOfStep(r, stepAt(r, nowMs));
}

export function statusAt(r, stock, nowMs) {
  if (nowMs < r.startsMs) return 'WAITING';
  if (nowMs >= r.endsMs) return 'FINISHED';
  return stock > 0 ? 'RUNNING' : 'SOLD_OUT';
}

// When the price next changes (ms), or null after the last drop.
export function nextDropAt(r, nowMs) {
  if (nowMs < r.startsMs) return r.startsMs;
  if (nowMs >= r.endsMs) return null;
  const k = stepAt(r, nowMs);
  return k + 1 < steps(r) ? r.startsMs + (k + 1) * r.variationMs : null;
}
