/* Idempotency-Key header parsing: an RFC 8941 sf-string or a bare token,
 * the key itself 1..255 visible ASCII characters. */
#include "store/idem.h"
#include "tap.h"

static jt_arena arena;

/* The parsed key, or NULL when refused. */
static const char *
key(const char *header, size_t *len)
{
    const char *k;

    *len = 0;
    return jt_idem_parse_key(&arena, header, &k, len) == 0 ? k : NULL;
}

int
main(void)
{
    char big[700];
    size_t n;

    jt_arena_init(&arena, 4096);

    /* sf-string */
    is_str(key("\"order-2026-0001\"", &n), "order-2026-0001", "a quoted key");
    is_int(n, 15, "... of 15 bytes");
    is_str(key("\"a\\\"b\\\\c\"", &n), "a\"b\\c", "\\\" and \\\\ unescape");
    is_int(n, 5, "... to 5 bytes");
    is_str(key("\"\\\\\"", &n), "\\", "a key that is one backslash");
    ok(key("\"a\\nb\"", &n) == NULL, "any other escape is refused");
    ok(key("\"ab\\\"", &n) == NULL, "an escape of the closing quote leaves the string open: refused");
    ok(key("\"abc", &n) == NULL, "an unterminated string is refused");
    ok(key("\"a\"b\"", &n) == NULL, "a bare quote inside is refused");
    ok(key("\"\"", &n) == NULL, "the empty string is refused");
    ok(key("\"a b\"", &n) == NULL, "a space is printable in an sf-string but not in a key: refused");

    /* bare token */
    is_str(key("A-Za-z0-9_~!#$%&'*+.^`|", &n), "A-Za-z0-9_~!#$%&'*+.^`|", "a bare token of visible ASCII");
    is_str(key("abc\"", &n), "abc\"", "a bare token may end in a quote (it does not start one)");
    ok(key("a b", &n) == NULL, "a space in a bare token is refused");
    ok(key("", &n) == NULL, "an empty header is refused");
    ok(key(NULL, &n) == NULL, "no header is refused");

    /* control characters and non-ASCII */
    ok(key("a\tb", &n) == NULL, "a tab in a bare token is refused");
    ok(key("\"a\tb\"", &n) == NULL, "a tab in an sf-string is refused");
    ok(key("a\x7f", &n) == NULL, "DEL is refused");
    ok(key("\xc3\xa9t\xc3\xa9", &n) == NULL, "UTF-8 is refused");
    ok(key("\"\xc3\xa9\"", &n) == NULL, "UTF-8 in an sf-string is refused");

    /* limits */
    memset(big, 'k', 255);
    big[255] = '\0';
    ok(key(big, &n) != NULL && n == 255, "255 characters: the longest key");
    big[255] = 'k';
    big[256] = '\0';
    ok(key(big, &n) == NULL, "256 characters are refused");
    big[0] = '"';
    memset(big + 1, 'k', 255);
    big[256] = '"';
    big[257] = '\0';
    ok(key(big, &n) != NULL && n == 255, "a quoted 255-character key");
    {
        /* 255 escaped backslashes: 512 header bytes, a 255-byte key */
        char esc[600];
        size_t i;
        esc[0] = '"';
        for (i = 0; i < 255; i++) {
            esc[1 + 2 * i] = '\\';
            esc[2 + 2 * i] = '\\';
        }
        esc[511] = '"';
        esc[512] = '\0';
        ok(key(esc, &n) != NULL && n == 255, "255 escaped backslashes (512 header bytes) make a 255-byte key");
    }
    memset(big, 'k', 650);
    big[650] = '\0';
    ok(key(big, &n) == NULL, "a header of 650 bytes is refused");

    jt_arena_destroy(&arena);
    return done_testing();
}
