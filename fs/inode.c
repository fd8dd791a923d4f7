/* inode: owns the mapping backing (dev, ino) -> struct inode and the O_PATH
 * descriptor each entry holds.
 *
 * Invariants: one entry per backing object, so hard links share one inode;
 * an entry lives while the kernel holds lookups on it (nlookup > 0), and the
 * root lives as long as the table. The kernel sends no request for an inode
 * after its last forget, which is why lookups and forgets are the only paths
 * that touch nlookup and the chains, under the table lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "relocfs/inode.h"

#define INODE_MIN_BUCKETS 1024

static size_t inode_hash(dev_t dev, ino_t ino, size_t nbuckets)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	h ^= h >> 29;
	return (size_t)h & (nbuckets - 1);
}

int inode_table_init(struct inode_table *t, int root_fd)
{
	struct stat st;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	t->root.fd = -1;
	if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) < 0) {
		ret = -errno;
		goto out;
	}
	t->buckets = calloc(INODE_MIN_BUCKETS, sizeof(struct inode *));
	if (t->buckets == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	t->nbuckets = INODE_MIN_BUCKETS;
	pthread_mutex_init(&t->lock, NULL);
	t->root.fd = root_fd;
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.type = S_IFDIR;
	t->root.nlookup = 1;
out:
	if (ret < 0)
		close(root_fd);
	return ret;
}

void inode_table_destroy(struct inode_table *t)
{
	if (t->buckets == NULL)
		return;	/* init failed: nothing was set up */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct inode *n = t->buckets[i];

		while (n != NULL) {
			struct inode *next = n->next;

			close(n->fd);
			free(n);
			n = next;
		}
	}
	free(t->buckets);
	if (t->root.fd >= 0)
		close(t->root.fd);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
	t->root.fd = -1;
}

/* Doubles the bucket array; a failed allocation only costs chain length. */
static void inode_table_grow(struct inode_table *t)
{
	size_t n = t->nbuckets * 2;
	struct inode **b = calloc(n, sizeof(struct inode *));

	if (b == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct inode *e = t->buckets[i];

		while (e != NULL) {
			struct inode *next = e->next;
			size_t h = inode_hash(e->dev, e->ino, n);

			e->next = b[h];
			b[h] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

struct inode *inode_table_get(struct inode_table *t, dev_t dev, ino_t ino,
			      int fd, const struct inode_new *init, int *created)
{
	struct inode *e;
	size_t h;

	*created = 0;
	if (dev == t->root.dev && ino == t->root.ino) {
		close(fd);
		pthread_mutex_lock(&t->lock);
		t->root.nlookup++;
		pthread_mutex_unlock(&t->lock);
		return &t->root;
	}
	pthread_mutex_lock(&t->lock);
	h = inode_hash(dev, ino, t->nbuckets);
	for (e = t->buckets[h]; e != NULL; e = e->next) {
		if (e->dev == dev && e->ino == ino) {
			e->nlookup++;
			pthread_mutex_unlock(&t->lock);
			close(fd);
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	e->dev = dev;
	e->ino = ino;
	e->fd = fd;
	e->type = init->type & S_IFMT;
	e->ino_shown = init->shown;
	e->home = init->home;
	e->rfile = init->rfile;
	e->nlookup = 1;
	*created = 1;
	e->next = t->buckets[h];
	t->buckets[h] = e;
	if (++t->count > t->nbuckets)
		inode_table_grow(t);
	pthread_mutex_unlock(&t->lock);
	return e;
}

static void unlink_locked(struct inode_table *t, struct inode *inode);

void inode_table_forget(struct inode_table *t, struct inode *inode, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	if (n > inode->nlookup)
		n = inode->nlookup;
	inode->nlookup -= n;
	if (inode->nlookup > 0 || inode == &t->root) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	unlink_locked(t, inode);
	t->count--;
	pthread_mutex_unlock(&t->lock);
	if (t->on_free != NULL)
		t->on_free(t, inode);
	close(inode->fd);
	free(inode);
}

size_t inode_table_count(struct inode_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void unlink_locked(struct inode_table *t, struct inode *inode)
{
	struct inode **pp = &t->buckets[inode_hash(inode->dev, inode->ino, t->nbuckets)];

	while (*pp != NULL && *pp != inode)
		pp = &(*pp)->next;
	if (*pp == inode)
		*pp = inode->next;
}

void inode_table_rekey(struct inode_table *t, struct inode *inode, dev_t dev, ino_t ino)
{
	size_t h;

	pthread_mutex_lock(&t->lock);
	if (inode == &t->root) {
		inode->dev = dev;
		inode->ino = ino;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	unlink_locked(t, inode);
	inode->dev = dev;
	inode->ino = ino;
	h = inode_hash(dev, ino, t->nbuckets);
	inode->next = t->buckets[h];
	t->buckets[h] = inode;
	pthread_mutex_unlock(&t->lock);
}

int inode_table_collect(struct inode_table *t, const struct home *home,
			struct inode ***out, size_t *n)
{
	struct inode **v;
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	v = malloc((t->count + 1) * sizeof(struct inode *));
	if (v == NULL) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct inode *e = t->buckets[i]; e != NULL; e = e->next) {
			if (e->home != home)
				continue;
			e->nlookup++;
			v[k++] = e;
		}
	}
	pthread_mutex_unlock(&t->lock);
	*out = v;
	*n = k;
	return 0;
}
