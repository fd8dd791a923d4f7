#!/usr/bin/env bats
# Self-tests of faultfs (test/tools/faultfs.c), the FUSE layer under the
# power-cut and destination-fault suites: what it promises is what those
# suites rely on.
#
#   - a write that was not fsync'ed is visible through the mount but not in
#     the backing directory, and is gone after a power cut (SIGKILL + lazy
#     unmount); an fsync'ed one, or one made through O_DSYNC, is kept;
#     truncations and hole punches are held back the same way; syncfs
#     flushes nothing
#   - namespace operations reach the backing directory at once
#   - a dropped file's pending writes never show up in a later file
#   - in fail mode (SIGUSR1) writes, fsyncs and creations fail with EIO while
#     reads, listings, unlink and rename work; SIGUSR2 heals
#   - with SIGRTMIN only directory flushes fail: a rename goes through and
#     is kept, its directory's fsync fails; SIGUSR2 heals
#   - with SIGRTMIN+1 a file's fsync fails and loses its pending writes,
#     through the mount too; SIGUSR2 heals
#   - with SIGRTMIN+2 close(2) of a file fails; SIGUSR2 heals
#   - inode numbers are the backing ones, objects belong to their creator

bats_require_minimum_version 1.5.0

load lib/common
load lib/faultfs

setup() {
	faultfs_require
	BACK=$BATS_TEST_TMPDIR/back
	FFS=$BATS_TEST_TMPDIR/ffs
	rfs_tmpfs "$BACK" 256m
}

teardown() {
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		local f
		for f in "$BATS_TEST_TMPDIR"/faultfs.*.log; do
			[ -s "$f" ] && { echo "---- $f"; tail -n 20 -- "$f"; }
		done
	fi
	rfs_cleanup
}

# pyfs SCRIPT ARGS...: run a python snippet (os imported, args in sys.argv);
# t(NAME, F) calls F and appends "NAME ok" or "NAME ERRNO" to the list res
pyfs() {
	local script=$1
	shift
	"$RFS_PY" -c "import os, sys, errno
res = []
def t(name, f):
    try:
        f(); res.append('%s ok' % name)
    except OSError as e:
        res.append('%s %s' % (name, errno.errorcode[e.errno]))
$script" "$@"
}

# punch FILE OFFSET LENGTH: punch a hole, without the fsync fallocate(1) adds
punch() {
	pyfs '
import ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDWR)
if libc.fallocate(fd, 3, int(sys.argv[2]), int(sys.argv[3])) != 0:
    sys.exit("punch: " + os.strerror(ctypes.get_errno()))' "$@"
}

@test "faultfs: usage line on bad arguments" {
	run "$FAULTFS"
	assert_failure 2
	assert_output --partial "usage: faultfs BACKDIR MOUNTPOINT"
	run "$FAULTFS" "$BACK"
	assert_failure 2
	assert_output --partial "usage: faultfs BACKDIR MOUNTPOINT"
	run "$FAULTFS" "$BATS_TEST_TMPDIR/nonexistent" "$FFS"
	assert_failure 1
	assert_output --partial "No such file or directory"
}

@test "faultfs: a write not fsync'ed is lost at a power cut, an fsync'ed one is kept" {
	faultfs_mount "$BACK" "$FFS"
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/a"
	head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/b"
	# a: written and fsync'ed; then b over the middle of it, not fsync'ed
	dd if="$BATS_TEST_TMPDIR/a" of="$FFS/f" bs=64k conv=fsync status=none
	dd if="$BATS_TEST_TMPDIR/b" of="$FFS/f" bs=64k seek=3 conv=notrunc status=none
	cp "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/ab"
	dd if="$BATS_TEST_TMPDIR/b" of="$BATS_TEST_TMPDIR/ab" bs=64k seek=3 conv=notrunc status=none
	# a file never fsync'ed at all, and one that grew without fsync
	echo "never synced" >"$FFS/g"
	head -c 100k /dev/urandom >>"$FFS/f"
	# the mount shows every write, the backing file only the fsync'ed ones
	cmp <(head -c 1M "$FFS/f") "$BATS_TEST_TMPDIR/ab"
	[ "$(stat -c %s "$FFS/f")" = $((1024 * 1024 + 100 * 1024)) ]
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/a"
	assert_equal "$(cat "$FFS/g")" "never synced"
	[ "$(stat -c %s "$BACK/g")" = 0 ]
	# the inode numbers are the backing ones
	assert_equal "$(stat -c %i "$FFS/f")" "$(stat -c %i "$BACK/f")"

	faultfs_powercut "$FFS"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/a"
	faultfs_mount "$BACK" "$FFS"
	cmp "$FFS/f" "$BATS_TEST_TMPDIR/a"
	assert_exist "$FFS/g"
	[ "$(stat -c %s "$FFS/g")" = 0 ]

	# fdatasync of another handle (read-only) applies what a writer left
	dd if="$BATS_TEST_TMPDIR/b" of="$FFS/f" bs=64k seek=3 conv=notrunc status=none
	pyfs 'fd = os.open(sys.argv[1], os.O_RDONLY); os.fdatasync(fd); os.close(fd)' "$FFS/f"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/ab"
	faultfs_powercut "$FFS"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/ab"
}

