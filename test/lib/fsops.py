#!/usr/bin/python3 -S
"""fsops: single file-system calls for the relocfs bats suites.

Usage: fsops.py OP ARGS...

Every op prints a deterministic result (no inode numbers, no absolute paths,
no times unless asked for) so that its output through a relocfs mount can be
compared byte for byte with the same op on a native directory. A failing
system call prints "ERR <ERRNO NAME> <strerror>" and exits 1.
"""
import errno
import hashlib
import os
import stat
import sys

AT_FDCWD = -100
RENAME_FLAGS = {"0": 0, "noreplace": 1, "exchange": 2, "whiteout": 4}
OPEN_FLAGS = {
    "RDONLY": os.O_RDONLY, "WRONLY": os.O_WRONLY, "RDWR": os.O_RDWR,
    "CREAT": os.O_CREAT, "EXCL": os.O_EXCL, "TRUNC": os.O_TRUNC,
    "APPEND": os.O_APPEND, "SYNC": os.O_SYNC, "DSYNC": os.O_DSYNC,
    "DIRECT": os.O_DIRECT, "NOFOLLOW": os.O_NOFOLLOW,
    "DIRECTORY": os.O_DIRECTORY, "PATH": os.O_PATH, "NOATIME": os.O_NOATIME,
}


def die(e):
    print("ERR %s %s" % (errno.errorcode.get(e.errno, str(e.errno)), os.strerror(e.errno)))
    sys.stdout.flush()
    sys.exit(1)


def parse_flags(s):
    f = 0
    for name in s.split("|"):
        f |= OPEN_FLAGS[name]
    return f


def sha(b):
    return hashlib.sha256(b).hexdigest()


def pattern(n, seed=0):
    """n deterministic, incompressible-looking bytes."""
    out = bytearray()
    i = seed
    while len(out) < n:
        out += hashlib.sha256(b"%d" % i).digest()
        i += 1
    return bytes(out[:n])


def op_open(path, flags, mode="644"):
    fd = os.open(path, parse_flags(flags), int(mode, 8))
    os.close(fd)
    print("OK")


def op_excl(path):
    op_open(path, "WRONLY|CREAT|EXCL")


def op_renameat2(old, new, flags):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    r = fn(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), RENAME_FLAGS[flags])
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    print("OK")


def op_simple(fn, *args):
    fn(*args)
    print("OK")


def op_readlink(path):
    print(os.readlink(path))


