#!/usr/bin/env bash
# demo.sh: shows relocfs moving a VM home to another datastore while a
# writer keeps its disk file open and busy. Builds two throw-away
# datastores, a tmpfs (the source) and an ext4 filesystem on a loop device
# (the destination, a different filesystem), mounts the source with
# build/relocfs, starts a writer on vm1's flat disk through the mount, runs
# `relocctl migrate --wait`, and checks that the writer saw no error, no
# stale byte and no change of inode, that the destination holds exactly what
# was written, and that the source copy is gone. Then it unmounts and removes
# everything, also on failure or Ctrl-C.
# Run by `make demo` (as root: it mounts a tmpfs, a loop device and a FUSE
# filesystem).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
RELOCFS=${RELOCFS:-$repo/build/relocfs}
RELOCCTL=${RELOCCTL:-$repo/build/relocctl}

if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (it mounts a tmpfs, a loop device and a FUSE filesystem); try: sudo make demo" >&2
	exit 1
fi
for b in "$RELOCFS" "$RELOCCTL"; do
	if [ ! -x "$b" ]; then
		echo "demo: $b not found; run make first" >&2
		exit 1
	fi
done
for c in python3 mkfs.ext4 losetup fusermount3 sha256sum; do
	if ! command -v "$c" >/dev/null; then
		echo "demo: $c not found (make deps installs what the demo needs)" >&2
		exit 1
	fi
done

tmp=
pid=
wpid=

# Is PATH a mount point? Reads the mount table only, so it cannot hang on a
# FUSE daemon that died.
is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts
}

# wait_gone PID SECONDS: wait until process PID has ended; 1 if it has not.
wait_gone() {
	local n=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null; do
		[ "$n" -gt 0 ] || return 1
		n=$((n - 1))
		sleep 0.1
	done
	return 0
}

cleanup() {
	local rc=$? dev
	set +e
	trap - EXIT INT TERM
	[ -n "$tmp" ] || exit "$rc"
	cd /
	# The writer holds a file of the mount open: the daemon only ends once
	# it is gone.
	if [ -n "$wpid" ]; then
		kill -TERM "$wpid" 2>/dev/null
		wait_gone "$wpid" 5 || kill -KILL "$wpid" 2>/dev/null
		wait "$wpid" 2>/dev/null
	fi
	if is_mounted "$tmp/mnt"; then
		fusermount3 -uz "$tmp/mnt" 2>/dev/null || umount -l "$tmp/mnt"
	fi
	# relocfs exits once its mount is gone (after rolling back a relocation
	# that had not cut over yet); it holds both datastores open until then.
	if [ -n "$pid" ]; then
		if ! wait_gone "$pid" 60; then
			kill -TERM "$pid" 2>/dev/null
			wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	fi
	for m in "$tmp/ds2" "$tmp/ds1"; do
		if is_mounted "$m"; then
			umount "$m" 2>/dev/null || umount -l "$m"
		fi
	done
	if [ -e "$tmp/ds2.img" ]; then
		for dev in $(losetup -j "$tmp/ds2.img" -O NAME -n 2>/dev/null); do
			losetup -d "$dev"
		done
	fi
	if awk -v p="$tmp/" 'index($2, p) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
		echo "demo: something is still mounted under $tmp; left it in place" >&2
		rc=1
	else
		rm -rf "$tmp"
	fi
	[ "$rc" -eq 0 ] || echo "demo: FAILED (exit $rc); cleaned up" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() {
	printf '\n==> %s\n' "$*"
}

# Prints a command (quoting what needs it), then runs it.
run() {
	local a out=
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9_./=,:%+-]*) out+=" '$a'" ;;
		*) out+=" $a" ;;
		esac
	done
	printf '$%s\n' "$out"
	"$@"
}

