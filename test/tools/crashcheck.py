#!/usr/bin/env python3
"""Checks FILE against BASE overlaid with every write LOG acknowledges.

usage: crashcheck.py FILE BASE LOG --seed N [--sync-every K]

Every acknowledged (fsync'ed) write must be there, in order. The writes
after the last acknowledged one were cut off by the crash: each may have
landed or not, so a byte that differs is accepted only where one of them
covers it with its own data. Exits 1 on the first byte that is neither.
"""
import argparse, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crashwriter import pattern, writes  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("base")
    p.add_argument("log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sync-every", type=int, default=4)
    a = p.parse_args()
    with open(a.file, "rb") as f:
        got = f.read()
    with open(a.base, "rb") as f:
        want = bytearray(f.read())
    if len(got) != len(want):
        print("size %d, expected %d" % (len(got), len(want)))
        return 1
    acked = []
    with open(a.log) as f:
        for line in f:
            off, n, i = map(int, line.split())
            acked.append(i)
    last = max(acked) if acked else -1
    unacked = []
    for i, off, n in writes(a.seed, len(want)):
        data = pattern(a.seed, i, n)
        if i <= last:
            want[off:off + n] = data
        elif i <= last + a.sync_every:
            unacked.append((off, data))
        else:
            break
    if got == bytes(want):
        print("acked=%d exact" % len(acked))
        return 0
    for k in range(len(want)):
        if got[k] == want[k]:
            continue
        if not any(o <= k < o + len(d) and d[k - o] == got[k] for o, d in unacked):
            print("byte %d: 0x%02x, expected 0x%02x (acked=%d)" % (k, got[k], want[k], len(acked)))
            return 1
    print("acked=%d ok (cut-off writes partly landed)" % len(acked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
