/* inomap: owns the inode numbers the mount shows.
 *
 * A home moves between filesystems, and each filesystem numbers its own
 * objects, so the backing number cannot be shown as it is: after a cutover
 * every file of the home would change its number (invariant 1 of the
 * design), and numbers of two datastores collide, which makes tar, du and
 * rsync -H take two files for hard links of one.
 *
 * The rule: an object on the source root's filesystem shows its backing
 * number, as a plain passthrough would; one on the k-th other filesystem
 * seen shows k << 48 | its number. A backing number of 2^48 or more (some
 * NFS servers) gets a fresh number, remembered for as long as the object
 * lives, which costs one exception per such object seen. Exceptions override the rule, kept in a
 * two-way hash (backing key <-> number shown):
 *   - at cutover, every destination object takes the number its source
 *     object showed (inomap_carry_*);
 *   - an object whose rule number is already held by an exception, or for
 *     which no rule fits, gets a fresh number above 2^63.
 *
 * Invariants: at any instant no two live backing objects show the same
 * number; a number, once shown for an object, stays its number for the
 * mount's life (across every relocation of its home). The rule is
 * injective, numbers above 2^63 are handed out once, and an exception's
 * number is never the rule number of a live object: the exception is made
 * either from a number the object's source showed (unique by induction)
 * or from a fresh one. Exceptions live until their object is gone
 * (inomap_drop); a stale one is harmless, as its number is still unique. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relocfs/inomap.h"

#define BIMAP_MIN_BUCKETS 256

struct inomap_ent {
	struct inomap_ent *knext, *vnext;
	uint64_t k0, k1, v0, v1;
};

struct inomap_carry {
	size_t n;
	struct inomap_pair *v;
	uint64_t *shown;
	struct inomap_ent **ents;	/* allocated up front: commit cannot fail */
};

static size_t hash2(uint64_t a, uint64_t b, size_t nb)
{
	uint64_t h = b * 0x9e3779b97f4a7c15ULL ^ a * 0xc2b2ae3d27d4eb4fULL;

	h ^= h >> 31;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h & (nb - 1);
}

static int bimap_init(struct inomap_bimap *b)
{
	memset(b, 0, sizeof(*b));
	b->kb = calloc(BIMAP_MIN_BUCKETS, sizeof(struct inomap_ent *));
	b->vb = calloc(BIMAP_MIN_BUCKETS, sizeof(struct inomap_ent *));
	if (b->kb == NULL || b->vb == NULL) {
		free(b->kb);
		free(b->vb);
		b->kb = b->vb = NULL;
		return -ENOMEM;
	}
	b->nb = BIMAP_MIN_BUCKETS;
	return 0;
}

static void bimap_destroy(struct inomap_bimap *b)
{
	for (size_t i = 0; b->kb != NULL && i < b->nb; i++) {
		struct inomap_ent *e = b->kb[i];

		while (e != NULL) {
			struct inomap_ent *next = e->knext;

			free(e);
			e = next;
		}
	}
	free(b->kb);
	free(b->vb);
	memset(b, 0, sizeof(*b));
}

static struct inomap_ent *bimap_find_k(const struct inomap_bimap *b, uint64_t k0, uint64_t k1)
{
	struct inomap_ent *e = b->kb[hash2(k0, k1, b->nb)];

	while (e != NULL && (e->k0 != k0 || e->k1 != k1))
		e = e->knext;
	return e;
}

static struct inomap_ent *bimap_find_v(const struct inomap_bimap *b, uint64_t v0, uint64_t v1)
{
	struct inomap_ent *e = b->vb[hash2(v0, v1, b->nb)];

	while (e != NULL && (e->v0 != v0 || e->v1 != v1))
		e = e->vnext;
	return e;
}

/* Doubles both bucket arrays; a failed allocation only costs chain length. */
static bool bimap_grow(struct inomap_bimap *b)
{
	size_t nb = b->nb * 2;
	struct inomap_ent **kb = calloc(nb, sizeof(struct inomap_ent *));
	struct inomap_ent **vb = calloc(nb, sizeof(struct inomap_ent *));

	if (kb == NULL || vb == NULL) {
		free(kb);
		free(vb);
		return false;
	}
	for (size_t i = 0; i < b->nb; i++) {
		struct inomap_ent *e = b->kb[i];

		while (e != NULL) {
			struct inomap_ent *next = e->knext;
			size_t hk = hash2(e->k0, e->k1, nb), hv = hash2(e->v0, e->v1, nb);

			e->knext = kb[hk];
			kb[hk] = e;
			e->vnext = vb[hv];
			vb[hv] = e;
			e = next;
		}
	}
	free(b->kb);
	free(b->vb);
	b->kb = kb;
	b->vb = vb;
	b->nb = nb;
	return true;
}

static void bimap_link(struct inomap_bimap *b, struct inomap_ent *e)
{
	size_t hk = hash2(e->k0, e->k1, b->nb), hv = hash2(e->v0, e->v1, b->nb);

	e->knext = b->kb[hk];
	b->kb[hk] = e;
	e->vnext = b->vb[hv];
	b->vb[hv] = e;
	if (++b->n > b->nb)
		(void)bimap_grow(b);
}

