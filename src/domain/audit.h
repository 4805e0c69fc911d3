/* The audit: every money and stock invariant, checked against MariaDB,
 * each reported with its figures. Run by `jangteo-admin audit` and by
 * GET /api/v1/admin/audit (admins only). */
#ifndef JT_AUDIT_H
#define JT_AUDIT_H

#include <stdint.h>

#include "core/arena.h"
#include "http/request.h"
#include "store/db.h"

struct jt_pay_env_s;

#define JT_AUDIT_MAX_CHECKS 32
#define JT_AUDIT_SAMPLES 5

typedef struct {
    const char *name;
    const char *invariant;
    int64_t     checked;
    int64_t     violations;
    const char *samples;      /* a few offending ids, "" when clean */
} jt_audit_check;

typedef struct {
    jt_audit_check checks[JT_AUDIT_MAX_CHECKS];
    int            n;
    int64_t        violations;
} jt_audit;

/* JT_DB_OK with the report filled, or the failed statement's code. An
 * event is expected to have its notifications grace_s seconds after it
 * was published ([events] audit_grace): before that, a consumer may be
 * on it. */
jt_db_rc audit_run(jt_db *db, jt_arena *a, int64_t grace_s, jt_audit *out);
/* audit_run (with env->conf's audit_grace), then (with a gateway
 * configured) the newest `max` card orders checked against the gateway's
 * own records (domain/payments.h). */
jt_db_rc audit_run_gateway(struct jt_pay_env_s *env, int64_t max, jt_audit *out);

jt_err audit_http(jt_req *r);

#endif
