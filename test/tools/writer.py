#!/usr/bin/env python3
"""writer.py: a VM-like writer with a reference model, for the relocation suites.

Opens FILE (through a relocfs mount) O_RDWR and, until STOPFILE exists, writes
patterned blocks of 4 KiB..64 KiB at random offsets, reads random ranges back
and compares them with an in-memory model of the whole file, fsyncs at random,
and (with --ops) also writes at the file position, truncates the tail and
punches holes. With --append LOG it also appends lines to LOG through an
O_APPEND descriptor and checks the file position after each append.

The pattern of operation #i is random.Random(seed * 1000003 + i).randbytes(n),
so a run is reproducible from its seed.

On stop it reads the whole file back through the SAME descriptor, compares it
with the model, compares st_ino (fstat of the descriptor and stat of the path)
with the one seen at start, optionally dumps the model (--model-out), and
prints as its last line:

    mismatches=N errors=N ino_same=0|1 writes=N

It exits 0 only if there was no mismatch, no error and the inode number never
changed. Any OSError counts as an error and is printed.

usage: writer.py FILE --stop STOPFILE [--size BYTES] [--seed N]
                 [--ops write,read,fsync,seq,truncate,punch] [--interval SEC]
                 [--append LOGFILE] [--model-out PATH] [--progress PATH]
                 [--ready PATH]
"""

import argparse
import array
import ctypes
import ctypes.util
import hashlib
import os
import random
import sys
import time

BLK = 4096
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
MAX_PRINTED = 20

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def punch_hole(fd, off, length):
    if _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def parse_size(s):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower()
    if s and s[-1] in mult:
        return int(s[:-1]) * mult[s[-1]]
    return int(s)


