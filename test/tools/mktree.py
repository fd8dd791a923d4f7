#!/usr/bin/env python3
"""mktree.py DIR [--seed N] [--big MIB]: build a VM-home-like tree of a few
hundred small files in DIR (created, must not exist), deterministically from
the seed, natively (run it on the backing datastore, not through relocfs).

It holds: regular files of 0..20000 bytes with various modes (0600, 0755,
0000, setuid, setgid), owners (other uids/gids), mtimes with nanoseconds and
user.* xattrs (small and 1500 bytes); sparse files (some with no block at
all); hard links (pairs inside a directory, across directories, a file with
three names); symlinks (relative, absolute, dangling, to a directory); odd
directory modes (0700, 01777, 02775 owned by another uid); a deep path;
an empty directory; names with spaces and non-ASCII; a big file (--big MiB of
random data, default 6) that makes a rate-limited copy last; a 64 MiB sparse
disk with three 64 KiB extents; a 16 MiB disk with no data block.

Directory mtimes are set last (deepest first) to fixed values.
"""

import argparse
import os
import random

T0 = 1500000000


def ts(i):
    return (T0 + i * 1000) * 10**9 + (i * 7919 % 10**9)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--big", type=int, default=6, help="MiB of data in big-flat.vmdk")
    a = p.parse_args()
    rnd = random.Random(a.seed)
    root = a.dir
    os.mkdir(root, 0o755)
    files = []  # (path, mtime_ns) set at the end, after links are made

    def wfile(rel, data, mode=0o644, uid=None, gid=None, mt=None):
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(data)
        if uid is not None:
            os.chown(path, uid, gid)
        os.chmod(path, mode)
        files.append((path, mt if mt is not None else ts(len(files))))
        return path

    # the VM's own files
    wfile("vm1.vmx", b'displayName = "vm1"\nmemsize = "2048"\nscsi0:0.fileName = "disk.vmdk"\n')
    wfile("vm1.nvram", rnd.randbytes(8192))
    wfile("vmware.log", b"".join(b"%08d log line\n" % i for i in range(500)))
    wfile("disk.vmdk", b'# Disk DescriptorFile\nRW 131072 VMFS "sparse-flat.vmdk"\n')
    big = wfile("big-flat.vmdk", rnd.randbytes(a.big << 20))
    with open(os.path.join(root, "sparse-flat.vmdk"), "wb") as f:
        f.truncate(64 << 20)
        for off in (0, 20 << 20, (64 << 20) - 65536):
            f.seek(off)
            f.write(rnd.randbytes(65536))
    files.append((os.path.join(root, "sparse-flat.vmdk"), ts(9001)))
    with open(os.path.join(root, "empty-sparse.vmdk"), "wb") as f:
        f.truncate(16 << 20)
    files.append((os.path.join(root, "empty-sparse.vmdk"), ts(9002)))
    del big

    # ten directories of thirty files
    n = 0
    for d in range(10):
        dp = os.path.join(root, "d%02d" % d)
        os.mkdir(dp, 0o755)
        for k in range(30):
            rel = os.path.join("d%02d" % d, "f%03d" % n)
            mode, uid, gid = 0o644, None, None
            if n % 7 == 0:
                mode = 0o600
            if n % 11 == 0:
                mode = 0o755
            if n % 17 == 0:
                uid, gid = 1234 + n % 3, 5678
            if n % 23 == 0:
                mode = 0o000
            if n % 19 == 0 and uid is None:
                mode = 0o4755
            if n % 29 == 0 and uid is None:
                mode = 0o2750
            if d == 5 and k % 4 == 0:
                # sparse: a little data far from the start
                path = wfile(rel, b"", mode, uid, gid)
                with open(path, "r+b") as f:
                    f.truncate(1 << 20)
                    f.seek(512 << 10)
                    f.write(b"sparse %d\n" % n)
            elif d == 5 and k % 4 == 1:
                # sparse, no block at all
                path = wfile(rel, b"", mode, uid, gid)
                os.truncate(path, 100 << 10)
            else:
                path = wfile(rel, rnd.randbytes(rnd.randint(0, 20000)), mode, uid, gid)
            if n % 5 == 0:
                os.setxattr(path, "user.tag", b"%d" % n)
            if n % 9 == 0:
                os.setxattr(path, "user.blob", rnd.randbytes(1500))
            n += 1
    os.setxattr(os.path.join(root, "d03"), "user.dirtag", b"three")
    os.setxattr(root, "user.home", b"vm1")

    # odd directory modes and owners
    os.chmod(os.path.join(root, "d07"), 0o700)
    os.chmod(os.path.join(root, "d08"), 0o1777)
    os.chown(os.path.join(root, "d09"), 1234, 1234)
    os.chmod(os.path.join(root, "d09"), 0o2775)

    # links
    lp = os.path.join(root, "links")
    os.mkdir(lp)
    wfile("links/hl-a", b"hard link a\n", 0o640)
    os.link(os.path.join(lp, "hl-a"), os.path.join(lp, "hl-b"))
    os.link(os.path.join(root, "d01/f035"), os.path.join(lp, "hl-f035"))
    wfile("links/three", b"three names\n")
    os.link(os.path.join(lp, "three"), os.path.join(root, "d02/three-2"))
    os.link(os.path.join(lp, "three"), os.path.join(root, "d04/three-3"))
    os.symlink("../d00/f000", os.path.join(lp, "s-rel"))
    os.symlink("/nonexistent/abs/target", os.path.join(lp, "s-abs"))
    os.symlink("nothere", os.path.join(lp, "s-dangling"))
    os.symlink("../d02", os.path.join(lp, "s-dir"))

    # deep path, empty dir, odd names
    deep = os.path.join(root, "deep/a/b/c/d")
    os.makedirs(deep)
    wfile("deep/a/b/c/d/leaf", b"leaf\n")
    wfile("deep/a/b/mid", b"mid\n")
    os.mkdir(os.path.join(root, "empty"))
    os.mkdir(os.path.join(root, "with space"))
    wfile("with space/a file", b"spaces\n")
    wfile("ünïcode-名前", b"unicode\n")

    for path, mt in files:
        os.utime(path, ns=(mt, mt), follow_symlinks=False)
    dirs = []
    for dp, dn, fn in os.walk(root):
        dirs.append(dp)
    for i, dp in enumerate(sorted(dirs, key=lambda x: -x.count("/"))):
        os.utime(dp, ns=(ts(20000 + i), ts(20000 + i)))


if __name__ == "__main__":
    main()
