/* inode: the table of backing objects the kernel knows, keyed by the
 * backing (dev, ino), each held by an O_PATH descriptor. */
#ifndef RELOCFS_INODE_H
#define RELOCFS_INODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

struct home;
struct rfile;

struct inode {
	struct inode *next;	/* hash chain, under the table lock */
	dev_t dev;
	ino_t ino;
	int fd;			/* O_PATH | O_NOFOLLOW on the backing object */
	mode_t type;		/* S_IFMT bits, fixed for the object's life */
	uint64_t nlookup;	/* kernel references, under the table lock */
	/* Set once security.capability was found absent: the kernel asks for it
	 * on every write, and this answers without a syscall. Cleared whenever
	 * relocfs changes that attribute. */
	int no_caps;
	struct home *home;	/* the home it lies in; NULL for the root */
	struct rfile *rfile;	/* engine state while its home relocates */
	uint64_t ino_shown;	/* the number the mount shows (inomap) */
	/* Open handles that bypass the kernel's page cache (FOPEN_DIRECT_IO)
	 * and that use it, and whether one bypassed it since the last handle
	 * that used it opened; kept by fsops, under its iomode_lock. */
	unsigned direct_opens, cached_opens;
	bool direct_used;
};

struct inode_table {
	pthread_mutex_t lock;
	struct inode **buckets;
	size_t nbuckets;	/* power of two */
	size_t count;
	struct inode root;
	/* Called with each inode about to be freed, its fd still open. */
	void (*on_free)(struct inode_table *t, const struct inode *inode);
};

/* Takes ownership of root_fd (O_PATH on the source root). */
int inode_table_init(struct inode_table *t, int root_fd);
void inode_table_destroy(struct inode_table *t);

/* What a new entry starts with: set before it is visible to others. */
struct inode_new {
	mode_t type;
	uint64_t shown;
	struct home *home;
	struct rfile *rfile;
};

/* Finds the object (dev, ino) or inserts it with fd and init, adding one
 * lookup.
 * When the object was known, fd is closed. Returns the inode or NULL with
 * errno set. */
struct inode *inode_table_get(struct inode_table *t, dev_t dev, ino_t ino,
			      int fd, const struct inode_new *init, int *created);

/* Moves inode to a new key (its backing object changed at a cutover). */
void inode_table_rekey(struct inode_table *t, struct inode *inode, dev_t dev, ino_t ino);

/* A malloc'd array of the inodes of home, each with one extra lookup held
 * (drop it with inode_table_forget). */
int inode_table_collect(struct inode_table *t, const struct home *home,
			struct inode ***out, size_t *n);

/* Drops n lookups; the inode is freed (fd closed) when none remain. */
void inode_table_forget(struct inode_table *t, struct inode *inode, uint64_t n);

/* Number of inodes besides the root, for tests and status. */
size_t inode_table_count(struct inode_table *t);

#endif
