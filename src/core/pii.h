/* Personal data at rest: sealed with XChaCha20-Poly1305 (libsodium) under a
 * key from the key file, the key id stored in the first byte of every
 * ciphertext so keys can rotate (the newest key seals, every key opens).
 * The associated data names the field, so a ciphertext cannot be moved to
 * another column. Lookups by email use a keyed hash (blind index) derived
 * from the oldest key, which must therefore be kept. */
#ifndef JT_PII_H
#define JT_PII_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define JT_PII_INDEX_LEN 32

int  jt_pii_load(const char *path, char *err, size_t errlen);
/* Loads a single key directly (unit tests). */
int  jt_pii_add_key(uint8_t id, const unsigned char key[32]);
int  jt_pii_ready(void);

/* Returns the sealed bytes (arena) and their length, or NULL. */
unsigned char *jt_pii_seal(jt_arena *a, const char *field, const char *plain, size_t len, size_t *outlen);
/* Returns a NUL-terminated plaintext (arena) or NULL if tampered/unknown key. */
char *jt_pii_open(jt_arena *a, const char *field, const unsigned char *sealed, size_t len);
/* Keyed hash of a normalised value. */
void jt_pii_index(const char *value, size_t len, unsigned char out[JT_PII_INDEX_LEN]);

#endif
