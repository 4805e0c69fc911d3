/* Combining a hot product's orders into one durable commit.
 *
 * A flash sale's orders for one product pass one at a time through the
 * product's lock, which is held until COMMIT is durable: alone, every order
 * pays a whole log flush. Here an order that finds the lock busy queues
 * itself on the product (store/waitq.h) and waits; whoever holds the lock,
 * the leader, takes up to [orders] combine_max queued orders and commits
 * them in one transaction, then hands each waiter its answer. Each waiter
 * answers its own HTTP client.
 *
 * What does not change (the card's promises):
 *   - every row the batch writes is covered by a lock the leader holds until
 *     after COMMIT: the product's key (lockkey.h: the product and all its
 *     stock rows) and the balance key of every buyer in the batch, taken
 *     each on its own without waiting (store/lock.h, jt_lock_try_each); a
 *     buyer whose balance is busy (another request of theirs is in flight)
 *     goes back to the head of the queue for the next batch;
 *   - every versioned row is fenced: the stock row(s) once for the batch,
 *     each buyer's balance by its version;
 *   - idempotent answers are cached only after COMMIT, and before the locks
 *     are released; the durable idempotency rows go in with the batch.
 *
 * Exactly once, or not at all, and the client hears which (waitq.h): a
 * waiter at its deadline withdraws its entry atomically; if a leader took
 * it first, the waiter waits for the answer a while longer. A leader that
 * dies mid-batch dies with its transaction uncommitted (InnoDB rolls it
 * back when the connection goes): its waiters hear nothing and answer 503,
 * and a retry with the same key finds no durable row and runs. A waiter's
 * queue deadline leaves its in-flight marker enough life for a whole batch
 * (see queue_wait_ms), and the leader inserts no idempotency row later than
 * a batch's budget (late): so no marker lapses while its order is in a batch.
 *
 * One attempt of the batch's transaction (batch_body) reads the product (and
 * its options) and every buyer's balance, decides every order in queue order
 * against the running stock and balances with exactly the rules of the order
 * that runs alone (orders.c place_body: the same checks, the same order of
 * checks, the same codes and details), then writes: the balances, the stock,
 * and the orders, lines, ledger, outbox and idempotency rows multi-row
 * (JSON_TABLE: one statement text whatever the batch's size). A refused
 * order gets its own 409 and disturbs nobody: nothing is written for any
 * order until all are decided, so a refusal needs no rollback at all (where
 * one savepoint per order would be the way if writes came first). A version
 * conflict on one buyer's balance (possible only when a lock was lost)
 * costs the batch one more attempt without that buyer, whose order then
 * runs on its own (answer "R"); a conflict on the stock row re-runs the
 * attempt, as for an order alone. Orders that do not fit (several
 * products, Redis down) run alone as before: correctness does not depend on
 * which way an order went, only throughput does. */
#include "domain/combine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/scoreboard.h"
#include "core/metrics.h"
#include "domain/catalog.h"
#include "domain/common.h"
#include "domain/lockkey.h"
#include "domain/points.h"
#include "http/json.h"
#include "store/db.h"
#include "store/idem.h"
#include "store/lock.h"
#include "store/redis.h"
#include "store/tx.h"
#include "store/waitq.h"

#define COMBINE_MAX 64
/* how long the durable row of a queued order's own key is kept: long enough
 * for its waiter to have given up on every path (combine_place) */
#define COMBINE_KEY_TTL_S 600
/* a waiter's longest single block: past it, it tries to lead itself */
#define COMBINE_BLOCK_MS 100

static const char SQL_BATCH_PRODUCT[] =
    "SELECT p.price, p.stock, p.version, " WINDOW_EXPR ", EXISTS (SELECT 1 FROM product_options o"
    " WHERE o.product_id = p.id) FROM " JT_SQL_CLOCK ", products p WHERE p.id = ? AND p.deleted_at IS NULL";
static const char SQL_BATCH_OPTIONS[] =
    "SELECT id, extra_price, stock, version FROM product_options WHERE product_id = ? ORDER BY id";
static const char SQL_BATCH_PRODUCT_STOCK[] =
    "UPDATE products SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_BATCH_OPTION_STOCK[] =
    "UPDATE product_options s JOIN products p ON p.id = s.product_id SET s.stock = ?, s.version = s.version + 1"
    " WHERE s.id = ? AND s.version = ? AND p.version = ?";
static const char SQL_BATCH_BALANCE[] =
    "UPDATE users SET balance = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_BATCH_ORDERS[] =
    "INSERT INTO orders (user_id, status, items_total, shipping_fee, total, shipping_enc, paid_at)"
    " SELECT j.u, 'PAID', j.i, j.f, j.t, UNHEX(j.s), ? FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY,"
    " u BIGINT PATH '$.u', i BIGINT PATH '$.i', f BIGINT PATH '$.f', t BIGINT PATH '$.t',"
    " s VARCHAR(4200) PATH '$.s')) j ORDER BY j.n"
    " RETURNING id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";
static const char SQL_BATCH_ITEMS[] =
    "INSERT INTO order_items (order_id, line_no, product_id, option_id, name, unit_price, quantity, line_total)"
    " SELECT j.o, j.l, j.p, j.op, j.nm, j.u, j.q, j.t FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY,"
    " o BIGINT PATH '$.o', l INT PATH '$.l', p BIGINT PATH '$.p', op BIGINT PATH '$.op',"
    " nm VARCHAR(210) PATH '$.nm', u BIGINT PATH '$.u', q INT PATH '$.q', t BIGINT PATH '$.t')) j ORDER BY j.n";
static const char SQL_BATCH_OUTBOX[] =
    "INSERT INTO outbox (topic, aggregate_id, payload) SELECT 'order.paid', j.o, j.p FROM JSON_TABLE(?,"
    " '$[*]' COLUMNS (n FOR ORDINALITY, o BIGINT PATH '$.o', p LONGTEXT PATH '$.p')) j ORDER BY j.n";

/* The buyers' balances in one statement: IN lists padded to a power of
 * two (the last id repeated), so a handful of texts serve every size. */
#define BUYER_CLASSES 7   /* 1, 2, 4, ..., 64 */
static char *sql_buyers[BUYER_CLASSES];

static const char *
buyers_sql(int n, int *padded)
{
    int c = 0, k = 1, i;

    while (k < n && c < BUYER_CLASSES - 1) {
        k *= 2;
        c++;
    }
    *padded = k;
    if (sql_buyers[c] == NULL) {
        /* built once per process and kept: its address keys the statement cache */
        static const char head[] = "SELECT id, balance, version FROM users WHERE id IN (?";
        char *s = malloc(sizeof(head) + 3 * (size_t) k + 2);
        if (s == NULL) {
            return NULL;
        }
        strcpy(s, head);
        for (i = 1; i < k; i++) {
            strcat(s, ", ?");
        }
        strcat(s, ")");
        sql_buyers[c] = s;
    }
    return sql_buyers[c];
}