@test "faultfs: O_DSYNC and O_SYNC writes are applied at once; syncfs flushes nothing" {
	faultfs_mount "$BACK" "$FFS"
	head -c 256k /dev/urandom >"$BATS_TEST_TMPDIR/a"
	head -c 256k /dev/urandom >"$BATS_TEST_TMPDIR/s"
	dd if="$BATS_TEST_TMPDIR/a" of="$FFS/dsync" bs=64k oflag=dsync status=none
	dd if="$BATS_TEST_TMPDIR/s" of="$FFS/sync" bs=64k oflag=sync status=none
	cmp "$BACK/dsync" "$BATS_TEST_TMPDIR/a"
	cmp "$BACK/sync" "$BATS_TEST_TMPDIR/s"
	# syncfs (sync -f) never reaches a FUSE daemon: nothing is flushed
	head -c 64k /dev/urandom >"$FFS/syncfs"
	sync -f "$FFS/syncfs"
	sync
	[ "$(stat -c %s "$BACK/syncfs")" = 0 ]
	faultfs_powercut "$FFS"
	faultfs_mount "$BACK" "$FFS"
	cmp "$FFS/dsync" "$BATS_TEST_TMPDIR/a"
	cmp "$FFS/sync" "$BATS_TEST_TMPDIR/s"
	[ "$(stat -c %s "$FFS/syncfs")" = 0 ]
}

@test "faultfs: namespace operations, modes and xattrs reach the backing directory at once" {
	faultfs_mount "$BACK" "$FFS"
	mkdir "$FFS/d"
	echo data >"$FFS/d/a"
	sync "$FFS/d/a"
	mv "$FFS/d/a" "$FFS/d/b"
	ln "$FFS/d/b" "$FFS/d/hard"
	ln -s b "$FFS/d/sym"
	mkfifo "$FFS/d/fifo"
	chmod 0640 "$FFS/d/b"
	setfattr -n user.k -v v1 "$FFS/d/b"
	touch -d '2001-02-03 04:05:06' "$FFS/d/b"
	echo x >"$FFS/d/gone"
	rm "$FFS/d/gone"
	# all of it is in the backing directory before any power cut
	assert_not_exist "$BACK/d/a"
	assert_not_exist "$BACK/d/gone"
	assert_equal "$(cat "$BACK/d/b")" data
	assert_equal "$(stat -c '%h %a %Y' "$BACK/d/b")" "2 640 $(date -d '2001-02-03 04:05:06' +%s)"
	assert_equal "$(readlink "$BACK/d/sym")" b
	[ -p "$BACK/d/fifo" ]
	assert_equal "$(getfattr --only-values -n user.k "$BACK/d/b")" v1
	faultfs_powercut "$FFS"
	faultfs_mount "$BACK" "$FFS"
	assert_equal "$(cat "$FFS/d/hard")" data
	assert_equal "$(ls "$FFS/d" | tr '\n' ' ')" "b fifo hard sym "
	# listings and inode numbers through the mount are the backing ones
	assert_equal "$(cd "$FFS" && find . -printf '%p %i %y\n' | sort)" "$(cd "$BACK" && find . -printf '%p %i %y\n' | sort)"
}

@test "faultfs: a pending write keeps its mtime; utimens after it survives the flush" {
	faultfs_mount "$BACK" "$FFS"
	echo one >"$FFS/f"
	touch -d '2002-03-04 05:06:07' "$FFS/f"
	sync "$FFS/f"
	assert_equal "$(stat -c %Y "$BACK/f")" "$(date -d '2002-03-04 05:06:07' +%s)"
	assert_equal "$(stat -c %Y "$FFS/f")" "$(date -d '2002-03-04 05:06:07' +%s)"
}

