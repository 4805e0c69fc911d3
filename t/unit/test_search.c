/* Search grams: the 1- and 2-character pieces a product name is indexed
 * by, and the 2-character ones a query is narrowed with. */
#include "domain/search.h"
#include "tap.h"

static jt_arena arena;

/* The grams of name, space-separated, in the order made. */
static const char *
grams(const char *name, int max, int bigrams_only)
{
    const char *g[128];
    static char out[2048];
    size_t o = 0;
    int n = search_grams(&arena, name, g, max, bigrams_only), i;

    out[0] = '\0';
    for (i = 0; i < n && o + strlen(g[i]) + 2 < sizeof(out); i++) {
        o += (size_t) snprintf(out + o, sizeof(out) - o, "%s%s", i ? " " : "", g[i]);
    }
    return out;
}

int
main(void)
{
    jt_arena_init(&arena, 4096);

    is_str(grams("Cafe", 128, 0), "c ca a af f fe e", "each character and each pair, in order");
    is_str(grams("AbAb", 128, 0), "a ab b ba", "ASCII lower-cased; a repeated gram once");
    is_str(grams("ab ab", 128, 0), "a ab b ba", "blanks are skipped: pairs span them");
    is_str(grams("  x\t ", 128, 0), "x", "a name of blanks and one letter");
    is_str(grams("A", 128, 0), "a", "one character");
    is_str(grams("Caf\xc3\xa9 Cr\xc3\xa8me", 128, 0),
           "c ca a af f f\xc3\xa9 \xc3\xa9 \xc3\xa9\x63 cr r r\xc3\xa8 \xc3\xa8 \xc3\xa8m m me e",
           "accented letters are one character each, kept as they are (the collation folds them)");
    is_str(grams("\xea\xb9\x80\xec\xb9\x98\xec\xb0\x8c\xea\xb0\x9c", 128, 0),
           "\xea\xb9\x80 \xea\xb9\x80\xec\xb9\x98 \xec\xb9\x98 \xec\xb9\x98\xec\xb0\x8c \xec\xb0\x8c"
           " \xec\xb0\x8c\xea\xb0\x9c \xea\xb0\x9c",
           "Korean: three-byte characters, seven grams for four syllables");

    /* a query is narrowed by its pairs; a one-character query by itself */
    is_str(grams("\xea\xb9\x80\xec\xb9\x98\xec\xb0\x8c\xea\xb0\x9c", 128, 1),
           "\xea\xb9\x80\xec\xb9\x98 \xec\xb9\x98\xec\xb0\x8c \xec\xb0\x8c\xea\xb0\x9c", "bigrams only: three pairs");
    is_str(grams("Caf\xc3\xa9 Cr\xc3\xa8me", 128, 1), "ca af f\xc3\xa9 \xc3\xa9\x63 cr r\xc3\xa8 \xc3\xa8m me",
           "bigrams only, across the blank");
    is_str(grams("a", 128, 1), "a", "a one-character query keeps its one gram");
    is_str(grams(" ", 128, 1), "", "a blank query has none");

    /* bounds */
    is_str(grams("abcdef", 3, 0), "a ab b", "at most max grams");
    is_str(grams("ab\xea\xb9", 128, 0), "a ab b b\xea\xb9 \xea\xb9", "a truncated UTF-8 character is one short character");

    jt_arena_destroy(&arena);
    return done_testing();
}
