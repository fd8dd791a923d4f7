/* failpoint: owns the one armed failpoint of the process (RELOCFS_FAILPOINT,
 * include/relocfs/failpoint.h). Tests use it to stop relocfs at an exact
 * step of a phase instead of at a random moment; nothing else reads it.
 *
 * The points, in the order a relocation passes them:
 *   prepare-tree copy-start copy-chunk copy-done round-sealed round-applied
 *   round-dropped ready verify-done cutover-state cutover-applied
 *   flip-committed cutover-flipped cutover-resumed flush-done cleanup-state
 *   cleanup-source cleanup-journal
 * on a rollback: rollback-quiesced rollback-restored rollback-state
 *   rollback-removed
 * and in recovery at mount: recover-replayed recover-committed.
 *
 * Invariant: the armed name and count are set once, before any thread that
 * passes a failpoint starts; only the hit counter changes afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relocfs/failpoint.h"
#include "relocfs/log.h"

static char armed[64];
static unsigned long armed_at = 1;
static unsigned long hits;	/* atomic */

int failpoint_init(void)
{
	const char *v = getenv("RELOCFS_FAILPOINT");
	const char *at;
	size_t n;

	armed[0] = '\0';
	if (v == NULL || *v == '\0')
		return 0;
	at = strchr(v, '@');
	n = at ? (size_t)(at - v) : strlen(v);
	if (n == 0 || n >= sizeof(armed))
		return -EINVAL;
	if (at != NULL) {
		char *end;

		errno = 0;
		armed_at = strtoul(at + 1, &end, 10);
		if (errno != 0 || end == at + 1 || *end != '\0' || armed_at == 0)
			return -EINVAL;
	}
	memcpy(armed, v, n);
	armed[n] = '\0';
	return 0;
}

void failpoint(const char *name)
{
	char msg[128];
	int n;

	if (armed[0] == '\0' || strcmp(name, armed) != 0)
		return;
	if (__atomic_add_fetch(&hits, 1, __ATOMIC_RELAXED) != armed_at)
		return;
	/* Straight to stderr too: syslog may not flush before the kill. */
	n = snprintf(msg, sizeof(msg), "relocfs: failpoint %s\n", name);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		n = 0;
	log_warning("failpoint %s", name);
	raise(SIGKILL);
}
