/* extmap: owns the index of one relocating file, in two parts:
 *  - a hash map (open addressing, linear probing, backward-shift deletion:
 *    no tombstones) of the blocks still to apply, JOURNAL or ZERO, and of
 *    those applied since the last pending walk; with the list of its blocks,
 *    which the walks follow instead of the slots;
 *  - a sparse bitmap of the blocks applied to D (DEST): one bit per block,
 *    in chunks of CHUNK_BLOCKS blocks allocated on first use and found by
 *    binary search in a directory sorted by chunk index.
 *
 * Why: applied blocks accumulate for the whole relocation, millions of them
 * for a big disk written to for hours. In the hash each would cost 24-48
 * bytes, a walk of the slots would grow with the relocation's length, and a
 * resize of the table (under the file's lock) would stall the writer. The
 * pending blocks are those of a round or two.
 *
 * Invariants: a block is in the hash or in the bitmap, never both; pend
 * holds exactly the hash's blocks, each once; used <= cap * 3/4 whenever
 * cap > 0; an empty slot has block UINT64_MAX, never a valid block (offsets
 * stop far below 2^64 * 4096); dir is sorted by index, without duplicates;
 * count = used + the bits set. A DEST entry in the hash moves to the bitmap
 * at the next pending walk, or stays if its chunk cannot be allocated.
 * Not thread-safe: the owner's file lock serializes access; extmap_get only
 * reads, so readers may share the lock. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "relocfs/extmap.h"

#define EMPTY UINT64_MAX
#define MIN_CAP 64
#define CHUNK_SHIFT 18			/* 2^18 blocks: 1 GiB of file */
#define CHUNK_BLOCKS (1ull << CHUNK_SHIFT)
#define CHUNK_WORDS (CHUNK_BLOCKS / 64)	/* 32 KiB of bits */

struct extmap_chunk {
	uint64_t idx;		/* block >> CHUNK_SHIFT */
	uint64_t *bits;
};

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
	for (size_t i = 0; i < m->ndir; i++)
		free(m->dir[i].bits);
	free(m->dir);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------- bitmap */

/* The directory position of chunk idx, or where it would go. */
static size_t dir_pos(const struct extmap *m, uint64_t idx, bool *found)
{
	size_t lo = 0, hi = m->ndir;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->dir[mid].idx < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < m->ndir && m->dir[lo].idx == idx;
	return lo;
}

static bool bit_get(const struct extmap *m, uint64_t block)
{
	bool found;
	size_t p = dir_pos(m, block >> CHUNK_SHIFT, &found);
	uint64_t i = block & (CHUNK_BLOCKS - 1);

	return found && (m->dir[p].bits[i / 64] >> (i % 64) & 1);
}

/* The bits of block's chunk, allocated if absent; NULL on -ENOMEM. */
static uint64_t *chunk_get(struct extmap *m, uint64_t block)
{
	uint64_t idx = block >> CHUNK_SHIFT;
	bool found;
	size_t p = dir_pos(m, idx, &found);
	uint64_t *bits;

	if (found)
		return m->dir[p].bits;
	if (m->ndir == m->dir_cap) {
		size_t cap = m->dir_cap ? m->dir_cap * 2 : 8;
		struct extmap_chunk *d = realloc(m->dir, cap * sizeof(*d));

		if (d == NULL)
			return NULL;
		m->dir = d;
		m->dir_cap = cap;
	}
	bits = calloc(CHUNK_WORDS, sizeof(*bits));
	if (bits == NULL)
		return NULL;
	memmove(m->dir + p + 1, m->dir + p, (m->ndir - p) * sizeof(*m->dir));
	m->dir[p] = (struct extmap_chunk){ idx, bits };
	m->ndir++;
	return bits;
}

/* Sets or clears block's bit; returns whether it changed. */
static bool bit_put(uint64_t *bits, uint64_t block, bool on)
{
	uint64_t i = block & (CHUNK_BLOCKS - 1), mask = 1ull << (i % 64);
	bool was = (bits[i / 64] & mask) != 0;

	if (on)
		bits[i / 64] |= mask;
	else
		bits[i / 64] &= ~mask;
	return was != on;
}

static void bit_clear(struct extmap *m, uint64_t block)
{
	bool found;
	size_t p = dir_pos(m, block >> CHUNK_SHIFT, &found);

	if (found && bit_put(m->dir[p].bits, block, false))
		m->count--;
}

static size_t popcount_words(const uint64_t *w, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += (size_t)__builtin_popcountll(w[i]);
	return c;
}

