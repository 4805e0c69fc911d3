/* Logging: one line per event, written with a single write(2) on an
 * O_APPEND descriptor so lines from many workers never interleave.
 * Every line carries time, level, worker pid and the request id in hand.
 * Callers never pass secrets or personal data here. */
#ifndef JT_LOG_H
#define JT_LOG_H

#include <stdint.h>

enum { JT_LOG_ERROR = 0, JT_LOG_WARN, JT_LOG_INFO, JT_LOG_DEBUG };

int  jt_log_open(const char *error_path, const char *access_path, const char *level);
int  jt_log_reopen(void);
void jt_log_set_request_id(const char *id);   /* NULL when idle */
void jt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jt_log_access(const char *method, const char *path, int status, int64_t usec);

#define jt_log_error(...) jt_log(JT_LOG_ERROR, __VA_ARGS__)
#define jt_log_warn(...)  jt_log(JT_LOG_WARN, __VA_ARGS__)
#define jt_log_info(...)  jt_log(JT_LOG_INFO, __VA_ARGS__)
#define jt_log_debug(...) jt_log(JT_LOG_DEBUG, __VA_ARGS__)

#endif