static void bimap_unlink(struct inomap_bimap *b, struct inomap_ent *e)
{
	struct inomap_ent **pp = &b->kb[hash2(e->k0, e->k1, b->nb)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->knext;
	if (*pp == e)
		*pp = e->knext;
	pp = &b->vb[hash2(e->v0, e->v1, b->nb)];
	while (*pp != NULL && *pp != e)
		pp = &(*pp)->vnext;
	if (*pp == e)
		*pp = e->vnext;
	b->n--;
}

static void bimap_remove(struct inomap_bimap *b, struct inomap_ent *e)
{
	bimap_unlink(b, e);
	free(e);
}

/* ------------------------------------------------------------ the map */

int inomap_init(struct inomap *m, dev_t source_dev)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->devs = malloc(sizeof(*m->devs));
	if (m->devs == NULL)
		return -ENOMEM;
	ret = bimap_init(&m->exc);
	if (ret < 0) {
		free(m->devs);
		m->devs = NULL;
		return ret;
	}
	m->devs[0] = source_dev;
	m->ndevs = 1;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void inomap_destroy(struct inomap *m)
{
	if (m->devs == NULL)
		return;
	bimap_destroy(&m->exc);
	free(m->devs);
	pthread_mutex_destroy(&m->lock);
	memset(m, 0, sizeof(*m));
}

/* The filesystem's number, given on first sight; -1 when none is left. */
static long dev_index_locked(struct inomap *m, dev_t dev)
{
	size_t k;
	dev_t *v;

	for (k = 0; k < m->ndevs; k++)
		if (m->devs[k] == dev)
			return (long)k;
	if (k >= INOMAP_MAX_DEVS)
		return -1;
	v = realloc(m->devs, (k + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	m->devs = v;
	m->devs[m->ndevs++] = dev;
	return (long)k;
}

/* The rule's number for (dev, ino), or 0 when the rule does not fit. */
static uint64_t rule_locked(struct inomap *m, dev_t dev, ino_t ino)
{
	long k;

	if (ino == 0 || (uint64_t)ino >> INOMAP_DEV_SHIFT != 0)
		return 0;
	k = dev_index_locked(m, dev);
	if (k < 0)
		return 0;
	return (uint64_t)k << INOMAP_DEV_SHIFT | (uint64_t)ino;
}

/* The number (dev, ino) shows when it holds no exception: the rule's,
 * unless no rule fits or an exception already shows it. */
static uint64_t fresh_locked(struct inomap *m, dev_t dev, ino_t ino, bool *alloc)
{
	uint64_t n = rule_locked(m, dev, ino);

	*alloc = n == 0 || bimap_find_v(&m->exc, n, 0) != NULL;
	if (*alloc)
		n = INOMAP_ALLOC_BASE | ++m->next_alloc;
	return n;
}

static void exc_insert_locked(struct inomap *m, struct inomap_ent *e, dev_t dev, ino_t ino,
			      uint64_t shown)
{
	e->k0 = (uint64_t)dev;
	e->k1 = (uint64_t)ino;
	e->v0 = shown;
	e->v1 = 0;
	bimap_link(&m->exc, e);
	__atomic_store_n(&m->nexc, m->exc.n, __ATOMIC_RELAXED);
}

static void exc_remove_locked(struct inomap *m, dev_t dev, ino_t ino)
{
	struct inomap_ent *e = bimap_find_k(&m->exc, (uint64_t)dev, (uint64_t)ino);

	if (e == NULL)
		return;
	bimap_remove(&m->exc, e);
	__atomic_store_n(&m->nexc, m->exc.n, __ATOMIC_RELAXED);
}

uint64_t inomap_get(struct inomap *m, dev_t dev, ino_t ino)
{
	struct inomap_ent *e;
	uint64_t n;
	bool alloc;

	pthread_mutex_lock(&m->lock);
	e = bimap_find_k(&m->exc, (uint64_t)dev, (uint64_t)ino);
	if (e != NULL) {
		n = e->v0;
		goto out;
	}
	n = fresh_locked(m, dev, ino, &alloc);
	if (!alloc)
		goto out;
	/* A handed-out number must stay the object's: remember it. */
	e = malloc(sizeof(*e));
	if (e == NULL) {
		n = 0;
		goto out;
	}
	exc_insert_locked(m, e, dev, ino, n);
out:
	pthread_mutex_unlock(&m->lock);
	return n;
}

void inomap_drop(struct inomap *m, dev_t dev, ino_t ino)
{
	if (inomap_exceptions(m) == 0)
		return;
	pthread_mutex_lock(&m->lock);
	exc_remove_locked(m, dev, ino);
	pthread_mutex_unlock(&m->lock);
}

size_t inomap_exceptions(struct inomap *m)
{
	return __atomic_load_n(&m->nexc, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------- the pairs */

int inomap_pairs_init(struct inomap_pairs *p)
{
	int ret = bimap_init(&p->map);

	if (ret < 0)
		return ret;
	pthread_mutex_init(&p->lock, NULL);
	return 0;
}

void inomap_pairs_destroy(struct inomap_pairs *p)
{
	if (p->map.kb == NULL)
		return;
	bimap_destroy(&p->map);
	pthread_mutex_destroy(&p->lock);
}

int inomap_pairs_add(struct inomap_pairs *p, dev_t odev, ino_t oino, dev_t ndev, ino_t nino)
{
	struct inomap_ent *e;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	/* One pair per source object and per destination object: a later
	 * copy replaces an earlier one, a reused number a dead object's. */
	e = bimap_find_k(&p->map, (uint64_t)odev, (uint64_t)oino);
	if (e != NULL)
		bimap_remove(&p->map, e);
	e = bimap_find_v(&p->map, (uint64_t)ndev, (uint64_t)nino);
	if (e != NULL)
		bimap_remove(&p->map, e);
	e = malloc(sizeof(*e));
	if (e == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	*e = (struct inomap_ent){ .k0 = (uint64_t)odev, .k1 = (uint64_t)oino,
				  .v0 = (uint64_t)ndev, .v1 = (uint64_t)nino };
	bimap_link(&p->map, e);
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void inomap_pairs_drop_dest(struct inomap_pairs *p, dev_t ndev, ino_t nino)
{
	struct inomap_ent *e;

	pthread_mutex_lock(&p->lock);
	e = bimap_find_v(&p->map, (uint64_t)ndev, (uint64_t)nino);
	if (e != NULL)
		bimap_remove(&p->map, e);
	pthread_mutex_unlock(&p->lock);
}

size_t inomap_pairs_count(struct inomap_pairs *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->map.n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* ---------------------------------------------------------- the carry */

void inomap_carry_cancel(struct inomap_carry *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->ents != NULL && i < c->n; i++)
		free(c->ents[i]);
	free(c->ents);
	free(c->shown);
	free(c->v);
	free(c);
}

int inomap_carry_prepare(struct inomap *m, struct inomap_pairs *p,
			 const struct inomap_pair *extra, size_t nextra,
			 struct inomap_carry **out)
{
	struct inomap_carry *c = calloc(1, sizeof(*c));
	int ret = 0;

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nextra; i++) {
		ret = inomap_pairs_add(p, extra[i].odev, extra[i].oino, extra[i].ndev, extra[i].nino);
		if (ret < 0)
			goto out;
	}
	pthread_mutex_lock(&p->lock);
	c->v = malloc((p->map.n + 1) * sizeof(*c->v));
	c->shown = malloc((p->map.n + 1) * sizeof(*c->shown));
	c->ents = calloc(p->map.n + 1, sizeof(struct inomap_ent *));
	if (c->v == NULL || c->shown == NULL || c->ents == NULL) {
		pthread_mutex_unlock(&p->lock);
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->map.nb; i++) {
		for (const struct inomap_ent *e = p->map.kb[i]; e != NULL; e = e->knext) {
			c->v[c->n] = (struct inomap_pair){ .odev = (dev_t)e->k0, .oino = (ino_t)e->k1,
							   .ndev = (dev_t)e->v0, .nino = (ino_t)e->v1 };
			c->ents[c->n] = malloc(sizeof(struct inomap_ent));
			if (c->ents[c->n++] == NULL)
				ret = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (ret < 0)
		goto out;
	/* What commit would allocate: the source filesystems' numbers (their
	 * rule numbers must not turn into fresh ones) and room in the table. */
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < c->n; i++)
		(void)dev_index_locked(m, c->v[i].odev);
	while (m->exc.n + c->n > m->exc.nb && bimap_grow(&m->exc))
		;
	pthread_mutex_unlock(&m->lock);
out:
	if (ret < 0)
		inomap_carry_cancel(c);
	else
		*out = c;
	return ret;
}

void inomap_carry_commit(struct inomap *m, struct inomap_carry *c)
{
	pthread_mutex_lock(&m->lock);
	/* Every number first, from the state before the carry... */
	for (size_t i = 0; i < c->n; i++) {
		const struct inomap_ent *e = bimap_find_k(&m->exc, (uint64_t)c->v[i].odev,
							   (uint64_t)c->v[i].oino);
		bool alloc;

		c->shown[i] = e != NULL ? e->v0 : fresh_locked(m, c->v[i].odev, c->v[i].oino, &alloc);
	}
	/* ...then the source objects give theirs up (they leave the mount)... */
	for (size_t i = 0; i < c->n; i++) {
		exc_remove_locked(m, c->v[i].odev, c->v[i].oino);
		exc_remove_locked(m, c->v[i].ndev, c->v[i].nino);
	}
	/* ...and their copies take them. */
	for (size_t i = 0; i < c->n; i++) {
		exc_insert_locked(m, c->ents[i], c->v[i].ndev, c->v[i].nino, c->shown[i]);
		c->ents[i] = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	inomap_carry_cancel(c);
}
