/* inomap: the inode numbers the mount shows, unique across every datastore
 * behind it and unchanged by a relocation. */
#ifndef RELOCFS_INOMAP_H
#define RELOCFS_INOMAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Backing objects on the source root's filesystem show their own number;
 * on any other filesystem, number N of the filesystem seen k-th shows
 * k << INOMAP_DEV_SHIFT | N. */
#define INOMAP_DEV_SHIFT 48
#define INOMAP_MAX_DEVS (1u << 15)
/* Numbers handed out when neither rule fits (huge backing numbers, too
 * many filesystems, a number some other object already shows). */
#define INOMAP_ALLOC_BASE (1ull << 63)

struct inomap_ent;

/* A two-way hash: (k0, k1) -> (v0, v1), found from either side. */
struct inomap_bimap {
	struct inomap_ent **kb, **vb;
	size_t nb, n;
};

struct inomap {
	pthread_mutex_t lock;
	dev_t *devs;			/* index = the filesystem's number */
	size_t ndevs;
	/* Exceptions to the rule: (dev, ino) -> (shown, 0). */
	struct inomap_bimap exc;
	uint64_t next_alloc;
	size_t nexc;			/* read without the lock: 0 = rule only */
};

/* What one relocation made: source object -> its destination copy, keyed
 * by the source (dev, ino). Filled while the home relocates, handed to
 * inomap_carry_prepare at cutover. */
struct inomap_pairs {
	pthread_mutex_t lock;
	struct inomap_bimap map;
};

struct inomap_pair {
	dev_t odev, ndev;
	ino_t oino, nino;
};

struct inomap_carry;

int inomap_init(struct inomap *m, dev_t source_dev);
void inomap_destroy(struct inomap *m);

/* The number shown for backing object (dev, ino); 0 when out of memory. */
uint64_t inomap_get(struct inomap *m, dev_t dev, ino_t ino);
/* (dev, ino) no longer exists: its number may be reused. */
void inomap_drop(struct inomap *m, dev_t dev, ino_t ino);
/* Exceptions held, for tests and status. */
size_t inomap_exceptions(struct inomap *m);

int inomap_pairs_init(struct inomap_pairs *p);
void inomap_pairs_destroy(struct inomap_pairs *p);
/* odev/oino was copied to ndev/nino; replaces an earlier copy of it. */
int inomap_pairs_add(struct inomap_pairs *p, dev_t odev, ino_t oino, dev_t ndev, ino_t nino);
/* The destination object ndev/nino is gone (its last link removed). */
void inomap_pairs_drop_dest(struct inomap_pairs *p, dev_t ndev, ino_t nino);
size_t inomap_pairs_count(struct inomap_pairs *p);

/* Cutover, in two steps so that a refused flip changes no number: prepare
 * adds extra to p (the held objects' copies, true whether or not the flip
 * happens; they win over an earlier pair of the same source object) and
 * takes every allocation; commit cannot fail: from then on each
 * destination object shows the number its source object showed. cancel
 * drops a prepared carry. */
int inomap_carry_prepare(struct inomap *m, struct inomap_pairs *p,
			 const struct inomap_pair *extra, size_t nextra,
			 struct inomap_carry **out);
void inomap_carry_commit(struct inomap *m, struct inomap_carry *c);
void inomap_carry_cancel(struct inomap_carry *c);

#endif