class Writer:
    def __init__(self, a):
        self.a = a
        self.ops = set(a.ops.split(","))
        self.rnd = random.Random(a.seed)
        self.t0 = time.time()
        self.mismatches = 0
        self.errors = 0
        self.writes = 0
        self.counter = 0
        self.printed = 0
        self.op_log = []  # counter -> (t, op)
        self.ino_same = True

    # ------------------------------------------------------------ reporting
    def say(self, msg):
        if self.printed < MAX_PRINTED:
            print(msg, flush=True)
        elif self.printed == MAX_PRINTED:
            print("(further messages suppressed)", flush=True)
        self.printed += 1

    def error(self, what, ex):
        self.errors += 1
        self.say("error: t=%.3f op#%d %s: %s" % (time.time() - self.t0, self.counter, what, ex))
        time.sleep(0.01)

    def describe_block(self, off):
        b = off // BLK
        if b < len(self.lastop) and self.lastop[b] >= 0:
            n = self.lastop[b]
            t, op = self.op_log[n]
            return "last changed by op#%d %s at t=%.3fs" % (n, op, t)
        return "never changed by the writer (initial content)"

    def compare(self, where, off, got, want):
        if got == want:
            return True
        self.mismatches += 1
        if len(got) != len(want):
            self.say("mismatch: %s off=%d: got %d bytes, expected %d" % (where, off, len(got), len(want)))
            return False
        i = next(k for k in range(len(want)) if got[k] != want[k])
        zeros = not any(got[i:i + 64])
        self.say("mismatch: %s off=%d len=%d: first differing byte at %d (got %s, expected %s; %s)" % (
            where, off, len(want), off + i,
            "zeros" if zeros else got[i:i + 8].hex(), want[i:i + 8].hex(),
            self.describe_block(off + i)))
        return False

    # ------------------------------------------------------------ model
    def mark(self, off, length, op):
        self.op_log.append((time.time() - self.t0, op))
        if length <= 0:
            return
        first, last = off // BLK, (off + length - 1) // BLK
        need = last + 1 - len(self.lastop)
        if need > 0:
            self.lastop.extend(array.array("i", [-1]) * need)
        for b in range(first, last + 1):
            self.lastop[b] = self.counter

    def model_write(self, off, data):
        end = off + len(data)
        if end > len(self.model):
            self.model.extend(bytes(end - len(self.model)))
        self.model[off:end] = data

    def pattern(self, n):
        return random.Random(self.a.seed * 1000003 + self.counter).randbytes(n)

    # ------------------------------------------------------------ operations
    def pick_range(self, maxlen=16):
        n = self.rnd.randint(1, maxlen) * BLK
        if self.rnd.random() < 0.25:  # unaligned now and then
            n -= self.rnd.randrange(0, BLK)
        limit = max(self.size - n, 0)
        off = self.rnd.randrange(0, limit + 1)
        if self.rnd.random() < 0.75:
            off -= off % BLK
        return off, n

    def op_write(self):
        off, n = self.pick_range()
        data = self.pattern(n)
        try:
            r = os.pwrite(self.fd, data, off)
            if r != n:
                self.error("pwrite off=%d len=%d" % (off, n), "short write: %d" % r)
                return
        except OSError as ex:
            self.error("pwrite off=%d len=%d" % (off, n), ex)
            return
        self.model_write(off, data)
        self.mark(off, n, "pwrite")
        self.writes += 1

    def op_seq(self):
        # write at the file position; re-seek now and then
        try:
            if self.pos is None or self.rnd.random() < 0.1 or self.pos + 65536 > self.size:
                off, _ = self.pick_range()
                self.pos = os.lseek(self.fd, off, os.SEEK_SET)
                if self.pos != off:
                    self.error("lseek", "returned %d, expected %d" % (self.pos, off))
                    self.pos = None
                    return
            n = self.rnd.randint(1, 16) * BLK
            data = self.pattern(n)
            r = os.write(self.fd, data)
            if r != n:
                self.error("write pos=%d len=%d" % (self.pos, n), "short write: %d" % r)
                self.pos = None
                return
            self.model_write(self.pos, data)
            self.mark(self.pos, n, "write@pos")
            self.writes += 1
            self.pos += n
            cur = os.lseek(self.fd, 0, os.SEEK_CUR)
            if cur != self.pos:
                self.mismatches += 1
                self.say("mismatch: file position %d after write, expected %d" % (cur, self.pos))
                self.pos = cur
        except OSError as ex:
            self.error("seq write", ex)
            self.pos = None

    def op_read(self):
        off, n = self.pick_range(32)
        try:
            got = os.pread(self.fd, n, off)
        except OSError as ex:
            self.error("pread off=%d len=%d" % (off, n), ex)
            return
        self.compare("pread", off, got, bytes(self.model[off:off + n]))

    def op_fsync(self):
        try:
            if self.rnd.random() < 0.5:
                os.fsync(self.fd)
            else:
                os.fdatasync(self.fd)
        except OSError as ex:
            self.error("fsync", ex)

    def op_truncate(self):
        # shrink the tail by up to 1 MiB, or grow back to the full size
        cur = len(self.model)
        new = self.size if cur < self.size else self.size - self.rnd.randint(1, 1 << 20)
        try:
            os.ftruncate(self.fd, new)
        except OSError as ex:
            self.error("ftruncate %d" % new, ex)
            return
        if new < cur:
            del self.model[new:]
            self.mark(new, cur - new, "truncate-shrink")
        else:
            self.model.extend(bytes(new - cur))
            self.mark(cur, new - cur, "truncate-grow")
        self.writes += 1

    def op_punch(self):
        off, n = self.pick_range()
        off -= off % BLK
        n = max(BLK, n - n % BLK)
        try:
            punch_hole(self.fd, off, n)
        except OSError as ex:
            self.error("punch off=%d len=%d" % (off, n), ex)
            return
        end = min(off + n, len(self.model))
        if end > off:
            self.model[off:end] = bytes(end - off)
        self.mark(off, n, "punch")
        self.writes += 1

    def op_append(self):
        line = ("%d %08d %.6f " % (self.a.seed, self.counter, time.time() - self.t0)).encode()
        line += self.pattern(self.rnd.randint(0, 200)).hex().encode() + b"\n"
        try:
            r = os.write(self.afd, line)
            if r != len(line):
                self.error("append", "short write: %d" % r)
                return
            self.amodel.extend(line)
            cur = os.lseek(self.afd, 0, os.SEEK_CUR)
            size = os.fstat(self.afd).st_size
            if cur != len(self.amodel) or size != len(self.amodel):
                self.mismatches += 1
                self.say("mismatch: append log position %d size %d, expected %d" % (cur, size, len(self.amodel)))
                self.amodel = bytearray(os.pread(self.afd, size, 0))
        except OSError as ex:
            self.error("append", ex)

    def check_stat(self):
        try:
            st = os.fstat(self.fd)
        except OSError as ex:
            self.error("fstat", ex)
            return
        if st.st_ino != self.ino0:
            if self.ino_same:
                self.say("st_ino changed: %d -> %d at t=%.3f" % (self.ino0, st.st_ino, time.time() - self.t0))
            self.ino_same = False
        if st.st_size != len(self.model):
            self.mismatches += 1
            self.say("mismatch: st_size %d, expected %d at t=%.3f" % (st.st_size, len(self.model), time.time() - self.t0))

    # ------------------------------------------------------------ main
    def progress(self, force=False):
        now = time.time()
        if not self.a.progress or (not force and now - self.last_progress < 0.1):
            return
        self.last_progress = now
        tmp = self.a.progress + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d %d\n" % (self.writes, self.errors, self.mismatches))
        os.rename(tmp, self.a.progress)

    def run(self):
        a = self.a
        self.fd = os.open(a.file, os.O_RDWR | os.O_CREAT, 0o644)
        st = os.fstat(self.fd)
        if a.size is not None and st.st_size != a.size:
            os.ftruncate(self.fd, a.size)
        self.size = os.fstat(self.fd).st_size
        self.model = bytearray()
        off = 0
        while off < self.size:
            chunk = os.pread(self.fd, min(1 << 20, self.size - off), off)
            if not chunk:
                break
            self.model.extend(chunk)
            off += len(chunk)
        if len(self.model) != self.size:
            print("initial read returned %d bytes, size %d" % (len(self.model), self.size), flush=True)
            return 1
        self.lastop = array.array("i", [-1]) * ((self.size + BLK - 1) // BLK)
        self.ino0 = os.fstat(self.fd).st_ino
        self.pos = None
        self.afd = None
        if a.append:
            self.afd = os.open(a.append, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self.amodel = bytearray(os.pread(self.afd, os.fstat(self.afd).st_size, 0))
            os.lseek(self.afd, 0, os.SEEK_END)
            self.aino0 = os.fstat(self.afd).st_ino
        if "punch" in self.ops:
            # punching must work before the relocation, or the run is moot
            try:
                punch_hole(self.fd, self.size - BLK, BLK)
                self.model[self.size - BLK:] = bytes(BLK)
            except OSError as ex:
                print("punch unsupported here (%s): not punching" % ex, flush=True)
                self.ops.discard("punch")
        print("ino=%d size=%d seed=%d pid=%d t0=%.6f" % (self.ino0, self.size, a.seed, os.getpid(), self.t0), flush=True)
        self.last_progress = 0.0
        if a.ready:
            with open(a.ready, "w") as f:
                f.write("%d\n" % self.ino0)

        table = [("write", 60, self.op_write), ("seq", 10, self.op_seq),
                 ("read", 20, self.op_read), ("fsync", 4, self.op_fsync),
                 ("truncate", 1, self.op_truncate), ("punch", 2, self.op_punch)]
        table = [(w, f) for (name, w, f) in table if name in self.ops]
        total = sum(w for w, _ in table)
        while not os.path.exists(a.stop):
            self.counter = len(self.op_log)
            x = self.rnd.uniform(0, total)
            for w, f in table:
                x -= w
                if x <= 0:
                    break
            f()
            if len(self.op_log) == self.counter:  # ops that do not mark still get a slot
                self.op_log.append((time.time() - self.t0, f.__name__))
            if self.afd is not None and self.rnd.random() < 0.2:
                self.counter = len(self.op_log)
                self.op_append()
                self.op_log.append((time.time() - self.t0, "append"))
            if self.counter % 32 == 0:
                self.check_stat()
            self.progress()
            if a.interval > 0:
                time.sleep(a.interval)
        return self.finish()

    def finish(self):
        a = self.a
        self.check_stat()
        try:
            os.fsync(self.fd)
        except OSError as ex:
            self.error("final fsync", ex)
        # read everything back through the same descriptor
        try:
            size = os.fstat(self.fd).st_size
        except OSError as ex:
            self.error("final fstat", ex)
            size = len(self.model)
        if size != len(self.model):
            self.mismatches += 1
            self.say("mismatch: final size %d, expected %d" % (size, len(self.model)))
        off = 0
        end = max(size, len(self.model))
        while off < end:
            n = min(1 << 20, end - off)
            try:
                got = os.pread(self.fd, n, off)
            except OSError as ex:
                self.error("final pread off=%d" % off, ex)
                off += n
                continue
            self.compare("final read", off, got, bytes(self.model[off:off + n]))
            off += n
        if self.afd is not None:
            try:
                got = os.pread(self.afd, len(self.amodel) + 4096, 0)
                self.compare("append log final read", 0, got, bytes(self.amodel))
                if os.fstat(self.afd).st_ino != self.aino0 or os.stat(a.append).st_ino != self.aino0:
                    self.say("append log st_ino changed")
                    self.ino_same = False
            except OSError as ex:
                self.error("append log final read", ex)
        try:
            if os.fstat(self.fd).st_ino != self.ino0:
                self.ino_same = False
            pino = os.stat(a.file).st_ino
            if pino != self.ino0:
                self.say("stat(path).st_ino %d, expected %d" % (pino, self.ino0))
                self.ino_same = False
        except OSError as ex:
            self.error("final stat", ex)
        # a fresh open of the path must show the same bytes
        try:
            h = hashlib.sha256()
            fd2 = os.open(a.file, os.O_RDONLY)
            try:
                while True:
                    b = os.read(fd2, 1 << 20)
                    if not b:
                        break
                    h.update(b)
            finally:
                os.close(fd2)
            want = hashlib.sha256(self.model).hexdigest()
            if h.hexdigest() != want:
                self.mismatches += 1
                self.say("mismatch: a fresh open of the path reads sha256 %s, model %s" % (h.hexdigest(), want))
        except OSError as ex:
            self.error("reopen", ex)
        if a.model_out:
            with open(a.model_out, "wb") as f:
                f.write(self.model)
        if a.append_model_out and self.afd is not None:
            with open(a.append_model_out, "wb") as f:
                f.write(self.amodel)
        self.progress(force=True)
        print("model_sha256=%s size=%d elapsed=%.3f" % (
            hashlib.sha256(self.model).hexdigest(), len(self.model), time.time() - self.t0))
        print("mismatches=%d errors=%d ino_same=%d writes=%d" % (
            self.mismatches, self.errors, 1 if self.ino_same else 0, self.writes), flush=True)
        ok = self.mismatches == 0 and self.errors == 0 and self.ino_same and self.writes > 0
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description="VM-like writer with a reference model")
    p.add_argument("file")
    p.add_argument("--stop", required=True, help="stop when this file exists")
    p.add_argument("--size", type=parse_size, default=None, help="set the file's size first (sparse)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops", default="write,read,fsync,seq")
    p.add_argument("--interval", type=float, default=0.0, help="sleep between operations")
    p.add_argument("--append", help="also append lines to this file through O_APPEND")
    p.add_argument("--model-out", help="write the model of FILE here at the end")
    p.add_argument("--append-model-out", help="write the model of the --append file here")
    p.add_argument("--progress", help="keep 'writes errors mismatches' in this file")
    p.add_argument("--ready", help="create this file once writing begins")
    a = p.parse_args()
    try:
        rc = Writer(a).run()
    except OSError as ex:
        print("error: setup: %s" % ex, flush=True)
        print("mismatches=0 errors=1 ino_same=0 writes=0", flush=True)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
