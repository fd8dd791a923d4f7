#!/usr/bin/env python3
"""Writes patterned blocks to FILE and logs each one once it is fsync'ed.

usage: crashwriter.py FILE LOG --seed N [--count N] [--sync-every K]

Each write i puts the 4 KiB..64 KiB pattern of (seed, i) at a random offset
below the file's size (some unaligned) with pwrite; every K-th write is
followed by fsync, after which every write up to it is acknowledged as
durable: "OFFSET LENGTH I" lines are appended to LOG and LOG is fsync'ed.
The process is expected to be cut off (its relocfs killed): errors end it.
"""
import argparse, os, random, sys


def pattern(seed, i, n):
    unit = ("%d:%d|" % (seed, i)).encode()
    return (unit * (n // len(unit) + 1))[:n]


def writes(seed, size):
    """The writer's sequence: (i, offset, length), forever."""
    rng = random.Random(seed)
    i = 0
    while True:
        n = rng.choice([4096, 8192, 65536, 5000])
        off = rng.randrange(0, size - n)
        if rng.random() < 0.7:
            off -= off % 4096
        yield i, off, n
        i += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=1 << 30)
    p.add_argument("--sync-every", type=int, default=4)
    a = p.parse_args()
    fd = os.open(a.file, os.O_RDWR)
    size = os.fstat(fd).st_size
    log = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pending = []
    try:
        for i, off, n in writes(a.seed, size):
            if i >= a.count:
                break
            os.pwrite(fd, pattern(a.seed, i, n), off)
            pending.append("%d %d %d\n" % (off, n, i))
            if (i + 1) % a.sync_every == 0:
                os.fsync(fd)
                os.write(log, "".join(pending).encode())
                os.fsync(log)
                pending = []
    except OSError as e:
        print("writer stopped: %s" % e, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
