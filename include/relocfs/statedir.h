/* statedir: the per-source directory holding a mount's persistent state,
 * and the lock that keeps a second relocfs off the same source. */
#ifndef RELOCFS_STATEDIR_H
#define RELOCFS_STATEDIR_H

#include <limits.h>

struct statedir {
	char path[PATH_MAX];	/* BASE/<source id> */
	int dirfd;
	int lockfd;		/* holds an exclusive flock while mounted */
};

/* Opens (creating) BASE/<id of source>, records the source path in it and
 * takes the lock. -EBUSY when another process holds it. source must be
 * canonical. */
int statedir_open(struct statedir *sd, const char *base, const char *source);
void statedir_close(struct statedir *sd);

#endif