/* Every buyer's new balance in one statement, each fenced by its version:
 * CASE lists padded like the IN list (a repeated id maps to the same
 * values), so the number of rows changed is the number of buyers exactly
 * when no version moved. An IN list on the primary key, never a join: a
 * scan, if the optimizer ever picked one, takes no lock on a row it does
 * not change (READ COMMITTED's semi-consistent read). */
static char *sql_balances[BUYER_CLASSES];

static const char *
balances_sql(int n, int *padded)
{
    int c = 0, k = 1, i;

    while (k < n && c < BUYER_CLASSES - 1) {
        k *= 2;
        c++;
    }
    *padded = k;
    if (sql_balances[c] == NULL) {
        size_t cap = 160 + 36 * (size_t) k;
        char *s = malloc(cap);
        if (s == NULL) {
            return NULL;
        }
        strcpy(s, "UPDATE users SET balance = CASE id");
        for (i = 0; i < k; i++) {
            strcat(s, " WHEN ? THEN ?");
        }
        strcat(s, " END, version = version + 1 WHERE id IN (?");
        for (i = 1; i < k; i++) {
            strcat(s, ", ?");
        }
        strcat(s, ") AND version = CASE id");
        for (i = 0; i < k; i++) {
            strcat(s, " WHEN ? THEN ?");
        }
        strcat(s, " END");
        sql_balances[c] = s;
    }
    return sql_balances[c];
}

typedef enum { OUT_PENDING = 0, OUT_PAID, OUT_REFUSED, OUT_ALONE } outcome;

typedef struct {
    order_tx             orig;       /* as priced by its waiter */
    order_tx             cur;        /* this attempt's copy */
    jt_idem              idem;       /* keyed: who, which key, which request */
    int                  keyed;
    int                  internal;   /* the key is the queue's own (an order sent without one) */
    const jt_idem       *own_idem;   /* the leader's own order: its write's */
    const jt_waitq_item *item;       /* NULL: the leader's own order */
    int                  excluded;   /* its buyer's balance conflicted: runs alone */
    outcome              out;
    jt_err               err;
    const char          *detail;
    const char          *extra;
} batch_order;

typedef struct {
    jt_req      *r;
    int64_t      product;
    batch_order *o[COMBINE_MAX];
    int          n;
    int64_t      until_ms;     /* monotonic: no idempotency row is inserted later */
    int64_t      idem_ttl;
    int          careful;      /* one UPDATE per buyer (after a balance conflict) */
    int          late;
    int          decided_none; /* nothing to write: every order refused */
} batch;

/* --- the payload a waiter queues -------------------------------------------- */

static const char *
encode_payload(jt_arena *a, const order_tx *t, const jt_idem *idem, int internal)
{
    jt_buf b;
    jt_json j;
    char *hex;
    int i;

    jt_buf_init(&b, a, 512 + 2 * t->ship_len + (size_t) t->n * 96);
    jw_init(&j, &b);
    jw_obj_open(&j);
    jw_kint(&j, "b", t->buyer);
    if (t->has_expected) {
        jw_kint(&j, "e", t->expected);
    }
    if ((hex = jt_palloc(a, 2 * t->ship_len + 1)) == NULL) {
        return NULL;
    }
    sodium_bin2hex(hex, 2 * t->ship_len + 1, t->ship_sealed, t->ship_len);
    jw_kstr(&j, "s", hex);
    jw_key(&j, "l");
    jw_arr_open(&j);
    for (i = 0; i < t->n; i++) {
        const order_line *l = &t->lines[i];
        jw_arr_open(&j);
        jw_int(&j, l->product_id);
        jw_int(&j, l->option_id);
        jw_int(&j, l->quantity);
        jw_int(&j, l->unit_price);
        jw_str(&j, l->name);
        jw_arr_close(&j);
    }
    jw_arr_close(&j);
    if (idem != NULL) {
        char fphex[65];
        sodium_bin2hex(fphex, sizeof(fphex), idem->fp, 32);
        jw_kint(&j, "u", idem->user_id);
        jw_key(&j, "k");
        jw_strn(&j, idem->key, idem->key_len);
        jw_kstr(&j, "f", fphex);
        if (internal) {
            jw_kint(&j, "i", 1);
        }
    }
    jw_obj_close(&j);
    return b.oom ? NULL : jt_buf_cstr(&b);
}

static int64_t
get_int(json_object *o, const char *k, int *ok)
{
    json_object *v;

    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int)) {
        *ok = 0;
        return 0;
    }
    return json_object_get_int64(v);
}

/* Back from the queue into an order, as its waiter priced it. 0 or -1. */
static int
decode_payload(jt_arena *a, const char *text, batch_order *bo)
{
    jt_json_fault fault;
    json_object *o = jt_json_parse(text, strlen(text), &fault), *v, *lines;
    order_tx *t = &bo->orig;
    size_t i, n;
    int ok = 1;

    if (o == NULL) {
        return -1;
    }
    memset(t, 0, sizeof(*t));
    t->buyer = get_int(o, "b", &ok);
    if (json_object_object_get_ex(o, "e", &v)) {
        t->expected = get_int(o, "e", &ok);
        t->has_expected = 1;
    }
    if (json_object_object_get_ex(o, "s", &v) && json_object_is_type(v, json_type_string)) {
        size_t hl = (size_t) json_object_get_string_len(v), bl;
        t->ship_sealed = jt_palloc(a, hl / 2 + 1);
        if (t->ship_sealed == NULL
            || sodium_hex2bin(t->ship_sealed, hl / 2 + 1, json_object_get_string(v), hl, NULL, &bl, NULL) != 0) {
            ok = 0;
        }
        t->ship_len = bl;
    } else {
        ok = 0;
    }
    if (!json_object_object_get_ex(o, "l", &lines) || !json_object_is_type(lines, json_type_array)
        || (n = json_object_array_length(lines)) < 1 || n > JT_ORDER_MAX_ITEMS) {
        ok = 0;
        n = 0;
    }
    for (i = 0; i < n && ok; i++) {
        json_object *l = json_object_array_get_idx(lines, i);
        order_line *ol = &t->lines[i];
        if (!json_object_is_type(l, json_type_array) || json_object_array_length(l) != 5) {
            ok = 0;
            break;
        }
        ol->product_id = json_object_get_int64(json_object_array_get_idx(l, 0));
        ol->option_id = json_object_get_int64(json_object_array_get_idx(l, 1));
        ol->quantity = json_object_get_int64(json_object_array_get_idx(l, 2));
        ol->unit_price = json_object_get_int64(json_object_array_get_idx(l, 3));
        ol->name = jt_pstrdup(a, json_object_get_string(json_object_array_get_idx(l, 4)));
        ol->line_total = ol->unit_price * ol->quantity;   /* bounded when it was priced */
        ok = ol->name != NULL;
    }
    t->n = (int) n;
    if (ok && order_totals(t) != JT_OK) {
        ok = 0;
    }
    if (ok && json_object_object_get_ex(o, "k", &v) && json_object_is_type(v, json_type_string)) {
        json_object *f;
        unsigned char fp[32];
        size_t fl;
        const char *key = jt_pstrdup(a, json_object_get_string(v));
        if (key == NULL || !json_object_object_get_ex(o, "f", &f) || !json_object_is_type(f, json_type_string)
            || sodium_hex2bin(fp, 32, json_object_get_string(f), (size_t) json_object_get_string_len(f), NULL, &fl,
                              NULL) != 0
            || fl != 32) {
            ok = 0;
        } else {
            jt_idem_identify(&bo->idem, get_int(o, "u", &ok), key, strlen(key), fp);
            bo->keyed = 1;
            bo->internal = json_object_object_get_ex(o, "i", &f);
        }
    }
    json_object_put(o);
    return ok ? 0 : -1;
}