# relocctl ARGS...: prints the command line, then runs build/relocctl.
ctl() {
	printf '$ relocctl %s\n' "$*"
	"$RELOCCTL" "$@"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-demo.XXXXXX")
cd "$tmp"
mkdir ds1 ds2 mnt state

section "1. Two datastores: ds1 (a tmpfs) with two VM homes, ds2 (ext4 on a loop device), empty"
run mount -t tmpfs -o size=512m,mode=0755 relocfs-demo ds1
run truncate -s 3G ds2.img
run mkfs.ext4 -q -F ds2.img
run mount -o loop ds2.img ds2
rmdir ds2/lost+found

# make_home NAME DATA_MIB: a VM home as an ESXi host leaves it: config,
# disk descriptor, a sparse 1 GiB flat extent holding DATA_MIB MiB of data in
# two places, and a log.
make_home() {
	local vm=$1 data=$2 home=ds1/$1
	mkdir "$home"
	cat >"$home/$vm.vmx" <<-EOF
	.encoding = "UTF-8"
	config.version = "8"
	virtualHW.version = "19"
	displayName = "$vm"
	guestOS = "debian12-64"
	memSize = "2048"
	numvcpus = "2"
	scsi0.present = "TRUE"
	scsi0.virtualDev = "pvscsi"
	scsi0:0.present = "TRUE"
	scsi0:0.fileName = "$vm.vmdk"
	ethernet0.present = "TRUE"
	ethernet0.virtualDev = "vmxnet3"
	ethernet0.networkName = "VM Network"
	nvram = "$vm.nvram"
	EOF
	# 1 GiB = 2097152 sectors of 512 bytes; 130 cylinders of 255 x 63.
	cat >"$home/$vm.vmdk" <<-EOF
	# Disk DescriptorFile
	version=1
	encoding="UTF-8"
	CID=$(printf '%08x' $((RANDOM * 65536 + RANDOM)))
	parentCID=ffffffff
	createType="vmfs"

	# Extent description
	RW 2097152 VMFS "$vm-flat.vmdk"

	# The Disk Data Base
	#DDB

	ddb.adapterType = "pvscsi"
	ddb.geometry.cylinders = "130"
	ddb.geometry.heads = "255"
	ddb.geometry.sectors = "63"
	ddb.thinProvisioned = "1"
	ddb.virtualHWVersion = "19"
	EOF
	head -c 8192 /dev/urandom >"$home/$vm.nvram"
	truncate -s 1G "$home/$vm-flat.vmdk"
	# Real data: a boot area and a stretch further in; the rest is a hole.
	dd if=/dev/urandom of="$home/$vm-flat.vmdk" bs=1M count=$((data / 2)) conv=notrunc status=none
	dd if=/dev/urandom of="$home/$vm-flat.vmdk" bs=1M seek=512 count=$((data / 2)) conv=notrunc status=none
	cat >"$home/vmware.log" <<-EOF
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - Log for VMware ESX pid=$$ version=8.0.2
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - DICT displayName = "$vm"
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - Disk: $vm.vmdk opened, 2097152 sectors
	EOF
}
make_home vm1 64
make_home vm2 8
run ls -lsh ds1/vm1
run df -hT ds1 ds2

section "2. Mount ds1 with relocfs on $tmp/mnt"
# -f keeps relocfs in the foreground (of this script's background job) so
# that the demo knows its pid; without -f it detaches once mounted.
printf '$ %s\n' "relocfs -f -o state_dir=$tmp/state ds1 mnt &"
"$RELOCFS" -f -o "state_dir=$tmp/state" ds1 mnt 2>relocfs.log &
pid=$!
for _ in $(seq 1 100); do
	is_mounted "$tmp/mnt" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if ! is_mounted "$tmp/mnt"; then
	echo "demo: relocfs did not mount; its output:" >&2
	cat relocfs.log >&2
	exit 1
fi
run findmnt "$tmp/mnt"
ctl status mnt

section "3. A VM at work: a writer keeps mnt/vm1/vm1-flat.vmdk open and writes to it"
# The writer writes patterned 64 KiB blocks at random offsets through one
# descriptor, fsyncs now and then, and keeps a model of the file. Stopped, it
# reads the whole file back through the same descriptor and compares.
cat >writer.py <<'EOF'
import errno, hashlib, os, random, signal, sys, time

path, stop, ready, result = sys.argv[1:5]
BS = 64 * 1024
ZERO = bytes(BS)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

fd = os.open(path, os.O_RDWR)
st = os.fstat(fd)
ino0, size = st.st_ino, st.st_size
nblocks = size // BS
model = {}                      # block number -> its 64 KiB; absent: zeros
off = 0
while off < size:               # the data there is now (holes read as zeros)
    try:
        data = os.lseek(fd, off, os.SEEK_DATA)
    except OSError as ex:
        if ex.errno == errno.ENXIO:
            break
        raise
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    for b in range(data // BS, (hole + BS - 1) // BS):
        blk = os.pread(fd, BS, b * BS).ljust(BS, b"\0")
        if blk != ZERO:
            model[b] = blk
    off = hole
open(ready, "w").close()

rnd = random.Random(1)
writes = errors = 0
while not os.path.exists(stop):
    b = rnd.randrange(nblocks)
    line = (b"vm1 block %08d write %08d" % (b, writes)).ljust(63) + b"\n"
    blk = line * (BS // len(line))
    try:
        os.pwrite(fd, blk, b * BS)
        model[b] = blk
        writes += 1
        if writes % 32 == 0:
            os.fsync(fd)
    except OSError as ex:
        errors += 1
        print("writer: write %d at block %d: %s" % (writes, b, ex), flush=True)
    time.sleep(0.003)

os.fsync(fd)
mismatches = 0
h = hashlib.sha256()
CHUNK = 16                      # blocks per read
if os.fstat(fd).st_size != size:
    mismatches += 1
    print("writer: size is %d, expected %d" % (os.fstat(fd).st_size, size))
for first in range(0, nblocks, CHUNK):
    got = os.pread(fd, CHUNK * BS, first * BS)
    for i in range(CHUNK):
        want = model.get(first + i, ZERO)
        h.update(want)
        if got[i * BS:(i + 1) * BS] != want:
            mismatches += 1
            if mismatches <= 5:
                print("writer: block %d differs from what was written" % (first + i))
same = os.fstat(fd).st_ino == ino0 and os.stat(path).st_ino == ino0
with open(result, "w") as f:
    f.write(h.hexdigest() + "\n")
print("writer: %d writes, %d mismatches, %s" % (
    writes, mismatches + errors, "same inode" if same else "INODE CHANGED"), flush=True)
sys.exit(0 if writes > 0 and mismatches == 0 and errors == 0 and same else 1)
EOF
printf '$ %s\n' "python3 writer.py mnt/vm1/vm1-flat.vmdk ... &"
python3 writer.py mnt/vm1/vm1-flat.vmdk writer.stop writer.ready writer.sum >writer.out 2>&1 &
wpid=$!
for _ in $(seq 1 300); do
	[ -e writer.ready ] && break
	kill -0 "$wpid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -e writer.ready ]; then
	echo "demo: the writer did not start; its output:" >&2
	cat writer.out >&2
	exit 1
fi
sleep 1
echo "writer running (pid $wpid), inode $(stat -c %i mnt/vm1/vm1-flat.vmdk) through the mount"

section "4. Relocate vm1 from ds1 to ds2 while the writer runs"
# --rate 200 limits the background copy to 200 MiB/s; --wait follows the
# relocation to its end (progress on stderr, the summary on stdout).
echo '$ relocctl migrate mnt/vm1 --to ds2 --wait --rate 200'
"$RELOCCTL" migrate mnt/vm1 --to ds2 --wait --rate 200 | tee migrate.out
id=$(head -n 1 migrate.out)

section "5. Where the homes are now"
ctl status mnt
pause=$("$RELOCCTL" status mnt --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
r = [r for r in doc["relocations"] if r["id"] == int(sys.argv[1])][0]
print("%s %s -> %s: %s, cutover pause %.3f ms" % (r["home"], r["from"], r["to"], r["phase"], r["pause_ms"]))
' "$id")
echo "from relocctl status --json: $pause"

section "6. Stop the writer: it reads the file back through the same descriptor"
sleep 1
touch writer.stop
status=0
wait "$wpid" || status=$?
wpid=
cat writer.out
[ "$status" -eq 0 ] || { echo "demo: the writer saw a problem (exit $status)" >&2; exit 1; }

section "7. The datastores: vm1 is on ds2, byte for byte; its source copy is gone"
want=$(cat writer.sum)
got=$(sha256sum ds2/vm1/vm1-flat.vmdk | cut -d' ' -f1)
printf 'sha256 of vm1-flat.vmdk:\n'
printf '  writer model      %s\n' "$want"
printf '  ds2/vm1 (native)  %s\n' "$got"
[ "$want" = "$got" ] || { echo "demo: MISMATCH: ds2/vm1/vm1-flat.vmdk is not what was written" >&2; exit 1; }
if [ -e ds1/vm1 ]; then
	echo "demo: ds1/vm1 is still there" >&2
	exit 1
fi
run ls ds1 ds2
run ls -lsh ds2/vm1
echo "OK: vm1 moved to another filesystem under a busy writer; no error, no stale byte, same inode"

section "8. Unmount and clean up"
run fusermount3 -u mnt
status=0
wait "$pid" || status=$?
pid=
echo "relocfs exited with status $status; its log:"
sed 's/^/  /' relocfs.log
[ "$status" -eq 0 ] || exit 1
umount ds2
umount ds1
cd /
rm -rf "$tmp"
tmp=
echo "removed the demo directory and its mounts; done."
