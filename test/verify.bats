#!/usr/bin/env bats
# Verification: `relocctl migrate --verify` compares the destination with the
# source view by XXH3-128 per chunk before the cutover (a mismatch rolls the
# relocation back), and `relocctl verify PATH --against DIR` compares any two
# copies of a home and names the differing files and byte ranges.
#
# No timing assertions: every wait is a poll with a timeout.

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc

setup_file() { reloc_setup_file; }
teardown_file() { reloc_teardown_file; }
setup() { reloc_setup; }
teardown() { reloc_teardown; }

# two copies A and B of a small tree, natively in the test's tmpdir
make_pair() {
	A=$BATS_TEST_TMPDIR/a
	B=$BATS_TEST_TMPDIR/b
	mkdir -p "$A/sub"
	head -c 3M /dev/urandom >"$A/disk.bin"
	echo "config" >"$A/vm.vmx"
	echo "nested" >"$A/sub/file"
	ln -s vm.vmx "$A/link"
	cp -a -- "$A" "$B"
}

# poke FILE OFFSET BYTES: overwrite BYTES at OFFSET of FILE in place
poke() {
	printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "verify: identical copies exit 0 and say so" {
	make_pair
	run -0 "$RELOCCTL" verify "$A" --against "$B"
	assert_output --regexp '^verify: 6 objects, [0-9]+ bytes compared: none, 0 differ \(the same\)$'
}

@test "verify: names each differing file with exact byte ranges, exit 1" {
	make_pair
	poke "$B/disk.bin" 1048580 XY            # inside the second chunk
	poke "$B/disk.bin" 3000000 Z             # and the third
	echo "other" >"$B/sub/file"
	echo "extra" >"$B/sub/new"
	rm -- "$A/vm.vmx" && echo "config" >"$A/vm.vmx" && chmod 600 "$A/vm.vmx"
	rm -- "$B/link" && ln -s elsewhere "$B/link"
	# the byte values may match by chance: compute what really differs
	local want
	want=$(cmp -l -- "$A/disk.bin" "$B/disk.bin" | awk 'NR==1{f=$1-1} {l=$1-1} END{print f}')
	run -1 "$RELOCCTL" verify "$A" --against "$B"
	assert_line --regexp "^content differs: disk\\.bin: bytes ${want}-"
	assert_line "link text differs: link ('vm.vmx' vs 'elsewhere')"
	assert_line "mode differs: vm.vmx (0600 vs 0644)"
	assert_line "size differs: sub/file (7 vs 6 bytes)"
	assert_line "content differs: sub/file: bytes 0-5"
	assert_line "only in B: sub/new"
	assert_line --regexp '^verify: 6 objects, [0-9]+ bytes compared: 5 differ$'
}

@test "verify: sizes and types that differ, a file against a file" {
	make_pair
	truncate -s 1M "$B/disk.bin"
	rm -r -- "$B/sub" && echo "not a dir" >"$B/sub"
	run -1 "$RELOCCTL" verify "$A" --against "$B"
	assert_line "size differs: disk.bin (3145728 vs 1048576 bytes)"
	assert_line "type differs: sub (directory vs regular file)"
	run -0 "$RELOCCTL" verify "$A/vm.vmx" --against "$B/vm.vmx"
	run -1 "$RELOCCTL" verify "$A/vm.vmx" --against "$B/sub"
	assert_line "size differs: . (7 vs 10 bytes)"
	assert_line "content differs: .: bytes 0-6"
}

@test "verify: a missing tree, usage errors" {
	make_pair
	run -2 "$RELOCCTL" verify "$A" --against "$BATS_TEST_TMPDIR/nope"
	assert_output "relocctl: verify: $BATS_TEST_TMPDIR/nope: No such file or directory"
	run -2 "$RELOCCTL" verify "$A"
	assert_output --partial "usage: relocctl verify PATH --against DIR"
	run -2 "$RELOCCTL" verify --against "$B"
	assert_output --partial "usage: relocctl verify PATH --against DIR"
	run -2 "$RELOCCTL" verify "$A" --against "$B" --bogus
	assert_output --partial "verify: unknown or incomplete option '--bogus'"
}

@test "migrate --verify: a home in use verifies and moves; the mount equals the destination copy" {
	reloc_make_home vm1 8 32
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --size 32M --seed 21 --interval 0.002
	reloc_writer_more disk 30
	reloc_migrate vm1 "$DST" --wait --verify --keep-source
	reloc_writer_more disk 30
	reloc_writer_stop disk
	reloc_assert_model disk "$DST/vm1/disk-flat.vmdk"
	run -0 grep -c "verified" "$RFS_LOG"
	run -0 "$RELOCCTL" verify "$MNT/vm1" --against "$DST/vm1"
	assert_output --partial "none, 0 differ"
	reloc_assert_no_journal
}

@test "migrate --verify: a destination damaged behind relocfs's back fails the relocation, which rolls back" {
	reloc_make_home vm1 8 32
	head -c 2M /dev/urandom >"$SRC/vm1/idle.bin"
	cp -- "$SRC/vm1/idle.bin" "$BATS_TEST_TMPDIR/idle.ref"
	local before
	before=$(reloc_sums "$SRC/vm1")
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --size 32M --seed 22 --interval 0.002
	reloc_migrate vm1 "$DST" --verify --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 120
	# flip bytes of a file nobody writes, on the destination only
	local ref
	ref=$(od -An -tx1 -j 1500000 -N 4 "$BATS_TEST_TMPDIR/idle.ref" | tr -d ' ')
	[ "$ref" != "deadbeef" ] || skip "the reference happens to hold the poison bytes"
	printf '\xde\xad\xbe\xef' | dd of="$DST/vm1/idle.bin" bs=1 seek=1500000 conv=notrunc status=none
	run -0 rctl cutover "$MNT/vm1"
	reloc_wait_phase "$id" failed 120
	reloc_status
	local err
	err=$(rq get "$id" error)
	[[ $err == "verify: idle.bin on "*" differs from the source at byte 15000"[0-9][0-9]* ]] ||
		fail "status error does not name the file and byte: $err"
	reloc_writer_more disk 20
	reloc_writer_stop disk
	# the source is current and whole; the damaged copy is gone
	reloc_assert_home_on vm1 "$SRC"
	reloc_assert_model disk "$SRC/vm1/disk-flat.vmdk"
	cmp -- "$BATS_TEST_TMPDIR/idle.ref" "$MNT/vm1/idle.bin"
	cmp -- "$BATS_TEST_TMPDIR/idle.ref" "$SRC/vm1/idle.bin"
	assert_not_exist "$DST/vm1"
	reloc_assert_no_journal
	[ "$(reloc_sums "$SRC/vm1" | grep -v disk-flat)" = "$(grep -v disk-flat <<<"$before")" ]
}
