/* Unit tests of the inode numbers a mount shows: the rule per filesystem,
 * the carry at cutover (there and back, held objects winning over the
 * engine's pairs, dropped pairs not carried), numbers reused by the
 * backing filesystem, and a randomized run of creates, deletes and
 * relocations between three filesystems checked against a model: no two
 * live objects ever share a number, and no object's number ever changes. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>

#include "relocfs/inomap.h"
#include "unit.h"

#define S ((dev_t)0x801)	/* the source root's filesystem */
#define D ((dev_t)0x802)
#define E ((dev_t)0x803)

static struct inomap m;
static struct inomap_pairs p;

static void carry(const struct inomap_pair *extra, size_t n, int *ret)
{
	struct inomap_carry *c = NULL;

	*ret = inomap_carry_prepare(&m, &p, extra, n, &c);
	if (*ret == 0)
		inomap_carry_commit(&m, c);
}

/* One relocation of k objects: o[i] on odev was copied to n[i] on ndev. */
static int relocate(dev_t odev, const ino_t *o, dev_t ndev, const ino_t *n, size_t k)
{
	int ret = inomap_pairs_init(&p);

	for (size_t i = 0; ret == 0 && i < k; i++)
		ret = inomap_pairs_add(&p, odev, o[i], ndev, n[i]);
	if (ret == 0)
		carry(NULL, 0, &ret);
	inomap_pairs_destroy(&p);
	return ret;
}

static void test_rule_per_filesystem(void)
{
	CHECK(inomap_init(&m, S) == 0);
	CHECK_EQ(inomap_get(&m, S, 12), 12);
	CHECK_EQ(inomap_get(&m, D, 12), 1ull << INOMAP_DEV_SHIFT | 12);
	CHECK_EQ(inomap_get(&m, E, 12), 2ull << INOMAP_DEV_SHIFT | 12);
	CHECK_EQ(inomap_get(&m, D, 12), 1ull << INOMAP_DEV_SHIFT | 12);
	CHECK_EQ(inomap_exceptions(&m), 0);
	inomap_destroy(&m);
}

static void test_huge_backing_numbers_get_their_own(void)
{
	uint64_t a, b;

	CHECK(inomap_init(&m, S) == 0);
	a = inomap_get(&m, S, (ino_t)1 << 50);
	b = inomap_get(&m, D, (ino_t)1 << 50);
	CHECK(a >= INOMAP_ALLOC_BASE && b >= INOMAP_ALLOC_BASE && a != b);
	CHECK_EQ(inomap_get(&m, S, (ino_t)1 << 50), a);
	CHECK_EQ(inomap_get(&m, D, (ino_t)1 << 50), b);
	CHECK_EQ(inomap_exceptions(&m), 2);
	inomap_drop(&m, S, (ino_t)1 << 50);
	CHECK_EQ(inomap_exceptions(&m), 1);
	inomap_destroy(&m);
}

static void test_carry_there_and_back(void)
{
	static const ino_t src[] = { 10, 11, 12 }, dst[] = { 10, 20, 30 }, back[] = { 40, 41, 42 };

	CHECK(inomap_init(&m, S) == 0);
	/* D numbers its copies 10, 20, 30: 10 is also a source number. */
	CHECK_EQ(relocate(S, src, D, dst, 3), 0);
	CHECK_EQ(inomap_get(&m, D, 10), 10);
	CHECK_EQ(inomap_get(&m, D, 20), 11);
	CHECK_EQ(inomap_get(&m, D, 30), 12);
	/* The source frees 10 and reuses it for a new object elsewhere. */
	uint64_t reused = inomap_get(&m, S, 10);
	CHECK(reused >= INOMAP_ALLOC_BASE);
	CHECK_EQ(inomap_get(&m, S, 10), reused);

	/* And back to the source, as new objects 40, 41, 42. */
	CHECK_EQ(relocate(D, dst, S, back, 3), 0);
	CHECK_EQ(inomap_get(&m, S, 40), 10);
	CHECK_EQ(inomap_get(&m, S, 41), 11);
	CHECK_EQ(inomap_get(&m, S, 42), 12);
	/* D's old objects hold nothing any more: a reuse of 20 there follows
	 * the rule. */
	CHECK_EQ(inomap_get(&m, D, 20), 1ull << INOMAP_DEV_SHIFT | 20);
	CHECK_EQ(inomap_exceptions(&m), 4);	/* 40, 41, 42 and the reused 10 */
	inomap_destroy(&m);
}

static void test_held_objects_win_and_dropped_pairs_stay(void)
{
	struct inomap_pair held = { .odev = S, .oino = 10, .ndev = D, .nino = 99 };
	int ret;

	CHECK(inomap_init(&m, S) == 0);
	CHECK(inomap_pairs_init(&p) == 0);
	CHECK(inomap_pairs_add(&p, S, 10, D, 10) == 0);
	CHECK(inomap_pairs_add(&p, S, 11, D, 11) == 0);
	CHECK(inomap_pairs_add(&p, S, 12, D, 12) == 0);
	/* a later copy of 12 replaces the first, whose D object is reused */
	CHECK(inomap_pairs_add(&p, S, 13, D, 12) == 0);
	CHECK(inomap_pairs_add(&p, S, 12, D, 14) == 0);
	inomap_pairs_drop_dest(&p, D, 11);	/* its last link removed */
	CHECK_EQ(inomap_pairs_count(&p), 3);
	carry(&held, 1, &ret);
	CHECK_EQ(ret, 0);
	CHECK_EQ(inomap_get(&m, D, 99), 10);
	CHECK_EQ(inomap_get(&m, D, 10), 1ull << INOMAP_DEV_SHIFT | 10);
	CHECK_EQ(inomap_get(&m, D, 11), 1ull << INOMAP_DEV_SHIFT | 11);
	CHECK_EQ(inomap_get(&m, D, 12), 13);
	CHECK_EQ(inomap_get(&m, D, 14), 12);
	inomap_pairs_destroy(&p);
	inomap_destroy(&m);
}

