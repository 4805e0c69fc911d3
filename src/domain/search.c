/* Product search by name: the 1- and 2-character grams of a name, and the
 * gram rows (product_name_grams) that index it, rewritten with each name. */
#include "domain/search.h"

#include <string.h>

#include "store/db.h"

static const char SQL_GRAMS_DELETE[] = "DELETE FROM product_name_grams WHERE product_id = ?";
static const char SQL_GRAMS_INSERT[] =
    "INSERT IGNORE INTO product_name_grams (gram, product_id) VALUES"
    " (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?)";

/* --- search grams ----------------------------------------------------------- */

static size_t
utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

/* A name is indexed by every character and every pair of neighbours
 * (blanks skipped), lower-cased for ASCII and left as they are otherwise:
 * the gram column's collation folds case and accents (sql/007). A query is
 * narrowed by its pairs only (a one-character query by that character),
 * each a selective index lookup; LIKE then checks the whole substring, so
 * the grams need only never miss, not be exact. At most max grams; a
 * truncated UTF-8 sequence counts as one short character. */
int
search_grams(jt_arena *a, const char *name, const char **grams, int max, int bigrams_only)
{
    const char *chars[256];
    size_t lens[256];
    int n = 0, g = 0, i, j;
    const char *p = name;

    while (*p && n < 256) {
        size_t l = utf8_len((unsigned char) *p);
        size_t k;
        for (k = 1; k < l; k++) {
            if (p[k] == '\0') {
                l = k;
                break;
            }
        }
        if (!(l == 1 && (*p == ' ' || *p == '\t'))) {
            chars[n] = p;
            lens[n] = l;
            n++;
        }
        p += l;
    }
    for (i = 0; i < n && g < max; i++) {
        for (j = 1; j <= 2 && g < max; j++) {
            char *s;
            size_t len;
            int k, dup = 0;

            if (i + j > n || (bigrams_only && j == 1 && n > 1)) {
                continue;
            }
            len = lens[i] + (j == 2 ? lens[i + 1] : 0);
            s = jt_palloc(a, len + 1);
            if (s == NULL) {
                return g;
            }
            memcpy(s, chars[i], lens[i]);
            if (j == 2) {
                memcpy(s + lens[i], chars[i + 1], lens[i + 1]);
            }
            s[len] = '\0';
            for (k = 0; s[k]; k++) {
                if (s[k] >= 'A' && s[k] <= 'Z') {
                    s[k] = (char) (s[k] - 'A' + 'a');
                }
            }
            for (k = 0; k < g; k++) {
                if (!strcmp(grams[k], s)) {
                    dup = 1;
                    break;
                }
            }
            if (!dup) {
                grams[g++] = s;
            }
        }
    }
    return g;
}

/* Inside the transaction that writes the name: the product's grams are
 * replaced as a whole, so search never shows a rename half done. Eight
 * rows per statement; the last batch is padded with a repeated gram, which
 * INSERT IGNORE drops, so one statement text serves every name length. */
jt_tx_step
search_index_name(jt_tx *tx, int64_t product_id, const char *name)
{
    const char *grams[600];
    jt_val p[16];
    jt_rows rows;
    int n, i, k;

    p[0] = JT_VI(product_id);
    JT_TX_EXEC(tx, SQL_GRAMS_DELETE, p, 1, &rows);
    n = search_grams(tx->arena, name, grams, 600, 0);
    for (i = 0; i < n; i += 8) {
        for (k = 0; k < 8; k++) {
            /* pad the last batch by repeating a gram: INSERT IGNORE drops it */
            const char *gram = grams[i + k < n ? i + k : i];
            p[2 * k] = JT_VS(gram);
            p[2 * k + 1] = JT_VI(product_id);
        }
        JT_TX_EXEC(tx, SQL_GRAMS_INSERT, p, 16, &rows);
    }
    return JT_TX_COMMIT;
}