@test "faultfs: truncation, extension, hole punches and appends are held until fsync" {
	faultfs_mount "$BACK" "$FFS"
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/a"
	cp "$BATS_TEST_TMPDIR/a" "$FFS/f"
	sync "$FFS/f"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/a"
	# shrink, then grow: the bytes past the cut read as zeros, though the
	# backing file still holds them
	truncate -s 5000 "$FFS/f"
	truncate -s 300000 "$FFS/f"
	{ head -c 5000 "$BATS_TEST_TMPDIR/a"; head -c 295000 /dev/zero; } >"$BATS_TEST_TMPDIR/want"
	cmp "$FFS/f" "$BATS_TEST_TMPDIR/want"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/a"
	# punch a hole, append through O_APPEND
	punch "$FFS/f" 4096 8192
	dd if=/dev/zero of="$BATS_TEST_TMPDIR/want" bs=4096 seek=1 count=2 conv=notrunc status=none
	echo appended >>"$FFS/f"
	echo appended >>"$BATS_TEST_TMPDIR/want"
	cmp "$FFS/f" "$BATS_TEST_TMPDIR/want"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/a"
	# SEEK_DATA/SEEK_HOLE: a file with pending changes is all data
	run pyfs 'fd = os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_HOLE))' "$FFS/f"
	assert_output "$(stat -c %s "$BATS_TEST_TMPDIR/want")"
	# a power cut drops all of it
	faultfs_powercut "$FFS"
	faultfs_mount "$BACK" "$FFS"
	cmp "$FFS/f" "$BATS_TEST_TMPDIR/a"
	# the same again, fsync'ed: the backing file is the mount's view,
	# hole included
	truncate -s 5000 "$FFS/f"
	truncate -s 300000 "$FFS/f"
	punch "$FFS/f" 4096 8192
	echo appended >>"$FFS/f"
	sync "$FFS/f"
	cmp "$BACK/f" "$BATS_TEST_TMPDIR/want"
	faultfs_powercut "$FFS"
	faultfs_mount "$BACK" "$FFS"
	cmp "$FFS/f" "$BATS_TEST_TMPDIR/want"
	# a clean sparse file: SEEK_DATA/SEEK_HOLE pass through
	truncate -s 1M "$BACK/sparse"
	printf x | dd of="$BACK/sparse" bs=1 seek=524288 conv=notrunc status=none
	run pyfs 'fd = os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE))' "$FFS/sparse"
	assert_output "$(pyfs 'fd = os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE))' "$BACK/sparse")"
}

@test "faultfs: a removed file's pending writes never reach a later file (ext4: inode numbers reused)" {
	rfs_ext4 "$BATS_TEST_TMPDIR/e.img" "$BATS_TEST_TMPDIR/ext4" 64M
	mkdir "$BATS_TEST_TMPDIR/ext4/back"
	BACK=$BATS_TEST_TMPDIR/ext4/back
	faultfs_mount "$BACK" "$FFS"
	local i ino reused=0
	for i in $(seq 1 20); do
		: >"$FFS/f"
		ino=$(stat -c %i "$FFS/f")
		head -c 20000 /dev/urandom >>"$FFS/f"
		rm "$FFS/f"
		: >"$FFS/f"
		[ "$(stat -c %i "$FFS/f")" = "$ino" ] && reused=$((reused + 1))
		[ "$(stat -c %s "$FFS/f")" = 0 ] || fail "round $i: a new file shows $(stat -c %s "$FFS/f") bytes of a removed one"
		[ -z "$(head -c 1 "$FFS/f")" ] || fail "round $i: a new file reads data of a removed one"
		rm "$FFS/f"
	done
	# the same through rename over a file with pending writes
	echo old >"$FFS/target"
	echo new >"$FFS/src"
	sync "$FFS/src"
	mv "$FFS/src" "$FFS/target"
	assert_equal "$(cat "$FFS/target")" new
	# an open, removed file keeps its pending data until it is closed
	run pyfs '
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"abc" * 1000)
os.unlink(sys.argv[1])
print(os.pread(fd, 3, 2997), os.fstat(fd).st_size)
os.close(fd)' "$FFS/open-unlinked"
	assert_success
	assert_output "b'abc' 3000"
	assert_not_exist "$BACK/open-unlinked"
	echo "inode numbers reused: $reused of 20" >&3
}

