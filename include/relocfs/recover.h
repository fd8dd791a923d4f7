/* recover: finishing or undoing, at mount, the relocations that a killed
 * relocfs left unfinished in its state dir. */
#ifndef RELOCFS_RECOVER_H
#define RELOCFS_RECOVER_H

#include <stddef.h>

#include "relocfs/placement.h"

/* What the engine renames a relocation's state file to when the state dir
 * cannot take the phase of a completed rollback: recovery then deletes the
 * directory, journal and all (the source holds everything). */
#define RECOVER_FORGOTTEN "forgotten"

/* Recovers every "reloc-N" directory of state_dirfd. The placement table is
 * updated (and saved) for relocations that are finished. On a damaged state
 * file or journal, or trees that do not match, returns a negative errno with
 * one line in err naming the file, and changes nothing more. */
int recover_relocations(int state_dirfd, const char *source, struct placement *pl,
			char *err, size_t errlen);

#endif
