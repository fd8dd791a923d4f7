/* failpoint: owns the one armed failpoint of the process (RELOCFS_FAILPOINT,
 * include/relocfs/failpoint.h). Tests use it to stop relocfs at an exact
 * step of a phase instead of at a random moment; nothing else reads it.
 *
 * The points, in the order a relocation passes them:
 *   prepare-tree copy-start copy-chunk copy-done round-sealed round-applied
 *   round-dropped ready verify-done cutover-state cutover-applied
 *   flip-committed cutover-flipped cutover-resumed flush-done
 *   cutover-journal-dropped cleanup-state cleanup-source cleanup-journal
 * on a rollback: rollback-round rollback-quiesced rollback-restored
 *   rollback-state rollback-removed
 * and in recovery at mount: recover-replayed recover-committed.
 *
 * RELOCFS_FAILPOINT_HOLD=NAME:FILE holds the first pass through NAME
 * instead: it creates FILE and waits until the test removes it (at most
 * 120 s), so that a test can act at that exact step and then let it go on.
 * Up to 4 holds, separated by commas: NAME:FILE,NAME2:FILE2.
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
#define MAX_HOLDS 4

static struct {
	char name[64];
	char file[PATH_MAX];
	unsigned long hits;	/* atomic */
} holds[MAX_HOLDS];
static int nholds;

static int hold_init(void)
{
	const char *v = getenv("RELOCFS_FAILPOINT_HOLD");

	nholds = 0;
	if (v == NULL || *v == '\0')
		return 0;
	for (;;) {
		const char *colon = strchr(v, ':'), *comma;
		size_t n, flen;

		if (nholds == MAX_HOLDS || colon == NULL || colon == v || colon[1] != '/')
			return -EINVAL;
		comma = strchr(colon, ',');
		n = (size_t)(colon - v);
		flen = comma ? (size_t)(comma - colon - 1) : strlen(colon + 1);
		if (n >= sizeof(holds[0].name) || memchr(v, ',', n) != NULL ||
		    flen >= sizeof(holds[0].file))
			return -EINVAL;
		memcpy(holds[nholds].name, v, n);
		holds[nholds].name[n] = '\0';
		memcpy(holds[nholds].file, colon + 1, flen);
		holds[nholds].file[flen] = '\0';
		holds[nholds].hits = 0;
		nholds++;
		if (comma == NULL)
			return 0;
		v = comma + 1;
	}
}

/* Creates file and waits for it to go. */
static void hold(const char *name, const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		log_error("failpoint hold %s: cannot create %s: %s", name, file, strerror(errno));
		return;
	}
	close(fd);
	log_warning("failpoint %s: held until %s is removed", name, file);
	for (int i = 0; i < 12000 && access(file, F_OK) == 0; i++)
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

	for (int i = 0; i < nholds; i++)
		if (strcmp(name, holds[i].name) == 0 &&
		    __atomic_add_fetch(&holds[i].hits, 1, __ATOMIC_RELAXED) == 1)
			hold(name, holds[i].file);
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
