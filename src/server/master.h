/* The master: binds or inherits the listening socket, pre-forks workers and
 * keeps their number, like PHP-FPM's static process manager. Signal handlers
 * only set flags; the loop below sleeps in ppoll() and does the work.
 *   TERM/INT  fast stop          QUIT  graceful stop
 *   HUP       graceful reload    USR1  reopen log files */
#ifndef JT_MASTER_H
#define JT_MASTER_H

int jt_master_run(const char *conf_path);

#endif
