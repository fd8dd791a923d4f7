#!/usr/bin/env python3
"""churn.py ROOT ROUND: apply round ROUND (0, 1, 2 or "stamp") of a fixed,
deterministic list of namespace and data changes to ROOT, a tree made by
mktree.py. Run it once on the home through relocfs and once on a plain
reference copy: both must end up equal.

Every operation is explicit (no choice depends on a directory listing), so the
two runs do the same thing. Every file whose data changes gets a fixed mtime
right after, and the round "stamp" sets a fixed mtime on every directory
(deepest first, in sorted order), so that mtimes of files and directories are
deterministic and comparable. Symlinks keep whatever mtime they get.

Any error is printed and makes the exit status 1 (it stops at the first).
"""

import ctypes
import ctypes.util
import os
import random
import stat
import sys

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

T1 = 1600000000 * 10**9


class Churn:
    def __init__(self, root, rnd_tag):
        self.root = root
        self.tag = rnd_tag
        self.k = 0

    def p(self, rel):
        return os.path.join(self.root, rel)

    @staticmethod
    def f(n):
        return "d%02d/f%03d" % (n // 30, n)

    def data(self, what, n):
        return random.Random("%s-%s" % (self.tag, what)).randbytes(n)

    def stamp(self, rel):
        self.k += 1
        t = T1 + hash_int(self.tag) * 10**6 + self.k * 1000003
        os.utime(self.p(rel), ns=(t, t), follow_symlinks=False)

    def plain(self, rel):
        """guard: never write to or chown a setuid/setgid file (the kernel
        may drop those bits differently through FUSE)"""
        m = os.lstat(self.p(rel)).st_mode
        if m & (stat.S_ISUID | stat.S_ISGID):
            raise RuntimeError("churn list bug: %s is setuid/setgid" % rel)
        return rel

    def create(self, rel, data, mode=0o644, uid=None, xattr=None):
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if uid is not None:
            os.chown(self.p(rel), uid, uid + 1)
        os.chmod(self.p(rel), mode)
        if xattr is not None:
            os.setxattr(self.p(rel), "user.new", xattr)
        self.stamp(rel)

    def pwrite(self, rel, off, data):
        fd = os.open(self.p(self.plain(rel)), os.O_WRONLY)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        self.stamp(rel)

    def truncate(self, rel, size):
        os.truncate(self.p(self.plain(rel)), size)
        self.stamp(rel)

    def punch(self, rel, off, length):
        fd = os.open(self.p(self.plain(rel)), os.O_WRONLY)
        try:
            if _libc.fallocate(fd, 3, off, length) != 0:  # PUNCH_HOLE | KEEP_SIZE
                e = ctypes.get_errno()
                raise OSError(e, "fallocate punch %s: %s" % (rel, os.strerror(e)))
        finally:
            os.close(fd)
        self.stamp(rel)

    # ------------------------------------------------------------ rounds
    def round0(self):
        for k in range(10):
            self.create("d00/new-r0-%d" % k, self.data("new%d" % k, 100 + k * 997), 0o640,
                        uid=2000 if k % 3 == 0 else None,
                        xattr=b"%d" % k if k % 2 == 0 else None)
        self.pwrite("big-flat.vmdk", 1 << 20, self.data("big1", 65536))
        self.pwrite("big-flat.vmdk", 5 << 20, self.data("big5", 65536))
        os.rename(self.p(self.f(31)), self.p("d01/renamed-f031"))
        os.rename(self.p(self.f(62)), self.p("d03/moved-f062"))
        os.rename(self.p(self.f(124)), self.p(self.f(125)))
        os.unlink(self.p(self.f(160)))
        os.unlink(self.p(self.f(161)))
        os.unlink(self.p("links/hl-a"))
        self.truncate(self.f(182), 100)
        self.truncate(self.f(183), 1 << 20)
        os.chmod(self.p(self.plain(self.f(214))), 0o604)
        os.chown(self.p(self.plain(self.f(215))), 4321, 4321)
        os.setxattr(self.p(self.f(246)), "user.new", b"r0")
        os.removexattr(self.p(self.f(0)), "user.tag")
        os.link(self.p(self.f(277)), self.p("d00/hard-from-r0"))
        os.symlink("../d09/f277", self.p("d00/sym-r0"))
        os.makedirs(self.p("newdir-r0/sub"))
        self.create("newdir-r0/sub/x", b"x\n")
        self.create("newdir-r0/y", self.data("y", 5000), 0o600)
        os.rmdir(self.p("empty"))
        self.pwrite(self.f(40), 10, self.data("f40", 100))

    def round1(self):
        os.rename(self.p("d06"), self.p("d06-renamed"))
        os.rename(self.p("deep/a/b"), self.p("b-moved"))
        os.unlink(self.p("d06-renamed/f190"))
        self.truncate("d00/new-r0-3", 0)
        self.pwrite("d00/new-r0-3", 0, self.data("r1-3", 3000))
        with open(self.p("d00/new-r0-3"), "ab") as fh:
            fh.write(b"appended\n")
        self.stamp("d00/new-r0-3")
        os.unlink(self.p("links/s-rel"))
        os.symlink("../d01/renamed-f031", self.p("links/s-rel"))
        os.link(self.p(self.f(50)), self.p("d01/f050-l2"))
        os.link(self.p(self.f(50)), self.p("d02/f050-l3"))
        os.mkdir(self.p("tmpdir-r1"))
        self.create("tmpdir-r1/t", b"t\n")
        os.unlink(self.p("tmpdir-r1/t"))
        os.rmdir(self.p("tmpdir-r1"))
        os.chmod(self.p("d07"), 0o750)
        os.removexattr(self.p("d03"), "user.dirtag")
        size = os.stat(self.p("big-flat.vmdk")).st_size
        self.pwrite("big-flat.vmdk", size - 65536, self.data("bigend", 65536))
        self.pwrite("big-flat.vmdk", size, self.data("bigapp", 4096))
        self.create("newsparse-r1", b"")
        os.truncate(self.p("newsparse-r1"), 32 << 20)
        self.pwrite("newsparse-r1", 8 << 20, self.data("ns", 4096))
        os.rename(self.p("newdir-r0"), self.p("d09/newdir-moved"))

    def round2(self):
        self.punch("big-flat.vmdk", 2 << 20, 256 << 10)
        size = os.stat(self.p("big-flat.vmdk")).st_size
        self.truncate("big-flat.vmdk", size - 12288)
        os.rename(self.p("d01/f050-l2"), self.p(self.f(51)))
        os.unlink(self.p("d02/three-2"))
        os.setxattr(self.root, "user.round", b"2")
        os.chown(self.p("d00"), 3000, 3000)
        for k in range(50):
            self.create("d00/burst-%02d" % k, self.data("burst%d" % k, k * 37))
        for k in range(0, 50, 5):
            os.unlink(self.p("d00/burst-%02d" % k))
        for k in range(1, 50, 5):
            os.rename(self.p("d00/burst-%02d" % k), self.p("d04/burst-moved-%02d" % k))

    def stamp_dirs(self):
        dirs = []
        for dp, dn, fn in os.walk(self.root):
            dirs.append(os.path.relpath(dp, self.root))
        dirs.sort(key=lambda d: (-(0 if d == "." else d.count("/") + 1), d))
        for i, d in enumerate(dirs):
            t = T1 + 777 * 10**9 + i * 1000003
            os.utime(self.p(d), ns=(t, t))


def hash_int(s):
    return sum(ord(c) for c in s) % 1000


def main():
    if len(sys.argv) != 3:
        print("usage: churn.py ROOT 0|1|2|stamp", file=sys.stderr)
        sys.exit(2)
    root, rnd = sys.argv[1], sys.argv[2]
    c = Churn(root, "round" + rnd)
    try:
        if rnd == "stamp":
            c.stamp_dirs()
        else:
            getattr(c, "round" + rnd)()
    except (OSError, RuntimeError) as ex:
        print("churn %s round %s: %s" % (root, rnd, ex), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
