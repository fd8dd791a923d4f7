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

int main(void)
{
	UNIT_RUN(test_set_get_overwrite);
	UNIT_RUN(test_random_against_model);
	UNIT_RUN(test_truncate_removes_tail_only);
	UNIT_RUN(test_each_rewrites_in_place);
	return UNIT_DONE();
}
