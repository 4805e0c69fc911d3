// The wishlist (찜): kept on the server, ordered all at once (POST
// .../wishlist/order), kept after the order unless the buyer asks to clear
// it.
import { basketPage } from '../basket.js';

basketPage({
  path: 'wishlist', key: 'items', order: 'order', empty: 'wishlist.empty', pay: 'wishlist.pay', changed: 'WISHLIST_CHANGED',
  remove: (l) => `items/${l.productId}${l.optionId ? `?optionId=${l.optionId}` : ''}`,
  clearAfter: 'wishlist.clearAfter',
});
