#!/usr/bin/env bats
# Inode numbers through relocations (design invariant 1: an application never
# sees a changed inode number because of a relocation), also for objects the
# kernel forgot before or after the cutover, and their uniqueness across the
# datastores behind one mount: two fresh tmpfs number their objects alike, so
# backing numbers collide, and tar, du or rsync -H would take two files for
# hard links of one if the mount showed them as they are.
#
# SRC is a fresh tmpfs, DST a directory on the suite's ext4 image, DST2 a
# second fresh tmpfs (lib/reloc.bash).

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc

setup_file() {
	reloc_setup_file
}

teardown_file() {
	reloc_teardown_file
}

setup() {
	reloc_setup
}

teardown() {
	reloc_teardown
}

# forget_all: the kernel drops every dentry and inode it does not need, so
# relocfs gets a FORGET for everything not open
forget_all() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

# make_objects DIR: one object of every kind, a hard link and 60 small files
make_objects() {
	local d=$1 i
	mkdir -p -- "$d/many" "$d/deep/er/still"
	for i in $(seq 1 60); do
		echo "file $i" >"$d/many/f$i"
	done
	echo linked >"$d/deep/er/still/one"
	ln -- "$d/deep/er/still/one" "$d/deep/two"
	ln -s -- ../many/f1 "$d/deep/sym"
	mkfifo -- "$d/deep/fifo"
}

# assert_unique DIR: no inode number below DIR is shown for more names than
# the object has links (directories count once)
assert_unique() {
	local dup
	dup=$(cd -- "$1" && find . \( -type d -printf '%i 1\n' \) -o \( ! -type d -printf '%i %n\n' \) |
		LC_ALL=C sort | uniq -c | awk '$1 != $3')
	[ -z "$dup" ] || fail "inode numbers shown for more names than links (count number links):
$dup
$(cd -- "$1" && find . -printf '%i %n %p\n' | LC_ALL=C sort -n)"
}

