/* extmap: owns a block -> location hash map (open addressing, linear
 * probing, backward-shift deletion: no tombstones, so lookups stay short
 * after any number of rounds of removal), and the pending list.
 *
 * Why the list: the map keeps a DEST entry for every block written since
 * the relocation started, so a walk of the map grows with the relocation's
 * length, and every round (and the cutover, in the pause) would pay it
 * under the file's lock. The list names the blocks a round has to apply.
 *
 * Invariants: count < cap * 3/4 whenever cap > 0; an empty slot has block
 * UINT64_MAX, which is never a valid block (offsets stop far below 2^64 *
 * 4096). An entry has listed set exactly when its block is in pend, which
 * holds no block twice and none without an entry; every JOURNAL or ZERO
 * entry is listed (a listed DEST entry leaves at the next pending walk).
 * Not thread-safe: the owner's file lock serializes access. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "relocfs/extmap.h"

#define EMPTY UINT64_MAX
#define MIN_CAP 64

static size_t slot_of(uint64_t block, size_t cap)
{
	uint64_t h = block * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h ^ (h >> 32)) & (cap - 1);
}

void extmap_init(struct extmap *m)
{
	memset(m, 0, sizeof(*m));
}

void extmap_destroy(struct extmap *m)
{
	free(m->slots);
	free(m->pend);
	memset(m, 0, sizeof(*m));
}

static int extmap_resize(struct extmap *m, size_t cap)
{
	struct extmap_ent *old = m->slots, *slots;
	size_t oldcap = m->cap;

	slots = malloc(cap * sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		slots[i].block = EMPTY;
	for (size_t i = 0; i < oldcap; i++) {
		size_t s;

		if (old[i].block == EMPTY)
			continue;
		s = slot_of(old[i].block, cap);
		while (slots[s].block != EMPTY)
			s = (s + 1) & (cap - 1);
		slots[s] = old[i];
	}
	free(old);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

static struct extmap_ent *find(const struct extmap *m, uint64_t block)
{
	size_t s;

	if (m->cap == 0)
		return NULL;
	for (s = slot_of(block, m->cap); m->slots[s].block != EMPTY; s = (s + 1) & (m->cap - 1))
		if (m->slots[s].block == block)
			return &m->slots[s];
	return NULL;
}

static bool is_pending(uint32_t where)
{
	return where == EXTMAP_JOURNAL || where == EXTMAP_ZERO;
}

/* Room for one more block in the pending list. */
static int pend_reserve(struct extmap *m)
{
	size_t cap;
	uint64_t *v;

	if (m->npend < m->pend_cap)
		return 0;
	cap = m->pend_cap ? m->pend_cap * 2 : MIN_CAP;
	v = realloc(m->pend, cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	m->pend = v;
	m->pend_cap = cap;
	return 0;
}

int extmap_set(struct extmap *m, uint64_t block, enum extmap_where where,
	       uint32_t gen, uint64_t off)
{
	struct extmap_ent *e = find(m, block);
	bool list = is_pending(where) && (e == NULL || !e->listed);
	size_t s;

	if (block == EMPTY || where == EXTMAP_NONE)
		return -EINVAL;
	/* Both allocations before any change: -ENOMEM changes nothing. */
	if (list) {
		int ret = pend_reserve(m);

		if (ret < 0)
			return ret;
	}
	if (e == NULL) {
		if ((m->count + 1) * 4 > m->cap * 3) {
			int ret = extmap_resize(m, m->cap ? m->cap * 2 : MIN_CAP);

			if (ret < 0)
				return ret;
		}
		s = slot_of(block, m->cap);
		while (m->slots[s].block != EMPTY)
			s = (s + 1) & (m->cap - 1);
		e = &m->slots[s];
		e->block = block;
		e->listed = 0;
		m->count++;
	}
	if (list) {
		m->pend[m->npend++] = block;
		e->listed = 1;
	}
	e->where = (uint16_t)where;
	e->gen = gen;
	e->off = off;
	return 0;
}

const struct extmap_ent *extmap_get(const struct extmap *m, uint64_t block)
{
	return find(m, block);
}

/* Backward-shift deletion of slot i. */
static void delete_slot(struct extmap *m, size_t i)
{
	size_t mask = m->cap - 1, j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (m->slots[j].block == EMPTY)
			break;
		k = slot_of(m->slots[j].block, m->cap);
		/* Move j back to i unless its home k lies cyclically in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].block = EMPTY;
	m->count--;
}

int extmap_remove(struct extmap *m, uint64_t block)
{
	struct extmap_ent *e = find(m, block);

	if (e == NULL)
		return -ENOENT;
	if (e->listed) {
		for (size_t i = 0; i < m->npend; i++)
			if (m->pend[i] == block) {
				m->pend[i] = m->pend[--m->npend];
				break;
			}
	}
	delete_slot(m, (size_t)(e - m->slots));
	return 0;
}

void extmap_truncate(struct extmap *m, uint64_t first)
{
	size_t i = 0, keep = 0;

	/* Deletion shifts a later entry into i: re-examine i then. An entry
	 * wrapped from the front was already kept, so one pass suffices. */
	while (i < m->cap) {
		if (m->slots[i].block != EMPTY && m->slots[i].block >= first)
			delete_slot(m, i);
		else
			i++;
	}
	for (i = 0; i < m->npend; i++)
		if (m->pend[i] < first)
			m->pend[keep++] = m->pend[i];
	m->npend = keep;
}

int extmap_each(struct extmap *m, extmap_fn fn, void *arg)
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].block == EMPTY)
			continue;
		int ret = fn(&m->slots[i], arg);

		if (ret != 0)
			return ret;
	}
	return 0;
}

int extmap_each_pending(struct extmap *m, extmap_fn fn, void *arg)
{
	size_t i, keep = 0;
	int ret = 0;

	if (m->npend == 0)
		return 0;
	for (i = 0; i < m->npend; i++) {
		struct extmap_ent *e = find(m, m->pend[i]);

		/* Applied since (DEST): off the list until it is written again. */
		if (!is_pending(e->where)) {
			e->listed = 0;
			continue;
		}
		m->pend[keep++] = m->pend[i];
		ret = fn(e, arg);
		if (ret != 0) {
			i++;
			break;
		}
	}
	/* A stopped walk keeps the blocks it did not reach. */
	memmove(m->pend + keep, m->pend + i, (m->npend - i) * sizeof(*m->pend));
	m->npend = keep + (m->npend - i);
	return ret;
}
