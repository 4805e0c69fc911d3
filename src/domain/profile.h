/* The buyer's own account (profile.c): editing the profile, changing the
 * password, and the sessions (bearer tokens) with their revocation. */
#ifndef JT_PROFILE_H
#define JT_PROFILE_H

#include <json-c/json.h>

#include "http/request.h"

/* PATCH /api/v1/users/{userId} {"name"?,"phone"?}: the sign-up's rules,
 * sealed at rest; 200 with the profile. */
jt_err profile_patch(jt_req *r);
/* POST /api/v1/users/{userId}/password {"currentPassword","newPassword"}:
 * 403 PASSWORD_WRONG, 400 for a new password sign-up would refuse; on
 * success every other session of the user is revoked in the same
 * transaction, and the caller's stays valid. */
jt_err profile_password(jt_req *r);
/* GET /api/v1/users/{userId}/tokens?cursor=&limit=: the live sessions,
 * newest first (created, last used, expires; never the token). */
jt_err profile_tokens(jt_req *r);
/* DELETE /api/v1/users/{userId}/tokens/{tokenId}: revoked at once; 204. */
jt_err profile_token_revoke(jt_req *r);

/* The two bodies, validated without the database (fuzzing). */
jt_err profile_validate_patch(jt_req *r, json_object *o);
jt_err profile_validate_password(jt_req *r, json_object *o);

#endif