/* --- deciding ------------------------------------------------------------------ */

typedef struct {
    int64_t id;          /* option id, 0 for the product's own row */
    int64_t unit;        /* price (+ extra) now */
    int64_t stock;       /* as read */
    int64_t left;        /* after the orders accepted so far */
    int64_t version;
} stock_row;

typedef struct {
    int64_t id;
    int64_t balance;     /* as read */
    int64_t left;        /* after the orders accepted so far */
    int64_t version;
    int     found;
    int     touched;
} buyer_row;

static stock_row *
find_stock(stock_row *s, int n, int64_t option_id)
{
    int i;

    for (i = 0; i < n; i++) {
        if (s[i].id == option_id) {
            return &s[i];
        }
    }
    return NULL;
}

static buyer_row *
find_buyer(buyer_row *b, int n, int64_t id)
{
    int i;

    for (i = 0; i < n; i++) {
        if (b[i].id == id) {
            return &b[i];
        }
    }
    return NULL;
}

static void
refuse(batch_order *bo, jt_arena *a, jt_err e, const char *extra, const char *fmt, long long v)
{
    char detail[160];

    snprintf(detail, sizeof(detail), fmt, v);
    bo->out = OUT_REFUSED;
    bo->err = e;
    bo->detail = jt_pstrdup(a, detail);
    bo->extra = extra;
}

static void
refuse_text(batch_order *bo, jt_err e, const char *detail)
{
    bo->out = OUT_REFUSED;
    bo->err = e;
    bo->detail = detail;
    bo->extra = NULL;
}

/* One order against the running stock and balances: the rules of
 * orders.c place_body, in its order (the buyer, then per line the product,
 * its window, its price, its stock; then a changed total, the shortage, the
 * balance). Accepted: the running figures move. */
static void
decide(batch_order *bo, jt_arena *a, int window, stock_row *rows, int nrows, buyer_row *br)
{
    order_tx *t = &bo->cur;
    int i, nshort = 0, repriced = 0;
    int64_t need[JT_ORDER_MAX_ITEMS];
    jt_buf shorts;

    if (find_stock(rows, nrows, t->lines[0].option_id) == NULL) {
        refuse(bo, a, t->lines[0].option_id ? JT_E_OPTION_NOT_FOUND : JT_E_PRODUCT_NOT_FOUND, NULL,
               "product %lld is gone", (long long) t->lines[0].product_id);
        return;
    }
    if (br == NULL || !br->found) {
        refuse_text(bo, JT_E_USER_NOT_FOUND, "the buyer does not exist");
        return;
    }
    jt_buf_init(&shorts, a, 64);
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        stock_row *s = find_stock(rows, nrows, l->option_id);
        int j;

        if (s == NULL) {
            refuse(bo, a, l->option_id ? JT_E_OPTION_NOT_FOUND : JT_E_PRODUCT_NOT_FOUND, NULL,
                   "product %lld is gone", (long long) l->product_id);
            return;
        }
        if (window != SALE_OPEN) {
            refuse(bo, a, window == SALE_NOT_YET ? JT_E_NOT_ON_SALE_YET : JT_E_SALE_ENDED, NULL,
                   "product %lld is not on sale now", (long long) l->product_id);
            return;
        }
        if (s->unit != l->unit_price) {
            l->unit_price = s->unit;
            if (__builtin_mul_overflow(l->unit_price, l->quantity, &l->line_total)) {
                refuse_text(bo, JT_E_INVALID_REQUEST, "the order total is out of range");
                return;
            }
            repriced = 1;
        }
        /* two lines may draw on one stock row (never here: a line names a
         * product/option once), so the need is summed per row */
        need[i] = l->quantity;
        for (j = 0; j < i; j++) {
            if (t->lines[j].option_id == l->option_id) {
                need[i] += t->lines[j].quantity;
            }
        }
        if (s->left < need[i]) {
            int seen = 0;
            for (j = 0; j < i; j++) {
                seen |= t->lines[j].product_id == l->product_id;
            }
            if (!seen && nshort++ == 0) {
                jt_buf_addf(&shorts, "%lld", (long long) l->product_id);
            }
        }
    }
    if (repriced) {
        if (order_totals(t) != JT_OK) {
            refuse_text(bo, JT_E_INVALID_REQUEST, "the order total is out of range");
            return;
        }
        if (t->has_expected && t->expected != t->total) {
            jt_buf x;
            jt_buf_init(&x, a, 48);
            jt_buf_addf(&x, "\"currentTotal\":%lld", (long long) t->total);
            refuse(bo, a, JT_E_PRICE_CHANGED, jt_buf_cstr(&x), "the total is now %lld", (long long) t->total);
            return;
        }
    }
    if (nshort > 0) {
        jt_buf x;
        char detail[96];
        jt_buf_init(&x, a, 64);
        jt_buf_addf(&x, "\"productIds\":[%s]", jt_buf_cstr(&shorts));
        snprintf(detail, sizeof(detail), "not enough stock for product(s) %s", jt_buf_cstr(&shorts));
        bo->out = OUT_REFUSED;
        bo->err = JT_E_OUT_OF_STOCK;
        bo->detail = jt_pstrdup(a, detail);
        bo->extra = jt_buf_cstr(&x);
        return;
    }
    {
        jt_err why;
        int64_t after;
        if (points_bound(br->left, -t->total, &after, &why) != JT_TX_COMMIT) {
            if (why == JT_E_INSUFFICIENT_BALANCE) {
                refuse(bo, a, why, NULL, "the order costs %lld: the balance is too low", (long long) t->total);
            } else {
                refuse_text(bo, why, "the balance is out of range");
            }
            return;
        }
        br->left = after;
        br->touched = 1;
        t->balance = after;
    }
    for (i = 0; i < t->n; i++) {
        find_stock(rows, nrows, t->lines[i].option_id)->left -= t->lines[i].quantity;
    }
    bo->out = OUT_PAID;
}

/* --- the batch's transaction ------------------------------------------------------ */

static jt_tx_step
write_rows(jt_tx *tx, batch *b, stock_row *rows, int nrows, int64_t pversion, buyer_row *buyers, int nb, int npaid);