@test "faultfs: random writes, truncations and punches match a model through the mount; a power cut leaves the fsync'ed state" {
	faultfs_mount "$BACK" "$FFS"
	run pyfs '
import random, ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
mnt, back, out = sys.argv[1], sys.argv[2], sys.argv[3]
rnd = random.Random(int(sys.argv[4]))
files = {}
for k in range(4):
    p = "%s/m%d" % (mnt, k)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    files[k] = [fd, bytearray(), bytearray()]   # fd, current, synced
bad = 0
for step in range(3000):
    k = rnd.randrange(4)
    fd, cur, syn = files[k]
    op = rnd.random()
    if op < 0.55:
        n = rnd.choice([1, 100, 4096, 5000, 65536, 70000])
        off = rnd.randrange(0, 600000)
        data = rnd.randbytes(n)
        os.pwrite(fd, data, off)
        if off > len(cur):
            cur.extend(bytes(off - len(cur)))
        cur[off:off + n] = data
    elif op < 0.65:
        n = rnd.randrange(0, 700000)
        os.ftruncate(fd, n)
        if n < len(cur):
            del cur[n:]
        else:
            cur.extend(bytes(n - len(cur)))
    elif op < 0.72:
        off = rnd.randrange(0, 600000)
        n = rnd.randrange(1, 100000)
        if libc.fallocate(fd, 3, off, n) != 0:
            raise OSError(ctypes.get_errno(), "punch")
        end = min(off + n, len(cur))
        if end > off:
            cur[off:end] = bytes(end - off)
    elif op < 0.80:
        (os.fsync if rnd.random() < 0.5 else os.fdatasync)(fd)
        syn[:] = cur
        with open("%s/m%d" % (back, k), "rb") as f:
            if f.read() != bytes(cur):
                print("step %d: m%d: backing file differs from the model after fsync" % (step, k)); bad += 1
    else:
        off = rnd.randrange(0, 700000)
        n = rnd.randrange(1, 200000)
        got = os.pread(fd, n, off)
        if got != bytes(cur[off:off + n]):
            print("step %d: m%d: read %d@%d differs from the model" % (step, k, n, off)); bad += 1
    st = os.fstat(fd)
    if st.st_size != len(cur):
        print("step %d: m%d: size %d, model %d" % (step, k, st.st_size, len(cur))); bad += 1
for k, (fd, cur, syn) in files.items():
    with open("%s/m%d" % (mnt, k), "rb") as f:
        if f.read() != bytes(cur):
            print("m%d: final read through a new descriptor differs from the model" % k); bad += 1
    with open("%s/m%d.synced" % (out, k), "wb") as f:
        f.write(syn)
print("bad=%d" % bad)
sys.exit(1 if bad else 0)
' "$FFS" "$BACK" "$BATS_TEST_TMPDIR" "$RANDOM"
	[ "$status" = 0 ] || fail "$output"
	faultfs_powercut "$FFS"
	faultfs_mount "$BACK" "$FFS"
	local k
	for k in 0 1 2 3; do
		cmp "$FFS/m$k" "$BATS_TEST_TMPDIR/m$k.synced"
	done
}

@test "faultfs: fail mode (SIGUSR1) fails writes, fsyncs and creations with EIO, lets reads, unlink and rename work; SIGUSR2 heals" {
	faultfs_mount "$BACK" "$FFS"
	mkdir "$FFS/d"
	echo data >"$FFS/d/f"
	sync "$FFS/d/f"
	echo other >"$FFS/d/g"
	faultfs_fail "$FFS"
	# writes, fsyncs, creations, truncation, attribute changes: EIO
	run pyfs '
d = sys.argv[1]
fd = os.open(d + "/f", os.O_RDWR)
t("write", lambda: os.pwrite(fd, b"x", 0))
t("fsync", lambda: os.fsync(fd))
t("ftruncate", lambda: os.ftruncate(fd, 1))
t("create", lambda: os.open(d + "/new", os.O_CREAT | os.O_WRONLY, 0o644))
t("mkdir", lambda: os.mkdir(d + "/newdir"))
t("symlink", lambda: os.symlink("f", d + "/sl"))
t("link", lambda: os.link(d + "/f", d + "/hl"))
t("chmod", lambda: os.chmod(d + "/f", 0o600))
t("setxattr", lambda: os.setxattr(d + "/f", "user.x", b"1"))
t("read", lambda: os.pread(fd, 4, 0) == b"data" or sys.exit("read returned wrong data"))
t("listdir", lambda: os.listdir(d))
t("stat", lambda: os.stat(d + "/f"))
t("rename", lambda: os.rename(d + "/g", d + "/g2"))
t("unlink", lambda: os.unlink(d + "/g2"))
print(" / ".join(res))' "$FFS/d"
	assert_success
	assert_output "write EIO / fsync EIO / ftruncate EIO / create EIO / mkdir EIO / symlink EIO / link EIO / chmod EIO / setxattr EIO / read ok / listdir ok / stat ok / rename ok / unlink ok"
	# rm -rf of a tree works in fail mode
	run rm -rf "$FFS/d"
	assert_success
	assert_not_exist "$BACK/d"
	assert_equal "$(ls -A "$BACK")" ""
	faultfs_heal "$FFS"
	mkdir "$FFS/d"
	echo healed >"$FFS/d/f"
	sync "$FFS/d/f"
	assert_equal "$(cat "$BACK/d/f")" healed
}

