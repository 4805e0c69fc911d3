// The cart: kept on the server (GET/PUT/DELETE /api/v1/users/{id}/cart),
// paid in one step (POST .../cart/checkout), which empties it.
import { basketPage } from '../basket.js';

basketPage({
  path: 'cart', key: 'lines', order: 'checkout', empty: 'cart.empty', pay: 'cart.pay', changed: 'CART_CHANGED',
  remove: (l) => `items/${l.lineId}`,
  clearAll: { label: 'cart.clear', done: 'cart.cleared' },
});