/* One attempt: read, decide every order, write (see the top of the file). */
static jt_tx_step
batch_body(jt_tx *tx)
{
    batch *b = tx->data;
    jt_arena *a = tx->arena;
    jt_sql_time_buf now;
    jt_val p[2], *ids;
    jt_rows rows;
    stock_row srows[JT_PRODUCT_MAX_OPTIONS + 1];
    buyer_row buyers[COMBINE_MAX];
    const char *sql;
    int64_t pversion;
    int nrows = 0, nb = 0, i, window, padded, npaid = 0;

    b->decided_none = 0;
    for (i = 0; i < b->n; i++) {
        batch_order *bo = b->o[i];
        bo->cur = bo->orig;
        bo->out = bo->excluded ? OUT_ALONE : OUT_PENDING;
        bo->err = JT_OK;
        bo->detail = bo->extra = NULL;
    }

    /* 1. the product, and its options if it has them */
    p[0] = jt_sql_now(&now);
    p[1] = JT_VI(b->product);
    JT_TX_EXEC(tx, SQL_BATCH_PRODUCT, p, 2, &rows);
    if (rows.nrows == 0) {
        window = SALE_OPEN;
        pversion = 0;
    } else {
        window = (int) jt_cell(&rows, 0, 3)->i;
        pversion = jt_cell(&rows, 0, 2)->i;
        if (jt_cell(&rows, 0, 4)->i) {
            int64_t price = jt_cell(&rows, 0, 0)->i;
            p[0] = JT_VI(b->product);
            JT_TX_EXEC(tx, SQL_BATCH_OPTIONS, p, 1, &rows);
            for (i = 0; i < rows.nrows && nrows < JT_PRODUCT_MAX_OPTIONS; i++, nrows++) {
                srows[nrows].id = jt_cell(&rows, i, 0)->i;
                srows[nrows].unit = price + jt_cell(&rows, i, 1)->i;
                srows[nrows].stock = srows[nrows].left = jt_cell(&rows, i, 2)->i;
                srows[nrows].version = jt_cell(&rows, i, 3)->i;
            }
        } else {
            srows[0].id = 0;
            srows[0].unit = jt_cell(&rows, 0, 0)->i;
            srows[0].stock = srows[0].left = jt_cell(&rows, 0, 1)->i;
            srows[0].version = pversion;
            nrows = 1;
        }
    }

    /* 2. every buyer's balance */
    for (i = 0; i < b->n; i++) {
        if (b->o[i]->out == OUT_PENDING && find_buyer(buyers, nb, b->o[i]->orig.buyer) == NULL) {
            memset(&buyers[nb], 0, sizeof(buyers[nb]));
            buyers[nb++].id = b->o[i]->orig.buyer;
        }
    }
    if (nb > 0) {
        if ((sql = buyers_sql(nb, &padded)) == NULL || (ids = jt_palloc(a, sizeof(jt_val) * (size_t) padded)) == NULL) {
            tx->db_rc = JT_DB_ERROR;
            return JT_TX_DBERR;
        }
        for (i = 0; i < padded; i++) {
            ids[i] = JT_VI(buyers[i < nb ? i : nb - 1].id);
        }
        JT_TX_EXEC(tx, sql, ids, padded, &rows);
        for (i = 0; i < rows.nrows; i++) {
            buyer_row *br = find_buyer(buyers, nb, jt_cell(&rows, i, 0)->i);
            if (br != NULL) {
                br->balance = br->left = jt_cell(&rows, i, 1)->i;
                br->version = jt_cell(&rows, i, 2)->i;
                br->found = 1;
            }
        }
    }

    /* 3. every order, in queue order */
    for (i = 0; i < b->n; i++) {
        batch_order *bo = b->o[i];
        if (bo->out == OUT_PENDING) {
            decide(bo, a, window, srows, nrows, find_buyer(buyers, nb, bo->orig.buyer));
            npaid += bo->out == OUT_PAID;
        }
    }
    if (npaid == 0) {
        b->decided_none = 1;
        return JT_TX_ABORT;
    }
    return write_rows(tx, b, srows, nrows, pversion, buyers, nb, npaid);
}

