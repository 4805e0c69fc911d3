/* Personal data sealing with key rotation: the newest key seals, every
 * key opens, a ciphertext names its key in its first byte, and any change
 * to it (or to the field it belongs to) is refused. */
#include "core/pii.h"
#include "tap.h"

#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

static jt_arena arena;

static unsigned char *
seal(const char *field, const char *plain, size_t *len)
{
    return jt_pii_seal(&arena, field, plain, strlen(plain), len);
}

static const char *
open_(const char *field, const unsigned char *c, size_t len)
{
    return jt_pii_open(&arena, field, c, len);
}

int
main(void)
{
    unsigned char k1[32], k2[32], idx1[JT_PII_INDEX_LEN], idx2[JT_PII_INDEX_LEN], copy[256];
    unsigned char *c1, *c2;
    size_t l1, l2;
    const char *email = "buyer@example.com";
    char err[256], path[] = "/tmp/jangteo-pii-XXXXXX", hex1[65], hex2[65];
    FILE *f;
    int fd;

    if (sodium_init() < 0 || jt_arena_init(&arena, 4096) != 0) {
        return 1;
    }
    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x22, sizeof(k2));

    ok(!jt_pii_ready(), "no key: not ready");
    ok(seal("users.email", email, &l1) == NULL, "no key: nothing is sealed in the clear");

    /* one key */
    is_int(jt_pii_add_key(1, k1), 0, "key 1 loaded");
    c1 = seal("users.email", email, &l1);
    ok(c1 != NULL, "sealed under key 1");
    is_int(c1[0], 1, "the first byte names key 1");
    is_int(l1, 1 + 24 + strlen(email) + 16, "id + nonce + text + tag");
    is_str(open_("users.email", c1, l1), email, "and it opens");
    jt_pii_index(email, strlen(email), idx1);

    /* rotation: a second key seals, the first still opens */
    is_int(jt_pii_add_key(2, k2), 0, "key 2 appended");
    is_int(jt_pii_add_key(2, k1), -1, "a key id twice is refused");
    c2 = seal("users.email", email, &l2);
    is_int(c2[0], 2, "the newest key seals");
    is_str(open_("users.email", c2, l2), email, "the new ciphertext opens");
    is_str(open_("users.email", c1, l1), email, "the old one still opens with the old key");
    ok(l1 == l2 && memcmp(c1 + 1, c2 + 1, l1 - 1) != 0, "same text, different nonce and key: different bytes");
    jt_pii_index(email, strlen(email), idx2);
    ok(memcmp(idx1, idx2, sizeof(idx1)) == 0, "the blind index is the oldest key's: rotation keeps lookups");

    /* refusals */
    memcpy(copy, c2, l2);
    copy[0] = 9;
    ok(open_("users.email", copy, l2) == NULL, "an unknown key id is refused");
    copy[0] = 1;
    ok(open_("users.email", copy, l2) == NULL, "another known key's id is refused (it does not open)");
    memcpy(copy, c2, l2);
    copy[1 + 24 + 3] ^= 0x01;
    ok(open_("users.email", copy, l2) == NULL, "one flipped bit of the text is refused");
    memcpy(copy, c2, l2);
    copy[5] ^= 0x80;
    ok(open_("users.email", copy, l2) == NULL, "a changed nonce is refused");
    memcpy(copy, c2, l2);
    copy[l2 - 1] ^= 0x01;
    ok(open_("users.email", copy, l2) == NULL, "a changed tag is refused");
    ok(open_("users.phone", c2, l2) == NULL, "a ciphertext moved to another field is refused");
    ok(open_("users.email", c2, l2 - 1) == NULL, "a truncated ciphertext is refused");
    ok(open_("users.email", c2, 1 + 24 + 15) == NULL, "one shorter than a tag is refused");

    /* a key file: every line opens, the last seals, a reload replaces */
    sodium_bin2hex(hex1, sizeof(hex1), k1, 32);
    sodium_bin2hex(hex2, sizeof(hex2), k2, 32);
    fd = mkstemp(path);
    f = fdopen(fd, "w");
    fprintf(f, "# rotated 2026-12-01\n2 %s\n\n7 %s\n", hex2, hex1);
    fclose(f);
    is_int(jt_pii_load(path, err, sizeof(err)), 0, "a key file of two keys loads");
    c1 = seal("users.name", "홍길동", &l1);
    is_int(c1[0], 7, "its last line seals");
    is_str(open_("users.name", c1, l1), "홍길동", "and opens");
    is_str(open_("users.email", c2, l2), email, "a text sealed under key 2 still opens (line 1)");
    memcpy(copy, c2, l2);
    copy[0] = 1;
    ok(open_("users.email", copy, l2) == NULL, "key id 1 is no longer loaded");
    f = fopen(path, "w");
    fprintf(f, "3 %s\n3 %s\n", hex1, hex2);
    fclose(f);
    is_int(jt_pii_load(path, err, sizeof(err)), -1, "a key file with an id twice is refused");
    ok(strstr(err, ":2:") != NULL, "naming the line: %s", err);
    f = fopen(path, "w");
    fprintf(f, "4 %.62s\n", hex1);
    fclose(f);
    is_int(jt_pii_load(path, err, sizeof(err)), -1, "a short key is refused");
    unlink(path);
    is_int(jt_pii_load(path, err, sizeof(err)), -1, "a missing key file is refused");

    jt_arena_destroy(&arena);
    return done_testing();
}
