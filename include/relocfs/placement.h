/* placement: the persisted table home -> datastore root of one mount. Homes
 * it does not name live on the source datastore. */
#ifndef RELOCFS_PLACEMENT_H
#define RELOCFS_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>

struct placement_ent {
	char *name;
	char *datastore;
};

struct placement {
	struct placement_ent *v;
	size_t n;
};

#define PLACEMENT_FILE "placement"

void placement_init(struct placement *p);
void placement_free(struct placement *p);

/* Loads dirfd/placement; a missing file is an empty table. A damaged file
 * is -EBADMSG with the reason in err. */
int placement_load(int dirfd, struct placement *p, char *err, size_t errlen);
/* Writes the table durably (temp file, fsync, rename, fsync dir). On an
 * error *renamed (when not NULL) says whether the new table is already in
 * place, unflushed (fileutil_write_atomic). */
int placement_save(int dirfd, const struct placement *p, bool *renamed);

/* The datastore of name, or NULL for the source. */
const char *placement_get(const struct placement *p, const char *name);
/* Sets name's datastore; NULL removes the entry (back on the source). */
int placement_set(struct placement *p, const char *name, const char *datastore);

#endif
