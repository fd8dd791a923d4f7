/* extmap: the index of one relocating file: for each block written since the
 * relocation started, where its newest data lives. The blocks still to apply
 * (JOURNAL or ZERO) are kept apart from those already on the destination
 * (DEST), so that a round costs what it applies and a block applied costs
 * one bit, not what was written since the start. */
#ifndef RELOCFS_EXTMAP_H
#define RELOCFS_EXTMAP_H

#include <stddef.h>
#include <stdint.h>

#define EXTMAP_BLOCK 4096u

enum extmap_where {
	EXTMAP_NONE = 0,	/* not in the map: the base (B) holds it */
	EXTMAP_JOURNAL,		/* a journal record: gen, off */
	EXTMAP_DEST,		/* applied to the destination copy (D) */
	EXTMAP_ZERO,		/* reads as zeros (punched or zeroed) */
};

struct extmap_ent {
	uint64_t block;		/* key; UINT64_MAX marks an empty slot */
	uint64_t off;		/* EXTMAP_JOURNAL: byte offset of the data */
	uint32_t gen;		/* EXTMAP_JOURNAL: generation */
	uint32_t where;		/* enum extmap_where */
};

struct extmap_chunk;

struct extmap {
	struct extmap_ent *slots;	/* hash of the blocks not in the bitmap */
	size_t cap;			/* power of two, 0 when empty */
	size_t used;			/* entries in slots */
	uint64_t *pend;			/* the blocks of slots, each once */
	size_t npend, pend_cap;
	struct extmap_chunk *dir;	/* DEST bitmap chunks by index */
	size_t ndir, dir_cap;
	size_t count;			/* blocks in the map: used + DEST bits */
};

void extmap_init(struct extmap *m);
void extmap_destroy(struct extmap *m);

/* Sets block's entry (inserting it). -ENOMEM leaves the map unchanged. */
int extmap_set(struct extmap *m, uint64_t block, enum extmap_where where,
	       uint32_t gen, uint64_t off);
/* Where block's data lives (EXTMAP_NONE if not in the map); out, if not
 * NULL, receives its entry. */
enum extmap_where extmap_get(const struct extmap *m, uint64_t block, struct extmap_ent *out);
int extmap_remove(struct extmap *m, uint64_t block);
/* Removes the n blocks (those not in the map are skipped), in time linear
 * in n and in the number of blocks still to apply. */
void extmap_remove_many(struct extmap *m, const uint64_t *blocks, size_t n);
/* Removes every entry with block >= first. */
void extmap_truncate(struct extmap *m, uint64_t first);

/* Calls fn for every entry; fn may change the where/gen/off of a JOURNAL or
 * ZERO entry in place (a DEST entry may be a copy: changes to it are lost)
 * but must not insert or remove. Order is unspecified. A non-zero return
 * of fn stops the walk and is returned. */
typedef int (*extmap_fn)(struct extmap_ent *ent, void *arg);
int extmap_each(struct extmap *m, extmap_fn fn, void *arg);
/* As extmap_each, for the JOURNAL and ZERO entries only: its cost follows
 * their number (and that of the entries made DEST since the last call), not
 * the map's size. */
int extmap_each_pending(struct extmap *m, extmap_fn fn, void *arg);
/* Moves the entries made DEST since the last walk to the bitmap, as a walk
 * does first; costs what extmap_each_pending costs. */
void extmap_settle(struct extmap *m);

#endif
