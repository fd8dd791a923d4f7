/* Unit tests of the block index, checked against a plain array model. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "relocfs/extmap.h"
#include "unit.h"

static void test_set_get_overwrite(void)
{
	struct extmap m;
	const struct extmap_ent *e;

	extmap_init(&m);
	CHECK(extmap_get(&m, 5) == NULL);
	CHECK_EQ(extmap_set(&m, 5, EXTMAP_JOURNAL, 2, 4096), 0);
	e = extmap_get(&m, 5);
	CHECK(e != NULL);
	CHECK_EQ(e->where, EXTMAP_JOURNAL);
	CHECK_EQ(e->gen, 2);
	CHECK_EQ(e->off, 4096);
	CHECK_EQ(extmap_set(&m, 5, EXTMAP_DEST, 0, 0), 0);
	CHECK_EQ(extmap_get(&m, 5)->where, EXTMAP_DEST);
	CHECK_EQ(m.count, 1);
	CHECK_EQ(extmap_set(&m, UINT64_MAX, EXTMAP_DEST, 0, 0), -EINVAL);
	CHECK_EQ(extmap_set(&m, 1, EXTMAP_NONE, 0, 0), -EINVAL);
	CHECK_EQ(extmap_remove(&m, 5), 0);
	CHECK_EQ(extmap_remove(&m, 5), -ENOENT);
	CHECK(extmap_get(&m, 5) == NULL);
	extmap_destroy(&m);
}

#define N 20000
#define BS_TEST 4096u

/* Random sets and removes against a model; every key checked after. */
static void test_random_against_model(void)
{
	static uint32_t model[N];	/* 0 = absent, else where | gen << 8 */
	struct extmap m;

	srand(42);
	memset(model, 0, sizeof(model));
	extmap_init(&m);
	for (int i = 0; i < 200000; i++) {
		uint64_t b = (uint64_t)rand() % N;

		if (rand() % 3 == 0) {
			int had = model[b] != 0;

			CHECK_EQ(extmap_remove(&m, b), had ? 0 : -ENOENT);
			model[b] = 0;
		} else {
			uint32_t where = 1 + (uint32_t)rand() % 3, gen = (uint32_t)rand() % 100;

			CHECK_EQ(extmap_set(&m, b, where, gen, b * 7), 0);
			model[b] = where | gen << 8;
		}
	}
	size_t count = 0;

	for (uint64_t b = 0; b < N; b++) {
		const struct extmap_ent *e = extmap_get(&m, b);

		if (model[b] == 0) {
			CHECK(e == NULL);
			continue;
		}
		count++;
		CHECK(e != NULL);
		CHECK_EQ(e->where, model[b] & 0xff);
		CHECK_EQ(e->gen, model[b] >> 8);
		CHECK_EQ(e->off, b * 7);
	}
	CHECK_EQ(m.count, count);
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
		const struct extmap_ent *e = extmap_get(&m, b * 3);

		if (b * 3 < 3000)
			CHECK(e != NULL && e->off == b);
		else
			CHECK(e == NULL);
	}
	CHECK_EQ(m.count, 1000);
	extmap_truncate(&m, 0);
	CHECK_EQ(m.count, 0);
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
		CHECK_EQ(extmap_get(&m, b)->where, b % 2 ? EXTMAP_JOURNAL : EXTMAP_DEST);
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

static int count_fn(struct extmap_ent *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
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
	return UNIT_DONE();
}