def op_setxattr(path, name, value, flag="0", follow="follow"):
    flags = {"0": 0, "create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}[flag]
    os.setxattr(path, name, value.encode(), flags, follow_symlinks=(follow == "follow"))
    print("OK")


def op_setxattr_size(path, name, size):
    os.setxattr(path, name, pattern(int(size)))
    print("OK")


def op_getxattr(path, name, follow="follow"):
    v = os.getxattr(path, name, follow_symlinks=(follow == "follow"))
    print("len=%d sha=%s" % (len(v), sha(v)))


def op_listxattr(path, follow="follow"):
    names = os.listxattr(path, follow_symlinks=(follow == "follow"))
    for n in sorted(names):
        print(n)
    print("count=%d" % len(names))


def op_listxattr_len(path, size="0"):
    """listxattr(2) with a buffer of SIZE bytes (0: the size probe); prints
    what it returned."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.listxattr
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    fn.restype = ctypes.c_ssize_t
    n = int(size)
    buf = ctypes.create_string_buffer(n) if n > 0 else None
    r = fn(os.fsencode(path), buf, n)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    print(r)


def op_removexattr(path, name):
    os.removexattr(path, name)
    print("OK")


def op_seekmap(path):
    """Data extents as found with SEEK_DATA/SEEK_HOLE, then the size."""
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    off = 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        h = os.lseek(fd, d, os.SEEK_HOLE)
        print("data %d..%d" % (d, h))
        off = h
    print("size %d" % size)
    os.close(fd)


def op_seek(path, off, whence):
    fd = os.open(path, os.O_RDONLY)
    w = {"data": os.SEEK_DATA, "hole": os.SEEK_HOLE, "end": os.SEEK_END, "set": os.SEEK_SET}[whence]
    try:
        print(os.lseek(fd, int(off), w))
    finally:
        os.close(fd)


def op_cfr(src, dst, soff="0", doff="0", count="-1"):
    """copy_file_range from src to dst (created if missing, not truncated)."""
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    soff, doff, count = int(soff), int(doff), int(count)
    if count < 0:
        count = os.fstat(fi).st_size - soff
    total = 0
    calls = 0
    while total < count:
        n = os.copy_file_range(fi, fo, count - total, soff + total, doff + total)
        calls += 1
        if n == 0:
            break
        total += n
    os.close(fi)
    os.close(fo)
    print("copied %d" % total)


def op_cfr_once(src, dst, soff, doff, count):
    """One copy_file_range call; prints what it returned."""
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    n = os.copy_file_range(fi, fo, int(count), int(soff), int(doff))
    print("returned %d" % n)


def op_append_pwrite(path, data):
    """O_APPEND + pwrite at offset 0: Linux appends anyway."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data.encode())
    os.pwrite(fd, data.encode(), 0)
    print("size %d" % os.fstat(fd).st_size)
    os.close(fd)


def op_pwrite(path, off, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    n = os.pwrite(fd, data.encode(), int(off))
    print("wrote %d size %d" % (n, os.fstat(fd).st_size))
    os.close(fd)


def op_pread(path, off, length):
    fd = os.open(path, os.O_RDONLY)
    b = os.pread(fd, int(length), int(off))
    print("read %d %r" % (len(b), b[:64]))
    os.close(fd)


def op_bigwrite(path, size, flags="WRONLY|CREAT|TRUNC"):
    """One write() of SIZE pattern bytes; prints bytes written and sha."""
    data = pattern(int(size))
    fd = os.open(path, parse_flags(flags), 0o644)
    n = os.write(fd, data)
    os.close(fd)
    print("wrote %d sha=%s" % (n, sha(data[:n])))


def op_sync(path, which):
    if which == "dir":
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(path, os.O_RDWR)
    if which == "fdatasync":
        os.fdatasync(fd)
    else:
        os.fsync(fd)
    os.close(fd)
    print("OK")


def op_unlinked(path):
    """Open, unlink, keep using the file through the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.unlink(path)
    print("exists after unlink:", os.path.lexists(path))
    data = pattern(1 << 20)
    os.write(fd, data)
    os.fsync(fd)
    st = os.fstat(fd)
    print("nlink %d size %d" % (st.st_nlink, st.st_size))
    back = os.pread(fd, len(data), 0)
    print("read back sha ok:", sha(back) == sha(data))
    os.ftruncate(fd, 4096)
    os.fchmod(fd, 0o640)
    st = os.fstat(fd)
    print("after ftruncate size %d mode %o" % (st.st_size, stat.S_IMODE(st.st_mode)))
    print("tail", os.pread(fd, 16, 4090))
    os.close(fd)


def op_lockf_hold(path, ready, start="0", length="0", kind="ex"):
    import fcntl
    import time
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.lseek(fd, int(start), os.SEEK_SET)
    fcntl.lockf(fd, fcntl.LOCK_EX if kind == "ex" else fcntl.LOCK_SH, int(length), int(start))
    open(ready, "w").close()
    while True:
        time.sleep(3600)


def op_lockf_try(path, start="0", length="0", kind="ex"):
    import fcntl
    mode = os.O_RDWR if kind == "ex" else os.O_RDONLY
    fd = os.open(path, mode)
    fcntl.lockf(fd, (fcntl.LOCK_EX if kind == "ex" else fcntl.LOCK_SH) | fcntl.LOCK_NB,
                int(length), int(start))
    print("OK locked")
    os.close(fd)


def op_getlk(path, holder_pid):
    import fcntl
    import struct
    fd = os.open(path, os.O_RDWR)
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
    fmt = "hhqqi"
    req = struct.pack(fmt + "4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
    l_type, _, l_start, l_len, l_pid = struct.unpack(fmt, res[:struct.calcsize(fmt)])
    names = {fcntl.F_RDLCK: "F_RDLCK", fcntl.F_WRLCK: "F_WRLCK", fcntl.F_UNLCK: "F_UNLCK"}
    print("type %s start %d len %d pid_is_holder %s" %
          (names.get(l_type, l_type), l_start, l_len, str(l_pid) == holder_pid))
    os.close(fd)


def op_mmap_write(path, size):
    """Write through a shared writable mapping, msync, read back with read()."""
    import mmap
    size = int(size)
    data = pattern(size, 7)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[:] = data
    m.flush()
    m.close()
    os.close(fd)
    with open(path, "rb") as f:
        print("mmap write ok:", sha(f.read()) == sha(data))


def op_mmap_read(path):
    import mmap
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
        print("len=%d sha=%s" % (len(m), sha(m[:])))
        m.close()


def op_dio_mix(path):
    """O_DIRECT beside cached descriptors and a mapping of one file; then an
    O_DIRECT descriptor alone (relocfs: FOPEN_DIRECT_IO), mapped, with a
    buffered descriptor opened beside it; then 16 threads writing their own
    blocks of it with O_DIRECT at once: what each reader sees."""
    import mmap
    import threading
    bs, nblk = 4096, 64
    buf = mmap.mmap(-1, bs)     # page aligned, as O_DIRECT wants
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, pattern(bs * nblk, 1))
    cached = os.open(path, os.O_RDONLY)
    os.pread(cached, bs * nblk, 0)      # the mount's page cache holds it all
    dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
    buf[:] = pattern(bs, 2)
    os.pwritev(dfd, [buf], bs)
    print("cached fd after an O_DIRECT write:", sha(os.pread(cached, bs, bs)) == sha(pattern(bs, 2)))
    m = mmap.mmap(dfd, bs * nblk, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    print("mapping of the O_DIRECT fd:", sha(m[bs:2 * bs]) == sha(pattern(bs, 2)))
    m[2 * bs:3 * bs] = pattern(bs, 3)   # no msync
    os.preadv(dfd, [buf], 2 * bs)
    print("O_DIRECT read after a store to the mapping:", sha(buf[:]) == sha(pattern(bs, 3)))
    m.close()
    for f in (fd, cached, dfd):
        os.close(f)
    dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
    m = mmap.mmap(dfd, bs * nblk, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[3 * bs:4 * bs] = pattern(bs, 4)
    os.preadv(dfd, [buf], 3 * bs)
    print("alone: O_DIRECT read after a store to the mapping:", sha(buf[:]) == sha(pattern(bs, 4)))
    m.close()
    later = os.open(path, os.O_RDONLY)
    print("alone: buffered fd opened beside it:", sha(os.pread(later, bs, 3 * bs)) == sha(pattern(bs, 4)))
    buf[:] = pattern(bs, 5)
    os.pwritev(dfd, [buf], 4 * bs)
    print("alone: that fd after an O_DIRECT write:", sha(os.pread(later, bs, 4 * bs)) == sha(pattern(bs, 5)))
    os.close(later)
    os.close(dfd)
    # only O_DIRECT descriptors now, so that the writers can run side by side
    errors = []

    def writer(t):
        try:
            wfd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            wbuf = mmap.mmap(-1, bs)
            for r in range(8):
                for b in range(t, nblk, 16):
                    wbuf[:] = pattern(bs, 100 + b * 8 + r)
                    os.pwritev(wfd, [wbuf], b * bs)
            os.close(wfd)
        except OSError as e:
            errors.append(e)
    ts = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e in errors:
        die(e)
    want = b"".join(pattern(bs, 100 + b * 8 + 7) for b in range(nblk))
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    got = bytearray()
    for b in range(nblk):
        os.preadv(dfd, [buf], b * bs)
        got += buf[:]
    os.close(dfd)
    print("16 O_DIRECT writers, O_DIRECT read:", sha(bytes(got)) == sha(want))
    with open(path, "rb") as f:
        print("16 O_DIRECT writers, buffered read:", sha(f.read()) == sha(want))


def op_bindsock(path):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    print("OK")


def op_utime_ns(path, atime_ns, mtime_ns):
    os.utime(path, ns=(int(atime_ns), int(mtime_ns)), follow_symlinks=False)
    st = os.lstat(path)
    print("atime %d mtime %d" % (st.st_atime_ns, st.st_mtime_ns))


def op_scandir(path):
    """Readdir as the kernel gives it: name, d_type, whether d_ino == lstat ino."""
    for e in sorted(os.scandir(path), key=lambda e: e.name):
        t = "dir" if e.is_dir(follow_symlinks=False) else \
            "lnk" if e.is_symlink() else \
            "reg" if e.is_file(follow_symlinks=False) else "other"
        print("%s %s ino_ok=%s" % (e.name, t, e.inode() == os.lstat(e.path).st_ino))


def op_dino(path):
    """name and d_ino of every entry, in readdir order (for comparing with the backing dir)."""
    for e in os.scandir(path):
        print(e.name, e.inode())


def op_fstat_after_rename(path, newpath):
    fd = os.open(path, os.O_RDONLY)
    ino = os.fstat(fd).st_ino
    os.rename(path, newpath)
    st = os.fstat(fd)
    data = os.read(fd, 1 << 20)
    print("same ino %s size %d sha=%s" % (st.st_ino == ino == os.stat(newpath).st_ino, st.st_size, sha(data)))
    os.close(fd)


def op_replaced_open(path, other):
    """Hold PATH open, rename OTHER over it, read the old contents through the fd."""
    fd = os.open(path, os.O_RDONLY)
    os.rename(other, path)
    print("old fd reads", os.read(fd, 100))
    with open(path, "rb") as f:
        print("name reads", f.read(100))
    os.close(fd)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    op, args = sys.argv[1], sys.argv[2:]
    table = {
        "open": op_open,
        "excl": op_excl,
        "rename": lambda a, b: op_simple(os.rename, a, b),
        "renameat2": op_renameat2,
        "unlink": lambda p: op_simple(os.unlink, p),
        "rmdir": lambda p: op_simple(os.rmdir, p),
        "mkdir": lambda p, m="777": op_simple(os.mkdir, p, int(m, 8)),
        "link": lambda a, b: op_simple(os.link, a, b, follow_symlinks=False),
        "symlink": lambda t, l: op_simple(os.symlink, t, l),
        "mknod": lambda p, m: op_simple(os.mknod, p, int(m, 8)),
        "readlink": op_readlink,
        "truncate": lambda p, n: op_simple(os.truncate, p, int(n)),
        "setxattr": op_setxattr,
        "setxattr_size": op_setxattr_size,
        "getxattr": op_getxattr,
        "listxattr": op_listxattr,
        "listxattr_len": op_listxattr_len,
        "removexattr": op_removexattr,
        "seekmap": op_seekmap,
        "seek": op_seek,
        "cfr": op_cfr,
        "cfr_once": op_cfr_once,
        "append_pwrite": op_append_pwrite,
        "pwrite": op_pwrite,
        "pread": op_pread,
        "bigwrite": op_bigwrite,
        "dio_mix": op_dio_mix,
        "sync": op_sync,
        "unlinked": op_unlinked,
        "lockf_hold": op_lockf_hold,
        "lockf_try": op_lockf_try,
        "getlk": op_getlk,
        "mmap_write": op_mmap_write,
        "mmap_read": op_mmap_read,
        "bindsock": op_bindsock,
        "utime_ns": op_utime_ns,
        "scandir": op_scandir,
        "dino": op_dino,
        "fstat_after_rename": op_fstat_after_rename,
        "replaced_open": op_replaced_open,
    }
    try:
        table[op](*args)
    except OSError as e:
        die(e)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