static void test_cancel_changes_nothing(void)
{
	struct inomap_carry *c = NULL;

	CHECK(inomap_init(&m, S) == 0);
	CHECK(inomap_pairs_init(&p) == 0);
	CHECK(inomap_pairs_add(&p, S, 10, D, 20) == 0);
	CHECK(inomap_carry_prepare(&m, &p, NULL, 0, &c) == 0);
	inomap_carry_cancel(c);
	CHECK_EQ(inomap_get(&m, D, 20), 1ull << INOMAP_DEV_SHIFT | 20);
	CHECK_EQ(inomap_exceptions(&m), 0);
	inomap_pairs_destroy(&p);
	inomap_destroy(&m);
}

static void test_carry_of_many_objects(void)
{
	enum { N = 20000 };
	int ret;

	CHECK(inomap_init(&m, S) == 0);
	CHECK(inomap_pairs_init(&p) == 0);
	for (ino_t i = 1; i <= N; i++)
		CHECK(inomap_pairs_add(&p, S, i, D, N + 1 - i) == 0);
	carry(NULL, 0, &ret);
	CHECK_EQ(ret, 0);
	for (ino_t i = 1; i <= N; i++)
		CHECK_EQ(inomap_get(&m, D, N + 1 - i), i);
	CHECK_EQ(inomap_exceptions(&m), N);
	inomap_pairs_destroy(&p);
	inomap_destroy(&m);
}

/* The model: live objects, each on one filesystem in one of 8 homes. */
struct obj {
	dev_t dev;
	ino_t ino;
	int home;
	uint64_t shown;
};

static int in_use(const struct obj *o, size_t n, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (o[i].dev == dev && o[i].ino == ino)
			return 1;
	return 0;
}

/* A free backing number on dev, from a small space so that numbers are
 * reused as real filesystems do. */
static ino_t free_ino(const struct obj *o, size_t n, dev_t dev)
{
	for (;;) {
		ino_t ino = (ino_t)(rand() % 300) + 1;

		if (!in_use(o, n, dev, ino))
			return ino;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_random_never_collides_never_changes(void)
{
	static const dev_t devs[] = { S, D, E };
	static struct obj o[200];
	static uint64_t seen[200];
	int home_dev[8] = { 0 };
	size_t n = 0;

	srand(7);
	CHECK(inomap_init(&m, S) == 0);
	for (int step = 0; step < 4000; step++) {
		int op = rand() % 10;

		if (op < 5 && n < 200) {		/* create in a home */
			int h = rand() % 8;
			dev_t dev = devs[home_dev[h]];

			o[n] = (struct obj){ dev, free_ino(o, n, dev), h, 0 };
			o[n].shown = inomap_get(&m, o[n].dev, o[n].ino);
			CHECK(o[n].shown != 0);
			n++;
		} else if (op < 8 && n > 0) {		/* delete */
			size_t i = (size_t)rand() % n;

			/* the kernel may never forget it: a stale exception */
			if (rand() % 2)
				inomap_drop(&m, o[i].dev, o[i].ino);
			o[i] = o[--n];
		} else {				/* relocate a home */
			int h = rand() % 8, to = (home_dev[h] + 1 + rand() % 2) % 3;
			struct obj next[200];
			int ret;

			CHECK(inomap_pairs_init(&p) == 0);
			memcpy(next, o, sizeof(o));
			for (size_t i = 0; i < n; i++) {
				if (o[i].home != h)
					continue;
				next[i].dev = devs[to];
				next[i].ino = free_ino(next, n, devs[to]);
				CHECK(inomap_pairs_add(&p, o[i].dev, o[i].ino,
						       next[i].dev, next[i].ino) == 0);
			}
			carry(NULL, 0, &ret);
			CHECK_EQ(ret, 0);
			inomap_pairs_destroy(&p);
			memcpy(o, next, sizeof(o));
			home_dev[h] = to;
		}
		/* every live object: the same number as ever, all distinct */
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(inomap_get(&m, o[i].dev, o[i].ino), o[i].shown);
			seen[i] = o[i].shown;
		}
		qsort(seen, n, sizeof(seen[0]), cmp_u64);
		for (size_t i = 1; i < n; i++)
			CHECK(seen[i] != seen[i - 1]);
	}
	inomap_destroy(&m);
}

int main(void)
{
	UNIT_RUN(test_rule_per_filesystem);
	UNIT_RUN(test_huge_backing_numbers_get_their_own);
	UNIT_RUN(test_carry_there_and_back);
	UNIT_RUN(test_held_objects_win_and_dropped_pairs_stay);
	UNIT_RUN(test_cancel_changes_nothing);
	UNIT_RUN(test_carry_of_many_objects);
	UNIT_RUN(test_random_never_collides_never_changes);
	return UNIT_DONE();
}