/* Clears every bit of blocks >= first; chunks left wholly past it go. */
static void bits_truncate(struct extmap *m, uint64_t first)
{
	uint64_t idx = first >> CHUNK_SHIFT, i = first & (CHUNK_BLOCKS - 1);
	bool found;
	size_t p = dir_pos(m, idx, &found), keep = p;

	if (found && i > 0) {
		uint64_t *w = m->dir[p].bits;
		size_t word = (size_t)(i / 64);

		if (i % 64 != 0) {
			uint64_t mask = ~0ull << (i % 64);

			m->count -= (size_t)__builtin_popcountll(w[word] & mask);
			w[word] &= ~mask;
			word++;
		}
		m->count -= popcount_words(w + word, CHUNK_WORDS - word);
		memset(w + word, 0, (CHUNK_WORDS - word) * sizeof(*w));
		keep = p + 1;
	}
	for (size_t k = keep; k < m->ndir; k++) {
		m->count -= popcount_words(m->dir[k].bits, CHUNK_WORDS);
		free(m->dir[k].bits);
	}
	m->ndir = keep;
}

/* --------------------------------------------------------------- hash */

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

/* Backward-shift deletion of slot i; the caller fixes pend. */
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
	m->used--;
	m->count--;
}

/* A new hash entry for block, which is in neither part. Room for it in
 * slots and pend was made beforehand. */
static struct extmap_ent *hash_insert(struct extmap *m, uint64_t block)
{
	size_t s = slot_of(block, m->cap);

	while (m->slots[s].block != EMPTY)
		s = (s + 1) & (m->cap - 1);
	m->slots[s].block = block;
	m->used++;
	m->count++;
	m->pend[m->npend++] = block;
	return &m->slots[s];
}

/* Room for one more hash entry: both allocations before any change. */
static int hash_reserve(struct extmap *m)
{
	if (m->npend == m->pend_cap) {
		size_t cap = m->pend_cap ? m->pend_cap * 2 : MIN_CAP;
		uint64_t *v = realloc(m->pend, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		m->pend = v;
		m->pend_cap = cap;
	}
	if ((m->used + 1) * 4 > m->cap * 3)
		return extmap_resize(m, m->cap ? m->cap * 2 : MIN_CAP);
	return 0;
}

/* ---------------------------------------------------------------- API */

int extmap_set(struct extmap *m, uint64_t block, enum extmap_where where,
	       uint32_t gen, uint64_t off)
{
	struct extmap_ent *e;

	if (block == EMPTY || where == EXTMAP_NONE || where > EXTMAP_ZERO)
		return -EINVAL;
	e = find(m, block);
	if (e == NULL && where == EXTMAP_DEST) {
		uint64_t *bits = chunk_get(m, block);

		if (bits == NULL)
			return -ENOMEM;
		if (bit_put(bits, block, true))
			m->count++;
		return 0;
	}
	if (e == NULL) {
		int ret = hash_reserve(m);

		if (ret < 0)
			return ret;
		bit_clear(m, block);
		e = hash_insert(m, block);
	}
	/* A DEST entry here moves to the bitmap at the next pending walk. */
	e->where = (uint32_t)where;
	e->gen = gen;
	e->off = off;
	return 0;
}

enum extmap_where extmap_get(const struct extmap *m, uint64_t block, struct extmap_ent *out)
{
	const struct extmap_ent *e = find(m, block);
	struct extmap_ent v = { block, 0, 0, EXTMAP_NONE };

	if (e != NULL)
		v = *e;
	else if (bit_get(m, block))
		v.where = EXTMAP_DEST;
	if (out != NULL)
		*out = v;
	return (enum extmap_where)v.where;
}

void extmap_remove_many(struct extmap *m, const uint64_t *blocks, size_t n)
{
	size_t used = m->used, keep = 0;

	for (size_t i = 0; i < n; i++) {
		struct extmap_ent *e = find(m, blocks[i]);

		if (e != NULL)
			delete_slot(m, (size_t)(e - m->slots));
		else
			bit_clear(m, blocks[i]);
	}
	if (m->used == used)
		return;
	for (size_t i = 0; i < m->npend; i++)
		if (find(m, m->pend[i]) != NULL)
			m->pend[keep++] = m->pend[i];
	m->npend = keep;
}

int extmap_remove(struct extmap *m, uint64_t block)
{
	size_t count = m->count;

	extmap_remove_many(m, &block, 1);
	return m->count < count ? 0 : -ENOENT;
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
	bits_truncate(m, first);
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
	for (size_t c = 0; c < m->ndir; c++)
		for (size_t w = 0; w < CHUNK_WORDS; w++)
			for (uint64_t bits = m->dir[c].bits[w]; bits != 0; bits &= bits - 1) {
				struct extmap_ent e = {
					.block = (m->dir[c].idx << CHUNK_SHIFT) + w * 64 +
						 (uint64_t)__builtin_ctzll(bits),
					.where = EXTMAP_DEST,
				};
				int ret = fn(&e, arg);

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

		/* Applied since: one bit from now on, unless out of memory. */
		if (e->where == EXTMAP_DEST) {
			uint64_t *bits = chunk_get(m, e->block);

			if (bits != NULL) {
				bit_put(bits, e->block, true);
				m->count++;
				delete_slot(m, (size_t)(e - m->slots));
				continue;
			}
			m->pend[keep++] = m->pend[i];
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

static int settle_only(struct extmap_ent *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

void extmap_settle(struct extmap *m)
{
	extmap_each_pending(m, settle_only, NULL);
}
