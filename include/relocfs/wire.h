/* wire: hooks on the raw FUSE messages, for what libfuse 3.14 cannot
 * negotiate or pass on (FUSE_HANDLE_KILLPRIV_V2 and its kill flags,
 * FUSE_DIRECT_IO_ALLOW_MMAP, FOPEN_PARALLEL_DIRECT_WRITES,
 * FUSE_OVER_IO_URING, whose transport is fs/ring.c). */
#ifndef RELOCFS_WIRE_H
#define RELOCFS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <fuse_lowlevel.h>

/* Puts relocfs's hooks between /dev/fuse and libfuse; call after
 * fuse_session_mount. The INIT reply takes FUSE_HANDLE_KILLPRIV_V2 if the
 * kernel offers it, and FUSE_OVER_IO_URING if it offers that and
 * ring_threads_per_queue is not 0 (then that many threads per queue serve
 * the ring once the kernel has the reply). -errno on failure. */
int wire_install(struct fuse_session *se, unsigned ring_threads_per_queue);

/* Stops the ring's threads, if any; after the session loop returned. */
void wire_stop(void);

/* Whether the kernel agreed to leave setuid/setgid killing to relocfs. */
bool wire_kill_priv_v2(void);

/* Whether the request the calling worker thread is serving asks relocfs to
 * drop setuid/setgid (a write, truncate or O_TRUNC open by a caller without
 * CAP_FSETID). */
bool wire_kill_suidgid(void);

/* Whether the kernel lets a file opened with FOPEN_DIRECT_IO be mapped
 * shared and takes its writes side by side (FUSE_DIRECT_IO_ALLOW_MMAP
 * agreed with a kernel of protocol 7.40, Linux 6.9, or later): only then
 * does an O_DIRECT open get FOPEN_DIRECT_IO and parallel writes. */
bool wire_parallel_direct_writes(void);

/* The reply to the OPEN or CREATE the calling worker thread serves will
 * carry FOPEN_PARALLEL_DIRECT_WRITES (the kernel then takes the inode lock
 * shared for O_DIRECT writes inside the file); call just before
 * fuse_reply_open or fuse_reply_create. */
void wire_reply_parallel_direct_writes(void);

/* The hooks' work, exposed for the unit tests: note one request as read
 * from /dev/fuse; patch one reply before it is written (want: the caller
 * asked for FUSE_HANDLE_KILLPRIV_V2). */
void wire_note_request(const void *buf, size_t len);
void wire_patch_reply(struct iovec *iov, int count, bool want);

#endif