/* The balances, the stock, then every row of the paid orders. */
static jt_tx_step
write_rows(jt_tx *tx, batch *b, stock_row *rows, int nrows, int64_t pversion, buyer_row *buyers, int nb, int npaid)
{
    jt_arena *a = tx->arena;
    jt_sql_time_buf paid_at;
    jt_val p[4];
    jt_rows res;
    jt_buf ob, ib, xb;
    jt_json ow, iw, xw;
    points_entry *ledger;
    jt_idem_row *idem;
    int i, k, nidem = 0, conflicts = 0;

    /* 1. balances, each fenced by its version: all in one statement; when
     * that changes fewer rows than buyers, some balance moved (its lock was
     * lost) and the attempt starts again "carefully", one UPDATE a buyer,
     * so that a buyer whose balance conflicts can be told apart: their
     * orders run alone and the attempt starts again without them. */
    if (!b->careful) {
        int touched = 0, padded, m = 0;
        const char *sql;
        jt_val *v;
        for (i = 0; i < nb; i++) {
            touched += buyers[i].touched;
        }
        if ((sql = balances_sql(touched, &padded)) == NULL
            || (v = jt_palloc(a, sizeof(jt_val) * 5 * (size_t) padded)) == NULL) {
            tx->db_rc = JT_DB_ERROR;
            return JT_TX_DBERR;
        }
        for (i = 0, k = 0; k < padded; i++) {
            const buyer_row *br;
            if (i < nb && !buyers[i].touched) {
                continue;
            }
            br = i < nb ? &buyers[i] : &buyers[m];   /* padding: the last touched again */
            if (i < nb) {
                m = i;
            }
            v[2 * k] = JT_VI(br->id);
            v[2 * k + 1] = JT_VI(br->left);
            v[2 * padded + k] = JT_VI(br->id);
            v[3 * padded + 2 * k] = JT_VI(br->id);
            v[3 * padded + 2 * k + 1] = JT_VI(br->version);
            k++;
        }
        JT_TX_EXEC(tx, sql, v, 5 * padded, &res);
        if (res.affected != (uint64_t) touched) {
            b->careful = 1;
            return JT_TX_CONFLICT;
        }
    }
    for (i = 0; b->careful && i < nb; i++) {
        if (!buyers[i].touched) {
            continue;
        }
        p[0] = JT_VI(buyers[i].left);
        p[1] = JT_VI(buyers[i].id);
        p[2] = JT_VI(buyers[i].version);
        JT_TX_EXEC(tx, SQL_BATCH_BALANCE, p, 3, &res);
        if (res.affected != 1) {
            for (k = 0; k < b->n; k++) {
                if (b->o[k]->orig.buyer == buyers[i].id) {
                    b->o[k]->excluded = 1;
                }
            }
            conflicts++;
        }
    }
    if (conflicts) {
        return JT_TX_CONFLICT;
    }

    /* 2. the stock, once per row for the whole batch */
    for (i = 0; i < nrows; i++) {
        if (rows[i].left == rows[i].stock) {
            continue;
        }
        p[0] = JT_VI(rows[i].left);
        p[1] = JT_VI(rows[i].id ? rows[i].id : b->product);
        p[2] = JT_VI(rows[i].version);
        p[3] = JT_VI(pversion);
        JT_TX_EXEC(tx, rows[i].id ? SQL_BATCH_OPTION_STOCK : SQL_BATCH_PRODUCT_STOCK, p, rows[i].id ? 4 : 3, &res);
        if (res.affected != 1) {
            return JT_TX_CONFLICT;
        }
    }

    /* 3. the orders: ids and times back in queue order */
    jt_buf_init(&ob, a, 64 + (size_t) npaid * 300);
    jw_init(&ow, &ob);
    jw_arr_open(&ow);
    for (i = 0; i < b->n; i++) {
        order_tx *t = &b->o[i]->cur;
        char *hex;
        if (b->o[i]->out != OUT_PAID) {
            continue;
        }
        if ((hex = jt_palloc(a, 2 * t->ship_len + 1)) == NULL) {
            tx->db_rc = JT_DB_ERROR;
            return JT_TX_DBERR;
        }
        sodium_bin2hex(hex, 2 * t->ship_len + 1, t->ship_sealed, t->ship_len);
        jw_obj_open(&ow);
        jw_kint(&ow, "u", t->buyer);
        jw_kint(&ow, "i", t->items_total);
        jw_kint(&ow, "f", t->shipping_fee);
        jw_kint(&ow, "t", t->total);
        jw_kstr(&ow, "s", hex);
        jw_obj_close(&ow);
    }
    jw_arr_close(&ow);
    p[0] = jt_sql_now(&paid_at);   /* business time: the lifecycle counts from it */
    p[1] = JT_VB(ob.data, ob.len);
    JT_TX_EXEC(tx, SQL_BATCH_ORDERS, p, 2, &res);
    if (ob.oom || res.nrows != npaid) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }

    /* 4. lines, ledger, outbox, idempotency: every paid order's answer is
     * known now, and so is each of these rows */
    ledger = jt_palloc(a, sizeof(*ledger) * (size_t) npaid);
    idem = jt_palloc(a, sizeof(*idem) * (size_t) npaid);
    if (ledger == NULL || idem == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    jt_buf_init(&ib, a, 64 + (size_t) npaid * 200);
    jt_buf_init(&xb, a, 64 + (size_t) npaid * 600);
    jw_init(&iw, &ib);
    jw_init(&xw, &xb);
    jw_arr_open(&iw);
    jw_arr_open(&xw);
    for (i = 0, k = 0; i < b->n; i++) {
        batch_order *bo = b->o[i];
        order_tx *t = &bo->cur;
        int l;
        if (bo->out != OUT_PAID) {
            continue;
        }
        t->order_id = jt_cell(&res, k, 0)->i;
        t->created_at = jt_cell(&res, k, 1)->s;
        order_answer_body(a, t);
        for (l = 0; l < t->n; l++) {
            const order_line *ol = &t->lines[l];
            jw_obj_open(&iw);
            jw_kint(&iw, "o", t->order_id);
            jw_kint(&iw, "l", l + 1);
            jw_kint(&iw, "p", ol->product_id);
            if (ol->option_id) {
                jw_kint(&iw, "op", ol->option_id);
            } else {
                jw_knull(&iw, "op");
            }
            jw_kstr(&iw, "nm", ol->name);
            jw_kint(&iw, "u", ol->unit_price);
            jw_kint(&iw, "q", ol->quantity);
            jw_kint(&iw, "t", ol->line_total);
            jw_obj_close(&iw);
        }
        jw_obj_open(&xw);
        jw_kint(&xw, "o", t->order_id);
        jw_key(&xw, "p");
        jw_strn(&xw, t->body.data, t->body.len);
        jw_obj_close(&xw);
        ledger[k].user_id = t->buyer;
        ledger[k].delta = -t->total;
        ledger[k].after = t->balance;
        ledger[k].kind = "ORDER_PAYMENT";
        ledger[k].ref_id = t->order_id;
        if (bo->keyed || bo->own_idem != NULL) {
            idem[nidem].id = bo->own_idem != NULL ? bo->own_idem : &bo->idem;
            idem[nidem].status = 201;
            idem[nidem].body = t->body.data;
            idem[nidem].len = t->body.len;
            idem[nidem].ref_kind = "ORDER";
            idem[nidem].ref_id = t->order_id;
            idem[nidem].ttl_s = bo->internal ? COMBINE_KEY_TTL_S : b->idem_ttl;
            nidem++;
        }
        k++;
    }
    jw_arr_close(&iw);
    jw_arr_close(&xw);
    if (ib.oom || xb.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VB(ib.data, ib.len);
    JT_TX_EXEC(tx, SQL_BATCH_ITEMS, p, 1, &res);
    if (points_record_many(tx, ledger, npaid) != JT_TX_COMMIT) {
        return JT_TX_DBERR;
    }
    p[0] = JT_VB(xb.data, xb.len);
    JT_TX_EXEC(tx, SQL_BATCH_OUTBOX, p, 1, &res);
    if (nidem > 0) {
        if (jt_clock_mono_ms() >= b->until_ms) {
            b->late = 1;
            return JT_TX_ABORT;
        }
        return jt_idem_record_many(tx, idem, nidem);
    }
    return JT_TX_COMMIT;
}

/* --- leading ---------------------------------------------------------------------- */

static const char *
answer_of(jt_arena *a, const batch_order *bo)
{
    jt_buf b;

    jt_buf_init(&b, a, bo->out == OUT_PAID ? bo->cur.body.len + 32 : 256);
    switch (bo->out) {
    case OUT_PAID:
        jt_buf_addf(&b, "S%lld|", (long long) bo->cur.order_id);
        jt_buf_add(&b, bo->cur.body.data, bo->cur.body.len);
        break;
    case OUT_REFUSED:
        jt_buf_addf(&b, "E%d\x1f%s\x1f%s", (int) bo->err, bo->extra ? bo->extra : "", bo->detail ? bo->detail : "");
        break;
    default:
        jt_buf_adds(&b, "R");
    }
    return jt_buf_cstr(&b);
}

static void
count_batch(int npaid)
{
    int bucket = 0, k = 1;

    while (k < npaid && bucket < 7) {
        k *= 2;
        bucket++;
    }
    JT_METRIC_INC(combine_batch[bucket]);
    JT_METRIC_ADD(combine_batch_sum, npaid);
    JT_METRIC_INC(order_commits);
    if (npaid > 1) {
        JT_METRIC_ADD(orders_combined, npaid);
    }
}

/* After a turn, of what it was given in `held`, the leader keeps the
 * product's key (it may lead on) and lets the rest go (its own buyer's
 * balance, when it had an order of its own). */
static void
keep_product(jt_req *r, int64_t product, jt_lockset *held)
{
    jt_lockset rest;
    const char *pkey = jt_lockkey_product(r->arena, product);

    if (pkey == NULL) {
        jt_lock_release_all(r->redis, r->arena, held);
        return;
    }
    jt_lock_split(held, pkey, &rest);
    jt_lock_release_all(r->redis, r->arena, &rest);
}

/* The leader's turn, holding the product's lock in `held` (and, when it
 * has an order of its own, that buyer's balance too): take the queue,
 * commit the batch, release, answer. `own` (may be NULL) is the leader's
 * order; its outcome is left in it. Returns the number of orders run (and
 * `held` is released but for the product's key, which the caller keeps to
 * lead on or releases), or -1 when nothing was claimed: then `held` is
 * untouched, the caller's to use or release. */
static int
lead(jt_req *r, jt_write *w, batch_order *own, int64_t product, const char *queue, jt_lockset *held)
{
    const jt_conf *c = r->conf;
    jt_arena *a = r->arena;
    jt_waitq_item items[JT_WAITQ_MAX_CLAIM], deferred[JT_WAITQ_MAX_CLAIM];
    const char *bkeys[JT_WAITQ_MAX_CLAIM], *answers[JT_WAITQ_MAX_CLAIM];
    const jt_waitq_item *answered[JT_WAITQ_MAX_CLAIM];
    int got[JT_WAITQ_MAX_CLAIM];
    batch_order *claimed[JT_WAITQ_MAX_CLAIM];
    jt_tx_policy pol = w->policy;
    jt_lockset balances;
    jt_idem_row cache[COMBINE_MAX];
    batch b;
    jt_tx_rc rc;
    int n, i, ndef = 0, nans = 0, ncache = 0, npaid = 0, max = (int) c->combine_max - (own ? 1 : 0);

    memset(&balances, 0, sizeof(balances));
    n = jt_waitq_claim(r->redis, a, queue, max, c->lock_wait_ms + c->tx_deadline_ms, items);
    if (n <= 0) {
        return -1;
    }
    memset(&b, 0, sizeof(b));
    b.r = r;
    b.product = product;
    b.idem_ttl = c->idem_ttl;
    for (i = 0; i < n; i++) {
        claimed[i] = jt_pcalloc(a, sizeof(batch_order));
        if (claimed[i] == NULL || decode_payload(a, items[i].payload, claimed[i]) != 0) {
            /* not ours to judge: its waiter runs it on its own */
            answered[nans] = &items[i];
            answers[nans++] = "R";
            claimed[i] = NULL;
            continue;
        }
        claimed[i]->item = &items[i];
        bkeys[i] = jt_lockkey_balance(a, claimed[i]->orig.buyer);
    }
    /* the balances of the claimed orders' buyers, each on its own; the
     * leader's own buyer's is held already */
    {
        const char *want[JT_WAITQ_MAX_CLAIM];
        int map[JT_WAITQ_MAX_CLAIM], nw = 0;
        for (i = 0; i < n; i++) {
            if (claimed[i] != NULL && !(own && claimed[i]->orig.buyer == own->orig.buyer)) {
                map[nw] = i;
                want[nw++] = bkeys[i];
            }
        }
        for (i = 0; i < n; i++) {
            got[i] = claimed[i] != NULL && own && claimed[i]->orig.buyer == own->orig.buyer;
        }
        if (nw > 0) {
            int g[JT_WAITQ_MAX_CLAIM];
            if (jt_lock_try_each(r->redis, a, &balances, want, nw, c->lock_lease_ms, g) != JT_LOCK_OK) {
                for (i = 0; i < nw; i++) {
                    g[i] = 0;
                }
            }
            for (i = 0; i < nw; i++) {
                got[map[i]] = g[i];
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (claimed[i] == NULL) {
            continue;
        }
        if (!got[i]) {
            deferred[ndef++] = items[i];   /* its buyer is busy: the next batch */
        } else if (b.n < COMBINE_MAX) {
            b.o[b.n++] = claimed[i];
        }
    }
    if (ndef > 0) {
        (void) jt_waitq_requeue(r->redis, a, queue, deferred, ndef);
    }
    if (own != NULL && b.n < COMBINE_MAX) {
        b.o[b.n++] = own;   /* the newest arrival: last */
    }
    if (b.n == 0) {
        /* every one taken waits for a busy balance: nothing to run now */
        keep_product(r, product, held);
        (void) jt_waitq_answer(r->redis, a, answered, answers, nans, c->lock_wait_ms + c->tx_deadline_ms, &balances);
        return 0;
    }

    /* the transaction: START TRANSACTION first (it takes nothing until the
     * first statement), then every attempt of batch_body */
    if (jt_scoreboard_self() != NULL) {
        __atomic_store_n(&jt_scoreboard_self()->leading, b.n, __ATOMIC_RELAXED);   /* /status shows it */
    }
    b.until_ms = jt_clock_mono_ms() + c->tx_deadline_ms + c->lock_lease_ms;
    if (own != NULL && own->own_idem != NULL && w->idem.marker_held && w->marker_until_ms < b.until_ms) {
        b.until_ms = w->marker_until_ms;
    }
    (void) jt_db_begin(r->db);
    rc = jt_tx_run(r->db, a, &pol, batch_body, &b);
    if (rc != JT_TX_OK && !(rc == JT_TX_ABORTED && b.decided_none && !b.late)) {
        /* nothing committed: every order answers as the failure says, or
         * runs alone (a duplicate key, a late batch) */
        jt_err e = rc == JT_TX_DB_DOWN ? JT_E_DATABASE_UNAVAILABLE
                   : rc == JT_TX_EXHAUSTED ? JT_E_CONFLICT_RETRY_EXHAUSTED
                   : rc == JT_TX_DUPLICATE || b.late ? JT_OK
                                                     : JT_E_INTERNAL;
        for (i = 0; i < b.n; i++) {
            b.o[i]->out = e == JT_OK ? OUT_ALONE : OUT_REFUSED;
            b.o[i]->err = e;
            b.o[i]->detail = e == JT_E_DATABASE_UNAVAILABLE ? "the database is unavailable; retry later"
                             : "too busy: concurrent updates kept conflicting";
            b.o[i]->extra = NULL;
        }
        if (rc == JT_TX_DB_ERROR) {
            jt_log_error("combine: a batch of %d orders on product %lld failed (%s)", b.n, (long long) product,
                         r->db->last_error);
        }
    }
    if (rc == JT_TX_OK) {
        for (i = 0; i < b.n; i++) {
            batch_order *bo = b.o[i];
            if (bo->out == OUT_PAID) {
                npaid++;
                if ((bo->keyed && !bo->internal) || bo->own_idem != NULL) {
                    cache[ncache].id = bo->own_idem != NULL ? bo->own_idem : &bo->idem;
                    cache[ncache].status = 201;
                    cache[ncache].body = bo->cur.body.data;
                    cache[ncache].len = bo->cur.body.len;
                    cache[ncache].ttl_s = c->idem_ttl;
                    ncache++;
                }
            }
        }
        count_batch(npaid);
        /* after COMMIT: the keyed answers into the cache, then the locks */
        jt_idem_cache_many(r->redis, a, cache, ncache);
    }
    keep_product(r, product, held);
    if (jt_scoreboard_self() != NULL) {
        __atomic_store_n(&jt_scoreboard_self()->leading, 0, __ATOMIC_RELAXED);
    }
    for (i = 0; i < b.n; i++) {
        if (b.o[i]->item != NULL && nans < JT_WAITQ_MAX_CLAIM) {
            answered[nans] = b.o[i]->item;
            answers[nans++] = answer_of(a, b.o[i]);
        }
    }
    /* the answers, and the balances let go, in one round trip */
    if (jt_waitq_answer(r->redis, a, answered, answers, nans, c->lock_wait_ms + c->tx_deadline_ms, &balances)
        != JT_WAITQ_OK) {
        jt_log_warn("combine: could not hand %d answers back; their waiters will time out", nans);
    }
    return b.n;
}

/* --- the order's side ------------------------------------------------------------ */

int
combine_eligible(jt_req *r, const order_tx *t)
{
    const jt_conf *c = r->conf;
    int i;

    if (c->combine_max < 2 || t->n < 1 || jt_redis_ready(r->redis) != 0) {
        return 0;
    }
    /* an order from a cart or a wishlist changes the buyer's rows in its
     * own transaction (orders.h: the hook), which a batch does not run */
    if (t->hook != NULL) {
        return 0;
    }
    for (i = 1; i < t->n; i++) {
        if (t->lines[i].product_id != t->lines[0].product_id) {
            return 0;
        }
    }
    return 1;
}

/* A waiter's queue deadline: the lock wait, but never so late that a batch
 * taking it at the last moment could outlive the request's in-flight marker
 * (write.h: marker_until_ms). */
static int64_t
queue_wait_ms(const jt_conf *c, const jt_write *w)
{
    int64_t wait = c->lock_wait_ms, left;

    if (w->has_key && w->idem.marker_held) {
        left = w->marker_until_ms - jt_clock_mono_ms() - c->tx_deadline_ms - c->lock_lease_ms;
        if (left < wait) {
            wait = left;
        }
    }
    return wait;
}

/* The waiter's answer, as the leader wrote it. */
static combine_rc
take_answer(jt_req *r, jt_write *w, order_tx *t, const char *ans, jt_err *e)
{
    if (ans[0] == 'S') {
        const char *bar = strchr(ans, '|');
        if (bar == NULL) {
            *e = jt_fail(r, JT_E_INTERNAL, "a malformed combined answer");
            return COMBINE_DONE;
        }
        t->order_id = strtoll(ans + 1, NULL, 10);
        w->status = 201;
        jt_buf_init(&w->answer, r->arena, strlen(bar + 1) + 1);
        jt_buf_adds(&w->answer, bar + 1);
        w->cached = 1;   /* the leader put it in the cache, after COMMIT */
        JT_METRIC_INC(orders_paid);
        order_reply_created(r, w, t->order_id);
        *e = JT_OK;
        return COMBINE_DONE;
    }
    if (ans[0] == 'E') {
        char *s1 = strchr(ans, '\x1f'), *s2 = s1 ? strchr(s1 + 1, '\x1f') : NULL;
        jt_err code = (jt_err) atoi(ans + 1);
        if (s1 == NULL || s2 == NULL || code <= JT_OK || code >= JT_E__COUNT) {
            *e = jt_fail(r, JT_E_INTERNAL, "a malformed combined answer");
            return COMBINE_DONE;
        }
        if (s2 > s1 + 1) {
            r->problem_extra = jt_pstrndup(r->arena, s1 + 1, (size_t) (s2 - s1 - 1));
        }
        if (code == JT_E_OUT_OF_STOCK) {
            JT_METRIC_INC(orders_out_of_stock);
        }
        *e = jt_fail(r, code, "%s", s2 + 1);
        return COMBINE_DONE;
    }
    if (ans[0] == 'X') {
        JT_METRIC_INC(combine_expired);
        *e = jt_fail(r, JT_E_LOCK_TIMEOUT, "too busy: the order waited too long for its product");
        return COMBINE_DONE;
    }
    return COMBINE_ALONE;   /* "R": run it on its own */
}

static combine_rc
own_outcome(jt_req *r, jt_write *w, batch_order *own, order_tx *t, jt_err *e)
{
    if (own->out == OUT_PAID) {
        *t = own->cur;
        w->status = 201;
        w->answer = own->cur.body;
        w->cached = 1;
        JT_METRIC_INC(orders_paid);
        order_reply_created(r, w, t->order_id);
        *e = JT_OK;
        return COMBINE_DONE;
    }
    if (own->out == OUT_REFUSED) {
        if (own->extra != NULL) {
            r->problem_extra = own->extra;
        }
        if (own->err == JT_E_OUT_OF_STOCK) {
            JT_METRIC_INC(orders_out_of_stock);
        }
        *e = jt_fail(r, own->err, "%s", own->detail ? own->detail : "");
        return COMBINE_DONE;
    }
    return COMBINE_ALONE;
}

/* A leader that has answered its own client goes on leading while its
 * product's queue is not empty (jt_req.after): the product's lock passes
 * from one batch to the next without a release, a wake, and another
 * process being scheduled to take the lock, claim and begin. Bounded: at
 * most COMBINE_CHAIN_MAX turns, and none that could outlive the lock's
 * lease, taken at taken_ms. */
#define COMBINE_CHAIN_MAX 16
#define COMBINE_LEASE_MARGIN_MS 1000

typedef struct {
    int64_t    product;
    char       queue[48];
    jt_lockset held;       /* the product's key alone */
    int64_t    until_ms;   /* the last moment a turn may start */
} lead_chain;

static void
lead_on(jt_req *r, void *data)
{
    lead_chain *ch = data;
    jt_write w;
    int k;

    memset(&w, 0, sizeof(w));
    jt_tx_policy_init(&w.policy, r->conf);
    for (k = 0; k < COMBINE_CHAIN_MAX && jt_clock_mono_ms() < ch->until_ms; k++) {
        if (lead(r, &w, NULL, ch->product, ch->queue, &ch->held) <= 0) {
            break;
        }
        JT_METRIC_INC(combine_chained);
    }
    jt_lock_release_all(r->redis, r->arena, &ch->held);
}

/* After a turn kept the product's key in held: lead on once the client has
 * its answer, or let it go now when there is no time for another turn. */
static void
lead_later(jt_req *r, int64_t product, const char *queue, jt_lockset *held, int64_t taken_ms)
{
    const jt_conf *c = r->conf;
    lead_chain *ch = jt_pcalloc(r->arena, sizeof(*ch));
    int64_t until = taken_ms + c->lock_lease_ms - c->tx_deadline_ms - COMBINE_LEASE_MARGIN_MS;

    if (ch == NULL || jt_clock_mono_ms() >= until) {
        jt_lock_release_all(r->redis, r->arena, held);
        return;
    }
    ch->product = product;
    snprintf(ch->queue, sizeof(ch->queue), "%s", queue);
    ch->held = *held;
    ch->until_ms = until;
    r->after = lead_on;
    r->after_data = ch;
}

combine_rc
combine_place(jt_req *r, jt_write *w, order_tx *t, jt_err *e)
{
    const jt_conf *c = r->conf;
    jt_arena *a = r->arena;
    int64_t product = t->lines[0].product_id, deadline, wait;
    const char *pkey = jt_lockkey_product(a, product), *payload;
    const char *keys[2];
    char queue[48], wake[64], token[33];
    jt_waitq_entry entry;
    jt_idem internal;
    jt_lockset held;
    batch_order *own;
    int try_now = 0;
    int64_t taken_ms;

    keys[0] = pkey;
    keys[1] = jt_lockkey_balance(a, t->buyer);
    if (pkey == NULL || keys[1] == NULL || (own = jt_pcalloc(a, sizeof(*own))) == NULL) {
        return COMBINE_ALONE;
    }
    snprintf(queue, sizeof(queue), "cq:%lld", (long long) product);
    snprintf(wake, sizeof(wake), "%s:wake", pkey);
    wait = queue_wait_ms(c, w);
    if (wait <= 0) {
        return COMBINE_ALONE;
    }

    /* An order sent without a key is queued with one of the queue's own
     * (the entry's id), so that, whatever becomes of the queue or of a
     * leader, it can always be run on its own afterwards without running
     * twice: its durable row is inserted with it, by whoever commits it. */
    memset(&entry, 0, sizeof(entry));
    if (!w->has_key) {
        unsigned char rnd[16], fp[32];
        char *key = jt_palloc(a, 3 + 2 * sizeof(rnd) + 1);
        if (key == NULL) {
            return COMBINE_ALONE;
        }
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(entry.id, sizeof(entry.id), rnd, sizeof(rnd));
        snprintf(key, 3 + 2 * sizeof(rnd) + 1, "~q:%s", entry.id);
        crypto_hash_sha256(fp, (const unsigned char *) key, strlen(key));
        jt_idem_identify(&internal, t->buyer, key, strlen(key), fp);
    }
    if ((payload = encode_payload(a, t, w->has_key ? &w->idem : &internal, !w->has_key)) == NULL) {
        return COMBINE_ALONE;
    }

    /* 1. in one round trip: both locks when they are free (then lead, with
     * this order last, or run it alone as orders always ran when nobody is
     * queued), or a place in the queue */
    jt_lock_new_token(token);
    taken_ms = jt_clock_mono_ms();   /* no later than the lease starts */
    switch (jt_waitq_join(r->redis, a, queue, &entry, payload, wait, wait + 2 * (c->tx_deadline_ms + c->lock_lease_ms),
                          keys, 2, token, c->lock_lease_ms, &try_now)) {
    case JT_WAITQ_JOIN_LOCKED:
        if (jt_lock_adopt(a, &held, keys, 2, token) != 0) {
            return COMBINE_ALONE;   /* the leases run out by themselves */
        }
        own->orig = *t;
        own->own_idem = w->has_key ? &w->idem : NULL;
        /* nobody queued: run alone at once, without the claim's round trip
         * (store/waitq.h: a later arrival is woken by our release) */
        if (!entry.queued || lead(r, w, own, product, queue, &held) < 0) {
            jt_write_adopt_locks(r, w, &held);
            return COMBINE_ALONE_LOCKED;
        }
        {
            combine_rc rc = own_outcome(r, w, own, t, e);
            if (rc == COMBINE_DONE) {
                lead_later(r, product, queue, &held, taken_ms);
            } else {
                jt_lock_release_all(r->redis, a, &held);   /* it runs alone: it takes the key again */
            }
            return rc;
        }
    case JT_WAITQ_JOIN_DOWN:
        return COMBINE_ALONE;
    default:
        break;
    }
    if (!w->has_key) {
        w->idem = internal;
        w->has_key = 1;
        w->internal_key = 1;
        w->idem_ttl = COMBINE_KEY_TTL_S;
    }

    /* 2. queued: lead whenever the lock is free, else wait for the answer */
    deadline = jt_clock_mono_ms() + wait;
    for (;;) {
        const char *ans = NULL;
        int64_t left = deadline - jt_clock_mono_ms();
        jt_lockset lead_lock;

        /* after the join (when the product was free) and after every wake
         * or quiet spell: the product's lock free means nobody leads */
        taken_ms = jt_clock_mono_ms();
        if (try_now && jt_lock_acquire_all(r->redis, a, &lead_lock, &pkey, 1, 0, c->lock_lease_ms) == JT_LOCK_OK) {
            int led = lead(r, w, NULL, product, queue, &lead_lock);
            if (led > 0 && jt_waitq_answer_now(r->redis, a, &entry, &ans) == 1) {
                /* ours was in the turn: answer, and lead on */
                lead_later(r, product, queue, &lead_lock, taken_ms);
                return take_answer(r, w, t, ans, e);
            }
            jt_lock_release_all(r->redis, a, &lead_lock);   /* the product's key: ours in every case */
            if (led == 0 && left > 0) {
                /* what it took waits for a busy balance (maybe our own):
                 * give that a moment instead of taking it again at once */
                if (jt_waitq_await(r->redis, a, &entry, entry.reply_key, left < 20 ? left : 20, &ans)
                    == JT_WAITQ_ANSWERED) {
                    return take_answer(r, w, t, ans, e);
                }
                continue;
            }
        }
        if (left <= 0) {
            break;
        }
        try_now = 1;
        switch (jt_waitq_await(r->redis, a, &entry, wake, left < COMBINE_BLOCK_MS ? left : COMBINE_BLOCK_MS, &ans)) {
        case JT_WAITQ_ANSWERED:
            return take_answer(r, w, t, ans, e);
        case JT_WAITQ_GONE:
            /* Redis went away: a leader may have taken us or not; run on
             * our own, fenced: the key makes it once either way */
            return COMBINE_ALONE;
        default:
            break;
        }
    }

    /* 3. our deadline: withdraw, or wait for the leader that took us */
    switch (jt_waitq_withdraw(r->redis, a, queue, &entry)) {
    case 1:
        JT_METRIC_INC(combine_expired);
        *e = jt_fail(r, JT_E_LOCK_TIMEOUT, "too busy: could not get the lock in %lld ms", (long long) wait);
        return COMBINE_DONE;
    case 0: {
        int64_t until = jt_clock_mono_ms() + c->tx_deadline_ms + c->lock_lease_ms;
        const char *ans = NULL;
        while (jt_clock_mono_ms() < until) {
            int64_t left = until - jt_clock_mono_ms();
            if (jt_waitq_await(r->redis, a, &entry, entry.reply_key, left < COMBINE_BLOCK_MS ? left : COMBINE_BLOCK_MS,
                               &ans) == JT_WAITQ_ANSWERED) {
                return take_answer(r, w, t, ans, e);
            }
        }
        /* the leader took it and went silent (it died, or Redis lost the
         * answer): its batch committed or never will (it inserts no row
         * past its budget, which has run out now); run on our own: the
         * key's durable row, if it committed, answers as it did */
        return COMBINE_ALONE;
    }
    default:
        return COMBINE_ALONE;   /* Redis went away: as above */
    }
}
