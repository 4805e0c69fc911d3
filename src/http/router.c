#include "http/router.h"

#include <string.h>

int
jt_method_from_name(const char *m)
{
    if (m == NULL) return 0;
    if (!strcmp(m, "GET")) return JT_GET;
    if (!strcmp(m, "POST")) return JT_POST;
    if (!strcmp(m, "PUT")) return JT_PUT;
    if (!strcmp(m, "PATCH")) return JT_PATCH;
    if (!strcmp(m, "DELETE")) return JT_DELETE;
    if (!strcmp(m, "HEAD")) return JT_HEAD;
    return 0;
}

const char *
jt_method_name(int m)
{
    switch (m) {
    case JT_GET:    return "GET";
    case JT_POST:   return "POST";
    case JT_PUT:    return "PUT";
    case JT_PATCH:  return "PATCH";
    case JT_DELETE: return "DELETE";
    case JT_HEAD:   return "HEAD";
    default:        return NULL;
    }
}

/* Steps pattern and path past their next '/' together and finds where
 * the segment each now starts ends (*pe, *se: the next '/' or the end).
 * 0 when either has no '/' left: the walk is over. */
static int
next_segments(const char **pat, const char **path, const char **pe, const char **se)
{
    if (**pat != '/' || **path != '/') {
        return 0;
    }
    (*pat)++;
    (*path)++;
    *pe = strchr(*pat, '/');
    *se = strchr(*path, '/');
    if (*pe == NULL) *pe = *pat + strlen(*pat);
    if (*se == NULL) *se = *path + strlen(*path);
    return 1;
}

/* Matches path against pattern without touching r. Returns the number of
 * literal segments matched, or -1. */
static int
match(const char *pat, const char *path)
{
    int literals = 0;
    const char *pe, *se;

    while (next_segments(&pat, &path, &pe, &se)) {
        if (*pat == '{') {
            if (se == path) {
                return -1;
            }
        } else {
            if (pe - pat != se - path || memcmp(pat, path, (size_t) (pe - pat)) != 0) {
                return -1;
            }
            literals++;
        }
        pat = pe;
        path = se;
    }
    return (*pat == '\0' && *path == '\0') ? literals : -1;
}

/* Extracts {params} of a matched pattern into r. */
static jt_err
bind_params(jt_req *r, const char *pat, const char *path)
{
    const char *pe, *se;

    r->nparams = 0;
    while (next_segments(&pat, &path, &pe, &se)) {
        if (*pat == '{' && r->nparams < JT_MAX_PARAMS) {
            jt_path_param *p = &r->params[r->nparams++];
            const char *colon = memchr(pat, ':', (size_t) (pe - pat));
            const char *nend = colon ? colon : pe - 1;
            uint64_t v;

            p->name = jt_pstrndup(r->arena, pat + 1, (size_t) (nend - pat - 1));
            p->raw = jt_pstrndup(r->arena, path, (size_t) (se - path));
            p->id = 0;
            if (p->name == NULL || p->raw == NULL) {
                return JT_E_INTERNAL;
            }
            if (colon == NULL) {
                if (jt_parse_u64(p->raw, &v) != 0 || v == 0 || v > (uint64_t) INT64_MAX) {
                    return jt_fail(r, JT_E_INVALID_REQUEST,
                                   "path parameter '%s' must be a positive integer", p->name);
                }
                p->id = (int64_t) v;
            }
        }
        pat = pe;
        path = se;
    }
    return JT_OK;
}

static void
add_allow(jt_buf *b, int m)
{
    static const struct { int m; const char *name; } names[] = {
        { JT_GET, "GET" }, { JT_HEAD, "HEAD" }, { JT_POST, "POST" }, { JT_PUT, "PUT" },
        { JT_PATCH, "PATCH" }, { JT_DELETE, "DELETE" },
    };
    size_t i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (m & names[i].m) {
            if (b->len) {
                jt_buf_add(b, ", ", 2);
            }
            jt_buf_adds(b, names[i].name);
        }
    }
}

const jt_route *
jt_route_find(const jt_route *routes, size_t n, int with_test, jt_req *r, jt_err *err)
{
    const jt_route *found = NULL;
    int best = -1, allowed = 0, method = r->method == JT_HEAD ? JT_GET : r->method;
    size_t i;

    for (i = 0; i < n; i++) {
        int score;
        if ((routes[i].flags & JT_ROUTE_TEST) && !with_test) {
            continue;
        }
        score = match(routes[i].pattern, r->path);
        if (score < 0 || score < best) {
            continue;
        }
        if (score > best) {
            best = score;
            allowed = 0;
            found = NULL;
        }
        allowed |= routes[i].method;
        if (routes[i].method == method && found == NULL) {
            found = &routes[i];
        }
    }

    if (found != NULL) {
        r->route = found->pattern;
        *err = bind_params(r, found->pattern, r->path);
        return *err == JT_OK ? found : NULL;
    }
    if (best < 0) {
        *err = jt_fail(r, JT_E_NOT_FOUND, "no resource at this path");
        return NULL;
    }
    {
        jt_buf allow;
        jt_buf_init(&allow, r->arena, 64);
        if (allowed & JT_GET) {
            allowed |= JT_HEAD;
        }
        add_allow(&allow, allowed);
        jt_reply_header(r, "Allow", jt_buf_cstr(&allow));
        *err = jt_fail(r, JT_E_METHOD_NOT_ALLOWED, "allowed: %s", jt_buf_cstr(&allow));
    }
    return NULL;
}
