/* failpoint: named points in the relocation and recovery paths where a
 * crash test can have relocfs killed, deterministically.
 *
 * RELOCFS_FAILPOINT=NAME or NAME@N in the environment of the daemon makes
 * the N-th pass (default 1) through the point NAME log "failpoint NAME" and
 * raise SIGKILL. RELOCFS_FAILPOINT_HOLD=NAME:FILE (up to 4, separated by
 * commas) holds the first pass through NAME until the test removes FILE,
 * which the hold creates. Unset, a failpoint costs two loads and branches. */
#ifndef RELOCFS_FAILPOINT_H
#define RELOCFS_FAILPOINT_H

/* Reads RELOCFS_FAILPOINT and RELOCFS_FAILPOINT_HOLD. 0, or -EINVAL for a
 * malformed value. */
int failpoint_init(void);
void failpoint(const char *name);

#endif
