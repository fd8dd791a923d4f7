/* verify: compares two copies of a tree (a home through the mount and any
 * other copy of it) object by object, and regular files chunk by chunk by
 * XXH3-128, and reports what differs. */
#ifndef RELOCFS_VERIFY_H
#define RELOCFS_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VERIFY_CHUNK (1u << 20)

struct verify_result {
	uint64_t objects;	/* names compared, the roots included */
	uint64_t bytes;		/* file bytes compared on both sides */
	uint64_t differ;	/* objects reported as differing */
};

/* Compares the trees at a and b (directories or single files, opened by
 * path, never following a symlink below them) and writes one line per
 * difference to out, named by the path relative to the roots:
 *   only in A: REL / only in B: REL
 *   type differs: REL (directory vs regular file)
 *   mode, owner or link text differs: REL (...)
 *   size differs: REL (A vs B bytes)
 *   content differs: REL: bytes X-Y, ...   (inclusive ranges)
 * 0 when the walk completed (res says whether anything differs), or a
 * negative errno with err set, naming the path that could not be read. */
/* Compares two chunks by XXH3-128: false when they are the same, else true
 * with the offsets of the first and last differing byte. */
bool verify_chunk(const char *a, const char *b, size_t len, size_t *first, size_t *last);

int verify_trees(const char *a, const char *b, FILE *out, struct verify_result *res,
		 char *err, size_t errlen);

#endif
