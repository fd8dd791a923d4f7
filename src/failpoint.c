/* failpoint: owns the one armed failpoint of the process (RELOCFS_FAILPOINT,
 * include/relocfs/failpoint.h). Tests use it to stop relocfs at an exact
 * step of a phase instead of at a random moment; nothing else reads it.
 *
 * The points, in the order a relocation passes them:
 *   prepare-tree copy-start copy-chunk copy-done round-sealed round-applied
 *   round-dropped ready verify-done cutover-state cutover-applied
 *   flip-committed cutover-flipped cutover-resumed flush-done cleanup-state
 *   cleanup-source cleanup-journal
 * on a rollback: rollback-round rollback-quiesced rollback-restored
 *   rollback-state rollback-removed
 * and in recovery at mount: recover-replayed recover-committed.
 *
 * RELOCFS_FAILPOINT_HOLD=NAME:FILE holds the first pass through NAME
 * instead: it creates FILE and waits until the test removes it (at most
 * 120 s), so that a test can act at that exact step and then let it go on.
 *
 * Invariant: the armed names and counts are set once, before any thread
 * that passes a failpoint starts; only the hit counters change afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
static char hold_name[64];
static char hold_file[PATH_MAX];
static unsigned long hold_hits;	/* atomic */

static int hold_init(void)
{
	const char *v = getenv("RELOCFS_FAILPOINT_HOLD");
	const char *colon;
	size_t n;

	hold_name[0] = '\0';
	if (v == NULL || *v == '\0')
		return 0;
	colon = strchr(v, ':');
	if (colon == NULL || colon == v || colon[1] != '/')
		return -EINVAL;
	n = (size_t)(colon - v);
	if (n >= sizeof(hold_name) || strlen(colon + 1) >= sizeof(hold_file))
		return -EINVAL;
	memcpy(hold_name, v, n);
	hold_name[n] = '\0';
	strcpy(hold_file, colon + 1);
	return 0;
}

/* Creates hold_file and waits for it to go. */
static void hold(const char *name)
{
	int fd = open(hold_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		log_error("failpoint hold %s: cannot create %s: %s", name, hold_file, strerror(errno));
		return;
	}
	close(fd);
	log_warning("failpoint %s: held until %s is removed", name, hold_file);
	for (int i = 0; i < 12000 && access(hold_file, F_OK) == 0; i++)
		usleep(10000);
}

int failpoint_init(void)
{
	const char *v = getenv("RELOCFS_FAILPOINT");
	const char *at;
	size_t n;

	armed[0] = '\0';
	if (hold_init() < 0)
		return -EINVAL;
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

	if (hold_name[0] != '\0' && strcmp(name, hold_name) == 0 &&
	    __atomic_add_fetch(&hold_hits, 1, __ATOMIC_RELAXED) == 1)
		hold(name);
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