# assert_dino_is_stino DIR: readdir's d_ino equals lstat's st_ino for every
# entry below DIR
assert_dino_is_stino() {
	run python3 - "$1" <<'EOF'
import os, sys
bad = []
for root, dirs, files in os.walk(sys.argv[1]):
    with os.scandir(root) as it:
        for e in it:
            st = os.lstat(e.path)
            if e.inode() != st.st_ino:
                bad.append(f"{e.path}: d_ino {e.inode()} st_ino {st.st_ino}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	[ "$status" = 0 ] || fail "readdir d_ino differs from st_ino: $output"
}

@test "every object keeps its inode number through a relocation, also when the kernel forgot it before and after" {
	reloc_make_home vm1 4 16
	make_objects "$SRC/vm1"
	reloc_mount
	local before after
	before=$(rfs_inodes "$MNT/vm1")
	forget_all

	reloc_migrate vm1 "$DST" --wait
	reloc_assert_home_on vm1 "$DST"
	forget_all
	after=$(rfs_inodes "$MNT/vm1")
	assert_equal "$after" "$before"
	assert_dino_is_stino "$MNT"
	# the two names of the hard link still show one number
	assert_equal "$(stat -c %i "$MNT/vm1/deep/two")" "$(stat -c %i "$MNT/vm1/deep/er/still/one")"
	# and the backing numbers did change: the mount carried them over
	[ "$(stat -c %i "$DST/vm1/many/f1")" != "$(stat -c %i "$MNT/vm1/many/f1")" ] ||
		fail "DST's number equals the source's: this test proves nothing on this machine"
}

@test "objects made during the copy, and the renamed and the removed, keep their numbers through the cutover" {
	reloc_make_home vm1 4 16
	reloc_mount
	reloc_migrate vm1 "$DST" --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 60
	# namespace changes while the home relocates, mirrored to DST
	make_objects "$MNT/vm1"
	mv -- "$MNT/vm1/many/f2" "$MNT/vm1/moved"
	rm -- "$MNT/vm1/many/f3"
	echo "over" >"$MNT/vm1/over"
	mv -f -- "$MNT/vm1/over" "$MNT/vm1/many/f4"
	local before after
	before=$(rfs_inodes "$MNT/vm1")
	forget_all

	run --separate-stderr rctl cutover "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl cutover: exit $status: $stderr"
	reloc_wait_phase "$id" "done" 60
	reloc_assert_home_on vm1 "$DST"
	forget_all
	after=$(rfs_inodes "$MNT/vm1")
	assert_equal "$after" "$before"
	assert_unique "$MNT"
}

@test "numbers stay unique across datastores whose backing numbers collide, there and back" {
	local DST2=$BATS_TEST_TMPDIR/dst2
	rfs_tmpfs "$DST2" 256m
	reloc_make_home vm1 4 16
	reloc_make_home vm2 4 16
	make_objects "$SRC/vm1"
	make_objects "$SRC/vm2"
	reloc_mount
	local vm1_before
	vm1_before=$(rfs_inodes "$MNT/vm1")

	reloc_migrate vm1 "$DST2" --wait
	# the backing numbers of vm1 on DST2 and of vm2 on SRC overlap
	local overlap
	overlap=$(comm -12 <(find "$DST2/vm1" -printf '%i\n' | LC_ALL=C sort -u) \
		<(find "$SRC/vm2" -printf '%i\n' | LC_ALL=C sort -u) | wc -l)
	[ "$overlap" -gt 0 ] || fail "no backing number of DST2 collides with SRC: this test proves nothing"
	forget_all
	assert_equal "$(rfs_inodes "$MNT/vm1")" "$vm1_before"
	assert_unique "$MNT"

	# new objects on both datastores, numbered alike by their filesystems
	make_objects "$MNT/vm1/new"
	make_objects "$MNT/vm2/new"
	assert_unique "$MNT"
	assert_dino_is_stino "$MNT"
	local vm1_mid
	vm1_mid=$(rfs_inodes "$MNT/vm1")

	# and back: every number of vm1, old and new, stays
	reloc_migrate vm1 "$SRC" --wait
	reloc_assert_home_on vm1 "$SRC"
	forget_all
	assert_equal "$(rfs_inodes "$MNT/vm1")" "$vm1_mid"
	make_objects "$MNT/vm1/newer"
	assert_unique "$MNT"
	assert_dino_is_stino "$MNT"
}

# A hard link cannot span two datastores, and the copy would take the number
# of an object the other home still shows: the relocation fails in prepare.
@test "a file or a FIFO hard-linked from another home cannot relocate: it fails, says why, and nothing moves" {
	reloc_make_home vm1 1 4
	mkdir -- "$SRC/vm2"
	reloc_mount
	local kind id
	for kind in file fifo; do
		rm -f -- "$SRC/vm1/shared" "$SRC/vm2/shared"
		if [ "$kind" = file ]; then echo shared >"$SRC/vm1/shared"; else mkfifo -- "$SRC/vm1/shared"; fi
		ln -- "$SRC/vm1/shared" "$SRC/vm2/shared"
		local before
		before=$(rfs_inodes "$MNT")
		run --separate-stderr rctl migrate "$MNT/vm1" --to "$DST" --wait
		[ "$status" = 1 ] || fail "$kind: migrate --wait of a home with a link outside it: exit $status, expected 1: $stderr"
		grep -Eq "^relocctl: relocation [0-9]+( of vm1)? failed and was rolled back: .*hard links? outside the home" <<<"$stderr" ||
			fail "$kind: stderr does not name the link outside the home: $stderr"
		id=${lines[0]}
		reloc_status
		[ "$(rq phase "$id")" = failed ] || fail "$kind: phase $(rq phase "$id"), expected failed: $RELOC_JSON"
		reloc_assert_home_on vm1 "$SRC"
		assert_not_exist "$DST/vm1"
		assert_equal "$(rfs_inodes "$MNT")" "$before"
		assert_equal "$(stat -c %h "$MNT/vm2/shared")" 2
	done
	reloc_assert_no_journal
}
