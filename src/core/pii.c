#include "core/pii.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define MAX_KEYS 16
#define KEYLEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCELEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAGLEN crypto_aead_xchacha20poly1305_ietf_ABYTES

static struct {
    uint8_t       id;
    unsigned char key[KEYLEN];
} keys[MAX_KEYS];
static int nkeys;
static unsigned char index_key[crypto_auth_hmacsha256_KEYBYTES];

int
jt_pii_add_key(uint8_t id, const unsigned char key[32])
{
    int i;

    for (i = 0; i < nkeys; i++) {
        if (keys[i].id == id) {
            return -1;
        }
    }
    if (nkeys == MAX_KEYS) {
        return -1;
    }
    keys[nkeys].id = id;
    memcpy(keys[nkeys].key, key, KEYLEN);
    if (nkeys == 0) {
        crypto_kdf_derive_from_key(index_key, sizeof(index_key), 1, "jtindex0", key);
    }
    nkeys++;
    return 0;
}

int
jt_pii_ready(void)
{
    return nkeys > 0;
}

int
jt_pii_load(const char *path, char *err, size_t errlen)
{
    char line[256];
    FILE *f;
    int lineno = 0;

    nkeys = 0;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "[pii] key_file is not set");
        return -1;
    }
    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned int id;
        char hex[128];
        unsigned char key[KEYLEN];
        size_t bin_len;

        lineno++;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        if (sscanf(line, "%u %127s", &id, hex) != 2 || id > 255 || strlen(hex) != KEYLEN * 2
            || sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, &bin_len, NULL) != 0
            || bin_len != KEYLEN || jt_pii_add_key((uint8_t) id, key) != 0) {
            snprintf(err, errlen, "%s:%d: expected 'ID HEX64' with a unique id 0..255", path, lineno);
            sodium_memzero(key, sizeof(key));
            fclose(f);
            return -1;
        }
        sodium_memzero(key, sizeof(key));
    }
    fclose(f);
    if (nkeys == 0) {
        snprintf(err, errlen, "%s holds no key", path);
        return -1;
    }
    return 0;
}

unsigned char *
jt_pii_seal(jt_arena *a, const char *field, const char *plain, size_t len, size_t *outlen)
{
    unsigned char *out;
    unsigned long long clen;

    if (nkeys == 0) {
        return NULL;
    }
    out = jt_palloc(a, 1 + NONCELEN + len + TAGLEN);
    if (out == NULL) {
        return NULL;
    }
    out[0] = keys[nkeys - 1].id;
    randombytes_buf(out + 1, NONCELEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NONCELEN, &clen, (const unsigned char *) plain,
                                               len, (const unsigned char *) field, strlen(field), NULL,
                                               out + 1, keys[nkeys - 1].key);
    *outlen = 1 + NONCELEN + (size_t) clen;
    return out;
}

char *
jt_pii_open(jt_arena *a, const char *field, const unsigned char *sealed, size_t len)
{
    unsigned long long plen;
    char *out;
    int i;

    if (len < 1 + NONCELEN + TAGLEN) {
        return NULL;
    }
    for (i = 0; i < nkeys; i++) {
        if (keys[i].id == sealed[0]) {
            break;
        }
    }
    if (i == nkeys) {
        return NULL;
    }
    out = jt_palloc(a, len);
    if (out == NULL) {
        return NULL;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *) out, &plen, NULL,
                                                   sealed + 1 + NONCELEN, len - 1 - NONCELEN,
                                                   (const unsigned char *) field, strlen(field),
                                                   sealed + 1, keys[i].key) != 0) {
        return NULL;
    }
    out[plen] = '\0';
    return out;
}

void
jt_pii_index(const char *value, size_t len, unsigned char out[JT_PII_INDEX_LEN])
{
    crypto_auth_hmacsha256(out, (const unsigned char *) value, len, index_key);
}
