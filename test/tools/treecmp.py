#!/usr/bin/env python3
"""treecmp.py REF OTHER [--no-dir-mtime] [--no-sparse]: compare two trees.

For every entry (the roots included) it compares: type; permission bits with
setuid/setgid/sticky; uid; gid; link count; user.* xattrs (names and values;
symlinks have none); for regular files size, sha256 of the content, mtime in
ns and sparseness; for directories mtime in ns (unless --no-dir-mtime); for
symlinks the target (their mtime is not compared). Hard links: the set of
names sharing an inode must be the same in both trees.

Sparseness, by SEEK_DATA/SEEK_HOLE (not st_blocks: ext4 counts an external
xattr block there): where REF's file has no data extent at all, OTHER's must
have none either; where REF's file is sparse (data extents < size), OTHER's
data extents may exceed REF's by at most 256 KiB (filesystems differ in
granularity, but a hole filled with zeros is a failure). Use --no-sparse
through a FUSE mount that may not implement lseek(SEEK_DATA).

Prints one line per difference and "differences=N entries=N"; exit 1 if any.
"""

import argparse
import hashlib
import os
import stat
import sys

SLACK = 256 << 10


def walk(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for name in [None] + sorted(dn + fn):
            path = dp if name is None else os.path.join(dp, name)
            if name is None and dp != root:
                continue  # directories are listed by their parent
            rel = os.path.relpath(path, root)
            out[rel] = path
    return out


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    res = {}
    for n in names:
        if n.startswith("user."):
            res[n] = os.getxattr(path, n, follow_symlinks=False)
    return res


def showx(x):
    out = []
    for k in sorted(x):
        v = x[k]
        if len(v) > 32:
            out.append("%s=<%d bytes, sha256 %s>" % (k, len(v), hashlib.sha256(v).hexdigest()[:12]))
        else:
            out.append("%s=%r" % (k, v))
    return "{" + ", ".join(out) + "}"


def data_bytes(path):
    """bytes inside data extents, by SEEK_DATA/SEEK_HOLE"""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        total, off = 0, 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: no data after off
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            off = end
        return total
    finally:
        os.close(fd)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def kind(m):
    for t, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                    (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
                    (stat.S_ISSOCK, "socket")):
        if t(m):
            return name
    return "?"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ref")
    p.add_argument("other")
    p.add_argument("--no-dir-mtime", action="store_true")
    p.add_argument("--no-sparse", action="store_true")
    a = p.parse_args()
    diffs = []

    def d(rel, msg):
        diffs.append("%s: %s" % (rel, msg))

    A, B = walk(a.ref), walk(a.other)
    for rel in sorted(set(A) - set(B)):
        d(rel, "missing in %s" % a.other)
    for rel in sorted(set(B) - set(A)):
        d(rel, "not in the reference (extra in %s)" % a.other)
    groups = {}
    for tree, side in ((A, 0), (B, 1)):
        byino = {}
        for rel, path in tree.items():
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                byino.setdefault(st.st_ino, []).append(rel)
        for names in byino.values():
            for rel in names:
                groups.setdefault(rel, [None, None])[side] = sorted(names)
    for rel in sorted(set(A) & set(B)):
        pa, pb = A[rel], B[rel]
        sa, sb = os.lstat(pa), os.lstat(pb)
        ka, kb = kind(sa.st_mode), kind(sb.st_mode)
        if ka != kb:
            d(rel, "type %s, expected %s" % (kb, ka))
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            d(rel, "mode %04o, expected %04o" % (stat.S_IMODE(sb.st_mode), stat.S_IMODE(sa.st_mode)))
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            d(rel, "owner %d:%d, expected %d:%d" % (sb.st_uid, sb.st_gid, sa.st_uid, sa.st_gid))
        if ka != "dir" and sa.st_nlink != sb.st_nlink:
            d(rel, "link count %d, expected %d" % (sb.st_nlink, sa.st_nlink))
        xa, xb = xattrs(pa), xattrs(pb)
        if xa != xb:
            d(rel, "user xattrs %s, expected %s" % (showx(xb), showx(xa)))
        if ka == "file":
            if sa.st_size != sb.st_size:
                d(rel, "size %d, expected %d" % (sb.st_size, sa.st_size))
            elif sha(pa) != sha(pb):
                d(rel, "content differs (sha256)")
            if sa.st_mtime_ns != sb.st_mtime_ns:
                d(rel, "mtime %d, expected %d" % (sb.st_mtime_ns, sa.st_mtime_ns))
            if not a.no_sparse:
                da, db = data_bytes(pa), data_bytes(pb)
                if da == 0 and db != 0:
                    d(rel, "has %d bytes of data extents, the reference none (hole filled)" % db)
                elif da < sa.st_size and db > da + SLACK:
                    d(rel, "has %d bytes of data extents, the sparse reference %d (holes filled)" % (db, da))
            ga, gb = groups.get(rel, [None, None])
            if ga != gb:
                d(rel, "hard links %s, expected %s" % (gb, ga))
        elif ka == "dir":
            if not a.no_dir_mtime and sa.st_mtime_ns != sb.st_mtime_ns:
                d(rel, "directory mtime %d, expected %d" % (sb.st_mtime_ns, sa.st_mtime_ns))
        elif ka == "symlink":
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                d(rel, "symlink to %r, expected %r" % (tb, ta))
    # the rarer kinds of difference first, mtimes last, and a count per kind
    def kind_of(line):
        msg = line.split(": ", 1)[1]
        for k in ("missing", "not in the reference", "type", "size", "content", "mode", "owner",
                  "link count", "hard links", "user xattrs", "symlink", "has", "directory mtime", "mtime"):
            if msg.startswith(k):
                return k
        return "other"
    order = ["missing", "not in the reference", "type", "size", "content", "mode", "owner", "link count",
             "hard links", "user xattrs", "symlink", "has", "other", "directory mtime", "mtime"]
    diffs.sort(key=lambda l: order.index(kind_of(l)))
    counts = {}
    for l in diffs:
        counts[kind_of(l)] = counts.get(kind_of(l), 0) + 1
    if counts:
        print("by kind: " + ", ".join("%s=%d" % (k if k != "has" else "sparseness", counts[k])
                                     for k in order if k in counts))
    for line in diffs[:120]:
        print(line)
    if len(diffs) > 120:
        print("... and %d more" % (len(diffs) - 120))
    print("differences=%d entries=%d" % (len(diffs), len(A)))
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
