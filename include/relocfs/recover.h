/* recover: finishing or undoing, at mount, the relocations that a killed
 * relocfs left unfinished in its state dir. */
#ifndef RELOCFS_RECOVER_H
#define RELOCFS_RECOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "relocfs/placement.h"

/* What the engine renames a relocation's state file to when the state dir
 * cannot take the phase of a completed rollback: recovery then deletes the
 * directory, journal and all (the source holds everything). */
#define RECOVER_FORGOTTEN "forgotten"

/* A relocation's state file: its fields, one per line, then the XXH3-64 of
 * them. The engine writes it at every phase change and recovery as it goes;
 * recovery parses it. Returns its length, or -ENAMETOOLONG if it does not
 * fit in size bytes. */
int recover_state_format(char *buf, size_t size, unsigned long long id, const char *home,
			 const char *from, const char *to, const char *phase, bool keep);

/* Recovers every "reloc-N" directory of state_dirfd. The placement table is
 * updated (and saved) for relocations that are finished. On a damaged state
 * file or journal, or trees that do not match, returns a negative errno with
 * one line in err naming the file, and changes nothing more. */
int recover_relocations(int state_dirfd, const char *source, struct placement *pl,
			char *err, size_t errlen);

#endif
