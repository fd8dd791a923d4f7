/* Unit tests of the block index, checked against a plain array model. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "relocfs/extmap.h"
#include "unit.h"

static void test_set_get_overwrite(void)
{
	struct extmap m;
	struct extmap_ent e;

	extmap_init(&m);
	CHECK_EQ(extmap_get(&m, 5, &e), EXTMAP_NONE);
	CHECK_EQ(extmap_set(&m, 5, EXTMAP_JOURNAL, 2, 4096), 0);
	CHECK_EQ(extmap_get(&m, 5, &e), EXTMAP_JOURNAL);
	CHECK_EQ(e.where, EXTMAP_JOURNAL);
	CHECK_EQ(e.gen, 2);
	CHECK_EQ(e.off, 4096);
	CHECK_EQ(extmap_set(&m, 5, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(extmap_get(&m, 5, NULL), EXTMAP_DEST);
	CHECK_EQ(m.count, 1);
	CHECK_EQ(extmap_set(&m, UINT64_MAX, EXTMAP_DEST, 0, 0), -EINVAL);
	CHECK_EQ(extmap_set(&m, 1, EXTMAP_NONE, 0, 0), -EINVAL);
	CHECK_EQ(extmap_set(&m, 1, (enum extmap_where)9, 0, 0), -EINVAL);
	CHECK_EQ(extmap_remove(&m, 5), 0);
	CHECK_EQ(extmap_remove(&m, 5), -ENOENT);
	CHECK_EQ(extmap_get(&m, 5, NULL), EXTMAP_NONE);
	CHECK_EQ(m.count, 0);
	/* Far apart: chunks of the bitmap at both ends of the range. */
	CHECK_EQ(extmap_set(&m, 0, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(extmap_set(&m, UINT64_MAX - 1, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(extmap_set(&m, UINT64_MAX / 2, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(extmap_get(&m, UINT64_MAX - 1, NULL), EXTMAP_DEST);
	CHECK_EQ(extmap_get(&m, UINT64_MAX / 2, NULL), EXTMAP_DEST);
	CHECK_EQ(extmap_get(&m, UINT64_MAX / 2 + 1, NULL), EXTMAP_NONE);
	CHECK_EQ(m.count, 3);
	extmap_truncate(&m, 1);
	CHECK_EQ(m.count, 1);
	CHECK_EQ(extmap_get(&m, 0, NULL), EXTMAP_DEST);
	extmap_destroy(&m);
}

#define N 20000
#define BS_TEST 4096u

static int count_fn(struct extmap_ent *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}


/* Every block of the model checked against the map, and the count. */
static void check_model(const struct extmap *m, const uint32_t *model, uint64_t n, uint64_t stride)
{
	size_t count = 0;

	for (uint64_t b = 0; b < n; b++) {
		struct extmap_ent e;
		enum extmap_where w = extmap_get(m, b * stride, &e);

		if (model[b] == 0) {
			CHECK_EQ(w, EXTMAP_NONE);
			continue;
		}
		count++;
		CHECK_EQ(w, model[b] & 0xff);
		if (w == EXTMAP_DEST)
			continue;
		CHECK_EQ(e.block, b * stride);
		CHECK_EQ(e.gen, model[b] >> 8);
		CHECK_EQ(e.off, b * 7);
	}
	CHECK_EQ(m->count, count);
}

/* Random sets, removes and walks against a model, with blocks spread over
 * several bitmap chunks (stride); every key checked after. */
static void test_random_against_model(void)
{
	static uint32_t model[N];	/* 0 = absent, else where | gen << 8 */
	const uint64_t stride = 97;
	struct extmap m;

	srand(42);
	memset(model, 0, sizeof(model));
	extmap_init(&m);
	for (int i = 0; i < 200000; i++) {
		uint64_t b = (uint64_t)rand() % N;

		if (rand() % 3 == 0) {
			int had = model[b] != 0;

			CHECK_EQ(extmap_remove(&m, b * stride), had ? 0 : -ENOENT);
			model[b] = 0;
		} else {
			uint32_t where = 1 + (uint32_t)rand() % 3, gen = (uint32_t)rand() % 100;

			CHECK_EQ(extmap_set(&m, b * stride, where, gen, b * 7), 0);
			model[b] = where == EXTMAP_DEST ? EXTMAP_DEST : where | gen << 8;
		}
		/* Now and then a walk moves the DEST entries to the bitmap. */
		if (rand() % 5000 == 0)
			CHECK_EQ(extmap_each_pending(&m, count_fn, &(int){ 0 }), 0);
	}
	check_model(&m, model, N, stride);
	extmap_destroy(&m);
}

static void test_truncate_removes_tail_only(void)
{
	struct extmap m;

	extmap_init(&m);
	for (uint64_t b = 0; b < 5000; b++)
		CHECK_EQ(extmap_set(&m, b * 3, EXTMAP_JOURNAL, 1, b), 0);
	extmap_truncate(&m, 3000);
	for (uint64_t b = 0; b < 5000; b++) {
		struct extmap_ent e;

		if (b * 3 < 3000)
			CHECK(extmap_get(&m, b * 3, &e) == EXTMAP_JOURNAL && e.off == b);
		else
			CHECK_EQ(extmap_get(&m, b * 3, NULL), EXTMAP_NONE);
	}
	CHECK_EQ(m.count, 1000);
	extmap_truncate(&m, 0);
	CHECK_EQ(m.count, 0);
	/* The bitmap: a cut inside a chunk, inside a word, and whole chunks. */
	for (uint64_t b = 0; b < 3000000; b += 1000)
		CHECK_EQ(extmap_set(&m, b + 5, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(m.count, 3000);
	extmap_truncate(&m, 1000000 + 6);
	CHECK_EQ(m.count, 1001);
	CHECK_EQ(extmap_get(&m, 1000005, NULL), EXTMAP_DEST);
	CHECK_EQ(extmap_get(&m, 1001005, NULL), EXTMAP_NONE);
	extmap_truncate(&m, 1000000 + 5);
	CHECK_EQ(m.count, 1000);
	CHECK_EQ(extmap_get(&m, 999005, NULL), EXTMAP_DEST);
	extmap_truncate(&m, 1ull << 18);
	CHECK_EQ(m.count, 263);
	extmap_destroy(&m);
}

static int to_dest(struct extmap_ent *e, void *arg)
{
	int *n = arg;

	if (e->where == EXTMAP_JOURNAL && e->gen == 1) {
		e->where = EXTMAP_DEST;
		(*n)++;
	}
	return 0;
}

static void test_each_rewrites_in_place(void)
{
	struct extmap m;
	int n = 0;

	extmap_init(&m);
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_set(&m, b, EXTMAP_JOURNAL, (uint32_t)(b % 2 + 1), 0), 0);
	CHECK_EQ(extmap_each(&m, to_dest, &n), 0);
	CHECK_EQ(n, 50);
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_get(&m, b, NULL), b % 2 ? EXTMAP_JOURNAL : EXTMAP_DEST);
	/* The walk moves the DEST entries to the bitmap: same answers. */
	CHECK_EQ(extmap_each_pending(&m, count_fn, &n), 0);
	CHECK_EQ(n, 100);
	CHECK_EQ(m.npend, 50);
	CHECK_EQ(m.count, 100);
	n = 0;
	CHECK_EQ(extmap_each(&m, count_fn, &n), 0);
	CHECK_EQ(n, 100);
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_get(&m, b, NULL), b % 2 ? EXTMAP_JOURNAL : EXTMAP_DEST);
	extmap_destroy(&m);
}

/* The pending walk visits each JOURNAL or ZERO block once and nothing
 * else: checked against the model after random sets, removes, truncations
 * and walks that apply one generation (JOURNAL -> DEST, ZERO -> DEST). */
struct visit {
	uint8_t *seen;
	uint32_t gen;		/* apply this generation's blocks, 0: none */
	int dups;
};

static int visit_fn(struct extmap_ent *e, void *arg)
{
	struct visit *v = arg;

	if (v->seen[e->block]++)
		v->dups++;
	if (v->gen != 0 && (e->where == EXTMAP_ZERO || e->gen == v->gen))
		e->where = EXTMAP_DEST;
	return 0;
}

static void check_pending_walk(struct extmap *m, const uint32_t *model, uint64_t n)
{
	static uint8_t seen[N];
	struct visit v = { .seen = seen };

	memset(seen, 0, sizeof(seen));
	CHECK_EQ(extmap_each_pending(m, visit_fn, &v), 0);
	CHECK_EQ(v.dups, 0);
	for (uint64_t b = 0; b < n; b++) {
		uint32_t w = model[b] & 0xff;

		CHECK_EQ(seen[b] != 0, w == EXTMAP_JOURNAL || w == EXTMAP_ZERO);
	}
	CHECK(m->npend <= m->count);
}

static void test_pending_walk_against_model(void)
{
	static uint32_t model[N];
	struct extmap m;
	static uint8_t seen[N];

	srand(7);
	memset(model, 0, sizeof(model));
	extmap_init(&m);
	for (int i = 0; i < 200000; i++) {
		uint64_t b = (uint64_t)rand() % N;
		int op = rand() % 100;

		if (op < 10) {
			CHECK_EQ(extmap_remove(&m, b), model[b] ? 0 : -ENOENT);
			model[b] = 0;
		} else if (op == 10 && rand() % 20 == 0) {
			extmap_truncate(&m, b);
			for (uint64_t k = b; k < N; k++)
				model[k] = 0;
		} else if (op == 11) {
			/* One round: apply a generation, as apply_dest does. */
			struct visit v = { .seen = seen, .gen = 1 + (uint32_t)rand() % 4 };

			memset(seen, 0, sizeof(seen));
			CHECK_EQ(extmap_each_pending(&m, visit_fn, &v), 0);
			CHECK_EQ(v.dups, 0);
			for (uint64_t k = 0; k < N; k++) {
				uint32_t w = model[k] & 0xff;

				if (w == EXTMAP_ZERO || (w == EXTMAP_JOURNAL && model[k] >> 8 == v.gen))
					model[k] = EXTMAP_DEST;
			}
		} else {
			uint32_t where = 1 + (uint32_t)rand() % 3, gen = 1 + (uint32_t)rand() % 4;

			CHECK_EQ(extmap_set(&m, b, where, gen, b), 0);
			model[b] = where | gen << 8;
		}
	}
	check_pending_walk(&m, model, N);
	/* A DEST entry rewritten goes back on the list, once. */
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_set(&m, b, EXTMAP_DEST, 0, 0), 0);
	for (uint64_t b = 0; b < 100; b++) {
		CHECK_EQ(extmap_set(&m, b, EXTMAP_JOURNAL, 9, 0), 0);
		CHECK_EQ(extmap_set(&m, b, EXTMAP_JOURNAL, 9, BS_TEST), 0);
		model[b] = EXTMAP_JOURNAL | 9u << 8;
	}
	check_pending_walk(&m, model, N);
	extmap_destroy(&m);
}

static int stop_after(struct extmap_ent *e, void *arg)
{
	int *left = arg;

	(void)e;
	return --*left == 0 ? 5 : 0;
}

/* Settling moves the entries made DEST to the bitmap and nothing else. */
static void test_settle(void)
{
	struct extmap m;
	int n = 0;

	extmap_init(&m);
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_set(&m, b, b % 4 ? EXTMAP_JOURNAL : EXTMAP_ZERO, 1, b), 0);
	for (uint64_t b = 0; b < 100; b += 2)
		CHECK_EQ(extmap_set(&m, b, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(m.used, 100);
	extmap_settle(&m);
	CHECK_EQ(m.used, 50);
	CHECK_EQ(m.npend, 50);
	CHECK_EQ(m.count, 100);
	for (uint64_t b = 0; b < 100; b++)
		CHECK_EQ(extmap_get(&m, b, NULL),
			 b % 2 == 0 ? EXTMAP_DEST : b % 4 ? EXTMAP_JOURNAL : EXTMAP_ZERO);
	CHECK_EQ(extmap_each_pending(&m, count_fn, &n), 0);
	CHECK_EQ(n, 50);
	extmap_destroy(&m);
}

/* A walk stopped by fn returns its value and keeps every block listed. */
static void test_pending_walk_stops(void)
{
	struct extmap m;
	int left = 10, n = 0;

	extmap_init(&m);
	for (uint64_t b = 0; b < 300; b++)
		CHECK_EQ(extmap_set(&m, b, b % 3 ? EXTMAP_JOURNAL : EXTMAP_DEST, 1, 0), 0);
	CHECK_EQ(extmap_each_pending(&m, stop_after, &left), 5);
	CHECK_EQ(extmap_each_pending(&m, count_fn, &n), 0);
	CHECK_EQ(n, 200);
	extmap_destroy(&m);
}

int main(void)
{
	UNIT_RUN(test_set_get_overwrite);
	UNIT_RUN(test_random_against_model);
	UNIT_RUN(test_truncate_removes_tail_only);
	UNIT_RUN(test_each_rewrites_in_place);
	UNIT_RUN(test_pending_walk_against_model);
	UNIT_RUN(test_pending_walk_stops);
	UNIT_RUN(test_settle);
	return UNIT_DONE();
}