@test "faultfs: SIGRTMIN fails only directory flushes with EIO; creations, writes, renames work; SIGUSR2 heals" {
	faultfs_mount "$BACK" "$FFS"
	mkdir "$FFS/d"
	faultfs_fail_dirsync "$FFS"
	run pyfs '
d = sys.argv[1]
fd = os.open(d + "/tmp", os.O_CREAT | os.O_WRONLY, 0o644)
t("write", lambda: os.write(fd, b"new"))
t("fsync", lambda: os.fsync(fd))
os.close(fd)
t("rename", lambda: os.rename(d + "/tmp", d + "/f"))
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
t("fsyncdir", lambda: os.fsync(dfd))
print(" / ".join(res))' "$FFS/d"
	assert_success
	assert_output "write ok / fsync ok / rename ok / fsyncdir EIO"
	assert_equal "$(cat "$BACK/d/f")" new
	faultfs_heal "$FFS"
	run sync -- "$FFS/d"
	assert_success
}

@test "faultfs: SIGRTMIN+1 makes a file's fsync fail with EIO and lose its pending writes, also from the kernel's cache; SIGUSR2 heals" {
	faultfs_mount "$BACK" "$FFS"
	printf 'old!' >"$FFS/f"
	sync -- "$FFS/f"
	faultfs_fail_lossy "$FFS"
	run pyfs '
f = sys.argv[1]
fd = os.open(f, os.O_RDWR)
os.pwrite(fd, b"new!", 0)
seen = os.pread(fd, 4, 0)
try:
    os.fsync(fd)
    res = "fsync ok"
except OSError as e:
    res = "fsync " + errno.errorcode[e.errno]
print(seen.decode(), res, os.pread(fd, 4, 0).decode())' "$FFS/f"
	assert_success
	assert_output "new! fsync EIO old!"
	assert_equal "$(cat "$BACK/f")" "old!"
	faultfs_heal "$FFS"
	printf 'new!' >"$FFS/f"
	sync -- "$FFS/f"
	assert_equal "$(cat "$BACK/f")" "new!"
}

@test "faultfs: SIGRTMIN+2 makes close(2) of a file fail with EIO, as NFS reports a delayed write error; SIGUSR2 heals" {
	faultfs_mount "$BACK" "$FFS"
	faultfs_fail_close "$FFS"
	run pyfs '
f = sys.argv[1]
fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
t("write", lambda: os.write(fd, b"data"))
t("close", lambda: os.close(fd))
print(" / ".join(res))' "$FFS/f"
	assert_success
	assert_output "write ok / close EIO"
	assert_equal "$(cat "$FFS/f")" data
	faultfs_heal "$FFS"
	run pyfs '
fd = os.open(sys.argv[1], os.O_WRONLY)
t("close", lambda: os.close(fd))
print(" / ".join(res))' "$FFS/f"
	assert_success
	assert_output "close ok"
}

@test "faultfs: objects belong to their creator; modes are checked by the kernel" {
	faultfs_mount "$BACK" "$FFS"
	mkdir -m 0777 "$FFS/pub"
	mkdir -m 0700 "$FFS/priv"
	rfs_allow_traverse "$FFS"
	rfs_as_user sh -c 'echo mine >"$1/pub/f" && mkdir "$1/pub/d" && ln -s f "$1/pub/l" && mkfifo "$1/pub/p"' _ "$FFS"
	assert_equal "$(stat -c '%u:%g' "$BACK/pub/f" "$BACK/pub/d" "$BACK/pub/p" | sort -u)" "$RFS_UID:$RFS_GID"
	assert_equal "$(stat -c '%u:%g' "$BACK/pub/l")" "$RFS_UID:$RFS_GID"
	run rfs_as_user sh -c 'echo no >"$1/priv/f"' _ "$FFS"
	assert_failure
	assert_output --partial "Permission denied"
	assert_not_exist "$BACK/priv/f"
	# a set-group-ID directory passes its group on
	mkdir -m 2777 "$FFS/sgid"
	chgrp 4242 "$FFS/sgid"
	rfs_as_user sh -c 'echo x >"$1/sgid/f"' _ "$FFS"
	assert_equal "$(stat -c '%u:%g' "$BACK/sgid/f")" "$RFS_UID:4242"
}
