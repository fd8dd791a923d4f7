/* ctl: the control socket between relocctl and a mounted relocfs. */
#ifndef RELOCFS_CTL_H
#define RELOCFS_CTL_H

#include <stddef.h>
#include <stdio.h>

#define CTL_DIR "/run/relocfs"
#define CTL_MAX_REQUEST 4096
#define CTL_MAX_FIELDS 16
#define CTL_MAX_CONNS 64	/* connections read at once; the oldest makes room */
#define CTL_TIMEOUT_MS 5000	/* for a request to arrive */

/* Serves one request: fields of the request line; writes the payload of a
 * success to out, or a one-line reason to err and returns -errno. */
typedef int (*ctl_handler)(void *arg, int argc, char **argv, FILE *out,
			   char *err, size_t errlen);

struct ctl_server;

/* The socket of the mount at mountpoint (canonical): CTL_DIR/<XXH3>.sock. */
void ctl_socket_path(const char *mountpoint, char *buf, size_t len);

/* Listens on path (replacing a stale socket) and serves requests from root
 * peers on a thread of its own. */
int ctl_server_start(struct ctl_server **sp, const char *path, ctl_handler fn, void *arg);
void ctl_server_stop(struct ctl_server *s);

/* Sends one request and returns the daemon's reply (malloc'd, NUL-ended):
 * "ok\n" and the payload, or "error\t" and the reason. */
int ctl_call(const char *path, int argc, const char *const *argv, char **reply);

#endif
