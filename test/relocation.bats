#!/usr/bin/env bats
# Live relocation of homes (relocctl migrate / cutover / abort / status) on
# real mounts: the source datastore is a tmpfs, the destination a directory on
# a loop-mounted ext4 (a different filesystem), a second destination another
# tmpfs. Processes keep files open and in use through the relocations:
# tools/writer.py checks every byte it reads against its own model, the
# inode number, the file position and O_APPEND.
#
# No timing assertions: every wait is a poll with a timeout.

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

# ---------------------------------------------------------------- migrate --wait

@test "migrate --wait moves a home in use: no error, no stale byte, same inode; data on DST, source gone" {
	reloc_make_home vm1 16 64
	reloc_make_home vm2 4 16
	reloc_mount
	local small_before
	small_before=$(reloc_sums_small "$MNT/vm1")

	# a disk written at random offsets, a delta disk that is also truncated
	# and hole-punched, and vmware.log appended through O_APPEND
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --size 256M --seed 11 --interval 0.001
	reloc_writer_start delta "$MNT/vm1/vm1-000001-delta.vmdk" --size 32M --seed 12 --interval 0.002 \
		--ops write,read,fsync,seq,truncate,punch --append "$MNT/vm1/vmware.log" \
		--append-model-out "$BATS_TEST_TMPDIR/log.model"
	reloc_writer_more disk 50
	local inodes_before
	inodes_before=$(rfs_inodes "$MNT/vm1")

	local t_start
	t_start=$(date +%s)
	reloc_migrate vm1 "$DST" --wait --pause-budget 300
	local id=$RELOC_ID summary=${lines[1]:-} nrounds pause_at
	# the summary on stdout, "1 round" but "N rounds"
	[[ $summary =~ ^relocation\ $id\ of\ vm1\ done:\ [0-9.]+\ [KMGT]?i?B\ copied,\ ([0-9]+)\ round(s?),\ cutover\ pause\ [0-9.]+\ ms$ ]] ||
		fail "migrate --wait: unexpected summary line '$summary' (stdout: $output)"
	nrounds=${BASH_REMATCH[1]}
	if [ "$nrounds" = 1 ]; then [ -z "${BASH_REMATCH[2]}" ]; else [ "${BASH_REMATCH[2]}" = s ]; fi ||
		fail "migrate --wait: '$summary': the plural does not match $nrounds"
	# status --json says when the pause started, on the wall clock
	reloc_status
	pause_at=$(rq get "$id" pause_at)
	awk -v p="$pause_at" -v a="$t_start" -v b="$(date +%s)" 'BEGIN { exit !(p >= a && p <= b + 1) }' ||
		fail "pause_at $pause_at is not between the migrate ($t_start) and now: $RELOC_JSON"
	# progress goes to stderr as plain lines when it is not a terminal
	if [[ $RELOC_MIGRATE_ERR == *$'\r'* || $RELOC_MIGRATE_ERR == *$'\e'* ]]; then
		fail "migrate --wait wrote terminal control characters to a non-terminal stderr: $(printf '%q' "$RELOC_MIGRATE_ERR")"
	fi

	# keep writing after the cutover
	reloc_writer_more disk 800
	reloc_writer_more delta 100
	reloc_writer_stop disk
	reloc_writer_stop delta

	# the data is on DST, read natively; the source home is gone
	reloc_assert_model disk "$DST/vm1/disk-flat.vmdk"
	reloc_assert_model delta "$DST/vm1/vm1-000001-delta.vmdk"
	cmp -- "$BATS_TEST_TMPDIR/log.model" "$DST/vm1/vmware.log"
	[ "$(reloc_sums_small "$DST/vm1" | grep -v -e vmware.log -e delta)" = "$(grep -v -e vmware.log <<<"$small_before")" ]
	assert_not_exist "$SRC/vm1"
	reloc_assert_only "$SRC" vm2
	reloc_assert_only "$DST" vm1
	# the mount shows the destination's content, under the same inode numbers
	cmp -- "$DST/vm1/disk-flat.vmdk" "$MNT/vm1/disk-flat.vmdk"
	local d
	d=$(diff <(printf '%s\n' "$inodes_before") <(rfs_inodes "$MNT/vm1")) ||
		fail "$(printf 'inode numbers in the mount changed with the relocation:\n%s' "$d")"

	reloc_assert_valid_status
	[ "$(rq phase "$id")" = "done" ] || fail "relocation $id: phase $(rq phase "$id"), expected done: $RELOC_JSON"
	[ "$(rq get "$id" home)" = vm1 ]
	[ "$(rq get "$id" rounds)" = "$nrounds" ] ||
		fail "the summary said $nrounds rounds, the status $(rq get "$id" rounds): $RELOC_JSON"
	[ "$(readlink -f -- "$(rq get "$id" from)")" = "$(readlink -f -- "$SRC")" ]
	[ "$(readlink -f -- "$(rq get "$id" to)")" = "$(readlink -f -- "$DST")" ]
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_home_on vm2 "$SRC"
	reloc_assert_no_journal
}

@test "status --json names the mount, the source and every home on its datastore" {
	reloc_make_home vm1 4 16
	reloc_make_home vm2 4 16
	mkdir "$SRC/vm3"
	reloc_mount
	reloc_assert_valid_status
	[ "$(rq homes)" = "$(printf '%s\n' "vm1 $SRC" "vm2 $SRC" "vm3 $SRC")" ] ||
		fail "homes: $(rq homes)"
	[ -z "$(rq ids)" ] || fail "relocations listed before any was started: $RELOC_JSON"
	# status of a home path works too
	reloc_status "$MNT/vm2"
	[ "$(rq datastore vm2)" = "$SRC" ]
}

# ---------------------------------------------------------------- manual cutover

@test "--manual-cutover converges and waits in ready; data stays readable and writable; cutover finishes" {
	reloc_make_home vm1 16 64
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 21 --interval 0.001 --append "$MNT/vm1/vmware.log"
	reloc_migrate vm1 "$DST" --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 60

	reloc_assert_valid_status
	[ "$(rq get "$id" home)" = vm1 ]
	[ "$(readlink -f -- "$(rq get "$id" to)")" = "$(readlink -f -- "$DST")" ]
	[ "$(rq get "$id" bytes_total)" -gt 0 ] || fail "bytes_total is not positive at ready: $RELOC_JSON"
	reloc_assert_home_on vm1 "$SRC"

	# it stays in ready while the writer goes on, and the home is usable
	reloc_writer_more disk 200
	[ "$(cat -- "$MNT/vm1/vm1.vmx" | head -n 1)" = 'displayName = "vm1"' ]
	echo "written while ready" >"$MNT/vm1/during-ready.txt"
	mkdir "$MNT/vm1/dir-during-ready"
	[ "$(cat -- "$MNT/vm1/during-ready.txt")" = "written while ready" ]
	reloc_status
	[ "$(rq phase "$id")" = ready ] || fail "left ready without a cutover: $RELOC_JSON"

	run --separate-stderr rctl cutover "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl cutover: exit $status: $stderr"
	reloc_wait_phase "$id" "done" 60
	reloc_writer_more disk 200
	reloc_writer_stop disk

	reloc_assert_model disk "$DST/vm1/disk-flat.vmdk"
	[ "$(cat -- "$DST/vm1/during-ready.txt")" = "written while ready" ]
	assert_dir_exist "$DST/vm1/dir-during-ready"
	assert_not_exist "$SRC/vm1"
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_no_journal
}

# The kernel leaves the dropping of setuid/setgid to relocfs
# (FUSE_HANDLE_KILLPRIV_V2); while the data lives in the journal it must
# still happen, and reach the destination.
@test "in ready, a non-root user's write, truncate and O_TRUNC open clear setuid/setgid; the destination keeps it" {
	reloc_make_home vm1 4 16
	local f
	for f in w t o k; do
		printf 'data of %s\n' "$f" >"$SRC/vm1/$f"
	done
	chmod 6777 "$SRC/vm1/w" "$SRC/vm1/t" "$SRC/vm1/o"
	chmod 2666 "$SRC/vm1/k"
	chmod 755 "$SRC/vm1"
	reloc_mount
	rfs_allow_traverse "$MNT/vm1"
	reloc_migrate vm1 "$DST" --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 60

	rfs_as_user sh -c 'echo more >>"$1/w" && truncate -s 2 "$1/t" && echo new >"$1/o" && echo more >>"$1/k"' _ "$MNT/vm1"
	run stat -c '%n %a %s' -- "$MNT/vm1/w" "$MNT/vm1/t" "$MNT/vm1/o" "$MNT/vm1/k"
	assert_output "$MNT/vm1/w 777 15
$MNT/vm1/t 777 2
$MNT/vm1/o 777 4
$MNT/vm1/k 666 15"

	run --separate-stderr rctl cutover "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl cutover: exit $status: $stderr"
	reloc_wait_phase "$id" "done" 60
	run stat -c '%n %a %s' -- "$DST/vm1/w" "$DST/vm1/t" "$DST/vm1/o" "$DST/vm1/k"
	assert_output "$DST/vm1/w 777 15
$DST/vm1/t 777 2
$DST/vm1/o 777 4
$DST/vm1/k 666 15"
	[ "$(cat -- "$DST/vm1/w")" = "$(printf 'data of w\nmore')" ]
	[ "$(cat -- "$DST/vm1/o")" = new ]
}

@test "in ready, a user's RENAME_WHITEOUT leaves a whiteout of the user's on the source and, after the cutover, on the destination" {
	reloc_make_home vm1 4 16
	mkdir -- "$SRC/vm1/u"
	echo a >"$SRC/vm1/u/a"
	chown -R "$RFS_UID:$RFS_GID" -- "$SRC/vm1/u"
	chmod 755 "$SRC/vm1"
	reloc_mount
	rfs_setup_fsops
	rfs_allow_traverse "$MNT/vm1"
	reloc_migrate vm1 "$DST" --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 60

	run rfs_as_user "$RFS_PY" -S "$RFS_FSOPS" renameat2 "$MNT/vm1/u/a" "$MNT/vm1/u/b" whiteout
	assert_success
	run stat -c '%n %F %u:%g' -- "$MNT/vm1/u/a" "$SRC/vm1/u/a"
	assert_output "$MNT/vm1/u/a character special file $RFS_UID:$RFS_GID
$SRC/vm1/u/a character special file $RFS_UID:$RFS_GID"

	run --separate-stderr rctl cutover "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl cutover: exit $status: $stderr"
	reloc_wait_phase "$id" "done" 60
	run stat -c '%n %F %u:%g' -- "$DST/vm1/u/a" "$DST/vm1/u/b"
	assert_output "$DST/vm1/u/a character special file $RFS_UID:$RFS_GID
$DST/vm1/u/b regular file $RFS_UID:$RFS_GID"
}

# ---------------------------------------------------------------- namespace churn

# The home of mktree.py (a few hundred files: sparse ones, xattrs, hard links,
# symlinks, odd modes, other owners, mtimes in ns) is relocated at 2 MiB/s
# while churn.py renames, unlinks, creates, truncates, punches, chmods,
# chowns, sets xattrs and links in it through the mount. The same rounds are
# applied to a plain copy (cp -a, on a tmpfs like the source). Afterwards the
# destination equals that reference exactly (treecmp.py). Mtimes: churn.py
# stamps every file it changes and, last, every directory with fixed times, so
# file AND directory mtimes are compared (a directory's mtime must survive
# the copy's own entry creation); symlink mtimes are not compared.
@test "namespace churn during the copy: the destination equals a reference tree" {
	"$RFS_PY" "$RELOC_TOOLS/mktree.py" "$SRC/vm1" --big 8
	rfs_tmpfs "$BATS_TEST_TMPDIR/ref" 1g
	local REF=$BATS_TEST_TMPDIR/ref
	cp -a -- "$SRC/vm1" "$REF/vm1"
	run "$RFS_PY" "$RELOC_TOOLS/treecmp.py" "$SRC/vm1" "$REF/vm1"
	[ "$status" = 0 ] || fail "cp -a did not copy the fixture faithfully (test bug): $output"
	reloc_mount

	reloc_migrate vm1 "$DST" --rate 2
	local id=$RELOC_ID r
	reloc_status
	[ "$(rq phase "$id")" = copy ] || [ "$(rq phase "$id")" = prepare ] ||
		fail "relocation $id is in phase $(rq phase "$id") right after start at --rate 2 (is --rate honoured?): $RELOC_JSON"
	for r in 0 1 2; do
		run "$RFS_PY" "$RELOC_TOOLS/churn.py" "$REF/vm1" "$r"
		[ "$status" = 0 ] || fail "churn round $r on the reference failed (test bug): $output"
		run "$RFS_PY" "$RELOC_TOOLS/churn.py" "$MNT/vm1" "$r"
		[ "$status" = 0 ] || fail "churn round $r through the mount failed: $output"
		sleep 0.3
	done
	run "$RFS_PY" "$RELOC_TOOLS/churn.py" "$REF/vm1" stamp
	[ "$status" = 0 ] || fail "stamping the reference failed: $output"
	run "$RFS_PY" "$RELOC_TOOLS/churn.py" "$MNT/vm1" stamp
	[ "$status" = 0 ] || fail "stamping through the mount failed: $output"
	reloc_status
	local churn_phase
	churn_phase=$(rq phase "$id")
	[ "$churn_phase" = copy ] ||
		fail "the copy was over (phase $churn_phase) before the churn ended: the churn did not land during the copy"

	# the mount shows the reference while the relocation runs
	run "$RFS_PY" "$RELOC_TOOLS/treecmp.py" --no-sparse "$REF/vm1" "$MNT/vm1"
	[ "$status" = 0 ] || fail "$(printf 'the mount differs from the reference during the copy:\n%s' "$output")"

	reloc_wait_phase "$id" "done" 90
	run "$RFS_PY" "$RELOC_TOOLS/treecmp.py" "$REF/vm1" "$DST/vm1"
	[ "$status" = 0 ] || fail "$(printf 'the destination differs from the reference:\n%s' "$output")"
	run "$RFS_PY" "$RELOC_TOOLS/treecmp.py" --no-sparse "$REF/vm1" "$MNT/vm1"
	[ "$status" = 0 ] || fail "$(printf 'the mount differs from the reference after the relocation:\n%s' "$output")"
	assert_not_exist "$SRC/vm1"
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_no_journal
}

# The copy slows to relocation.busy_rate_mib while the VM reads its files
# (more than 10 MiB/s), and says so; what it copies is the same.
@test "the copy yields to the application's reads: migrate --wait and status say so, the destination equals the source" {
	reloc_make_home vm1 32 64
	local sums conf=$BATS_TEST_TMPDIR/relocfs.conf n=0 seen="" yield_s
	sums=$(reloc_sums "$SRC/vm1")
	printf 'relocation = {\n  busy_rate_mib = 1;\n};\n' >"$conf"
	rfs_mount "$SRC" "$MNT" -o "allow_other,state_dir=$STATE,config=$conf"

	reloc_migrate_bg m1 vm1 "$DST" --rate 4
	local id=$RELOC_ID
	reloc_wait_phase "$id" copy 30
	reloc_status
	[ "$(rq get "$id" yielding)" = false ] || fail "the copy yields before anything read: $RELOC_JSON"
	# O_DIRECT reads reach the daemon every time, not the page cache
	while [ "$n" -lt 300 ]; do
		dd if="$MNT/vm1/disk-flat.vmdk" of=/dev/null bs=1M count=16 iflag=direct status=none ||
			fail "reading the disk through the mount during the copy failed"
		reloc_status
		[ "$(rq phase "$id")" = copy ] || break
		if [ "$(rq get "$id" yielding)" = true ]; then
			seen=1
			break
		fi
		n=$((n + 1))
	done
	[ -n "$seen" ] || fail "the copy never yielded to reads (phase $(rq phase "$id")): $RELOC_JSON"
	# keep reading until migrate --wait has shown it, then let the copy go
	n=0
	until grep -q "copy (yielding to reads)" -- "$BATS_TEST_TMPDIR/bgmigrate.m1.err" || [ "$n" -ge 300 ]; do
		dd if="$MNT/vm1/disk-flat.vmdk" of=/dev/null bs=1M count=16 iflag=direct status=none
		n=$((n + 1))
	done
	reloc_migrate_bg_wait m1 120
	[ "$status" = 0 ] || fail "migrate --wait: exit $status; stderr: $stderr"
	[[ $stderr == *"relocation $id of vm1: copy (yielding to reads), "* ]] ||
		fail "migrate --wait never showed the copy yielding: $stderr"
	reloc_status
	[ "$(rq phase "$id")" = done ]
	[ "$(rq get "$id" yielding)" = false ] || fail "a finished relocation still yields: $RELOC_JSON"
	yield_s=$(rq get "$id" yield_s)
	awk -v s="$yield_s" 'BEGIN { exit !(s > 0) }' || fail "yield_s is $yield_s after a yield: $RELOC_JSON"
	reloc_assert_valid_status
	grep -q "relocation $id: the copy took [0-9.]* s, [0-9.]* s of it at 1 MiB/s while the application read its files" -- "$RFS_LOG" ||
		fail "the log does not say how long the copy yielded: $(cat -- "$RFS_LOG")"
	[ "$(reloc_sums "$DST/vm1")" = "$sums" ] || fail "the destination differs from the source"
	reloc_assert_home_on vm1 "$DST"
}

# ---------------------------------------------------------------- abort

@test "abort during the copy: the writer is unharmed, the source is current, the destination copy and the journal are gone" {
	reloc_make_home vm1 32 64
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 31 --interval 0.001 \
		--ops write,read,fsync,seq,truncate,punch --append "$MNT/vm1/vmware.log" \
		--append-model-out "$BATS_TEST_TMPDIR/log.model"
	reloc_migrate vm1 "$DST" --rate 1
	local id=$RELOC_ID
	reloc_wait_phase "$id" copy 30
	reloc_writer_more disk 300
	reloc_status
	[ "$(rq phase "$id")" = copy ] || fail "expected the relocation still copying at 1 MiB/s: $RELOC_JSON"

	run --separate-stderr rctl abort "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl abort: exit $status: $stderr"
	reloc_wait_phase "$id" aborted 60
	reloc_writer_more disk 200
	reloc_writer_stop disk

	reloc_assert_model disk "$SRC/vm1/disk-flat.vmdk"
	cmp -- "$BATS_TEST_TMPDIR/log.model" "$SRC/vm1/vmware.log"
	assert_not_exist "$DST/vm1"
	reloc_assert_only "$DST"
	reloc_assert_no_journal
	reloc_assert_home_on vm1 "$SRC"

	# the home is back to normal: writes land in the source, and it can be
	# relocated again
	echo after-abort >"$MNT/vm1/after-abort"
	[ "$(cat -- "$SRC/vm1/after-abort")" = after-abort ]
	reloc_migrate vm1 "$DST" --wait
	[ "$(cat -- "$DST/vm1/after-abort")" = after-abort ]
	reloc_assert_model disk "$DST/vm1/disk-flat.vmdk"
	assert_not_exist "$SRC/vm1"
}

@test "abort in ready (--manual-cutover): migrate --wait reports the abort, the source is current, the destination is gone" {
	reloc_make_home vm1 16 64
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 41 --interval 0.001 \
		--ops write,read,fsync,seq,truncate,punch
	reloc_migrate_bg m1 vm1 "$DST" --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" ready 60
	reloc_writer_more disk 300

	run --separate-stderr rctl abort "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl abort: exit $status: $stderr"
	reloc_wait_phase "$id" aborted 60

	reloc_migrate_bg_wait m1 60
	[ "$status" = 1 ] || fail "migrate --wait of an aborted relocation: exit $status, expected 1; stderr: $stderr"
	grep -Eq "^relocctl: relocation $id( of vm1)? was aborted" <<<"$stderr" ||
		fail "migrate --wait stderr lacks 'relocctl: relocation $id was aborted': $stderr"

	reloc_writer_more disk 200
	reloc_writer_stop disk
	reloc_assert_model disk "$SRC/vm1/disk-flat.vmdk"
	assert_not_exist "$DST/vm1"
	reloc_assert_only "$DST"
	reloc_assert_no_journal
	reloc_assert_home_on vm1 "$SRC"
}

# A destination fault (it fills up during the copy, after the free-space check
# passed) abandons the relocation: migrate --wait says it failed and was rolled
# back, the source is current with nothing lost.
@test "a destination that fills up during the copy: the relocation fails and rolls back" {
	reloc_make_home vm1 16 64
	local DST2=$BATS_TEST_TMPDIR/dst2
	rfs_tmpfs "$DST2" 40m
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 81 --interval 0.001 --append "$MNT/vm1/vmware.log" \
		--append-model-out "$BATS_TEST_TMPDIR/log.model"
	reloc_migrate_bg m1 vm1 "$DST2" --rate 4
	local id=$RELOC_ID
	reloc_wait_phase "$id" copy 30
	# leave about 8 MiB: less than the home needs
	head -c 32M /dev/zero >"$DST2/filler" 2>/dev/null || true

	reloc_migrate_bg_wait m1 90
	[ "$status" = 1 ] || fail "migrate --wait onto a full destination: exit $status, expected 1; stderr: $stderr"
	grep -Eq "^relocctl: relocation $id( of vm1)? failed and was rolled back: .+" <<<"$stderr" ||
		fail "migrate --wait stderr lacks 'relocctl: relocation $id failed and was rolled back: REASON': $stderr"
	reloc_status
	[ "$(rq phase "$id")" = failed ] || fail "relocation $id: phase $(rq phase "$id"), expected failed: $RELOC_JSON"
	[ -n "$(rq get "$id" error)" ] || fail "relocation $id failed without an error text: $RELOC_JSON"

	reloc_writer_more disk 200
	reloc_writer_stop disk
	reloc_assert_model disk "$SRC/vm1/disk-flat.vmdk"
	cmp -- "$BATS_TEST_TMPDIR/log.model" "$SRC/vm1/vmware.log"
	assert_not_exist "$DST2/vm1"
	reloc_assert_only "$DST2" filler
	reloc_assert_no_journal
	reloc_assert_home_on vm1 "$SRC"
}

# ---------------------------------------------------------------- concurrency

@test "two homes relocate to the same datastore at once" {
	reloc_make_home vm1 16 64
	reloc_make_home vm2 16 64
	reloc_make_home vm3 4 16
	reloc_mount
	reloc_writer_start w1 "$MNT/vm1/disk-flat.vmdk" --seed 51 --interval 0.002
	reloc_writer_start w2 "$MNT/vm2/disk-flat.vmdk" --seed 52 --interval 0.002 --append "$MNT/vm2/vmware.log"
	reloc_migrate vm1 "$DST" --rate 8 --pause-budget 200
	local id1=$RELOC_ID
	reloc_migrate vm2 "$DST" --rate 8
	local id2=$RELOC_ID
	[ "$id1" != "$id2" ] || fail "both relocations got id $id1"
	reloc_status
	local active
	active=$(rq active | tr '\n' ' ')
	[[ " $active " == *" $id1 "* && " $active " == *" $id2 "* ]] ||
		fail "expected both $id1 and $id2 in progress at once, active: '$active': $RELOC_JSON"

	reloc_wait_phase "$id1" "done" 90
	reloc_wait_phase "$id2" "done" 90
	reloc_writer_more w1 100
	reloc_writer_more w2 100
	reloc_writer_stop w1
	reloc_writer_stop w2
	reloc_assert_model w1 "$DST/vm1/disk-flat.vmdk"
	reloc_assert_model w2 "$DST/vm2/disk-flat.vmdk"
	reloc_assert_only "$SRC" vm3
	reloc_assert_only "$DST" vm1 vm2
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_home_on vm2 "$DST"
	reloc_assert_home_on vm3 "$SRC"
	reloc_assert_no_journal
}

# ---------------------------------------------------------------- again

@test "a home relocates there and back (SRC -> DST -> SRC) while in use" {
	reloc_make_home vm1 16 64
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 61 --interval 0.001 --append "$MNT/vm1/vmware.log"
	reloc_migrate vm1 "$DST" --wait
	assert_not_exist "$SRC/vm1"
	reloc_assert_home_on vm1 "$DST"
	reloc_writer_more disk 200
	reloc_migrate vm1 "$SRC" --wait
	local id=$RELOC_ID
	reloc_writer_more disk 200
	reloc_writer_stop disk

	reloc_assert_model disk "$SRC/vm1/disk-flat.vmdk"
	assert_not_exist "$DST/vm1"
	reloc_assert_only "$DST"
	reloc_assert_home_on vm1 "$SRC"
	reloc_status
	[ "$(readlink -f -- "$(rq get "$id" from)")" = "$(readlink -f -- "$DST")" ]
	[ "$(readlink -f -- "$(rq get "$id" to)")" = "$(readlink -f -- "$SRC")" ]
	reloc_assert_no_journal
}

@test "a home relocates onward to a third datastore (SRC -> DST -> DST2) while in use" {
	reloc_make_home vm1 16 64
	local DST2=$BATS_TEST_TMPDIR/dst2
	rfs_tmpfs "$DST2" 1g
	reloc_mount
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --seed 71 --interval 0.001 \
		--ops write,read,fsync,seq,truncate,punch --append "$MNT/vm1/vmware.log"
	reloc_migrate vm1 "$DST" --wait
	reloc_writer_more disk 200
	reloc_migrate vm1 "$DST2" --wait
	reloc_writer_more disk 200
	reloc_writer_stop disk

	reloc_assert_model disk "$DST2/vm1/disk-flat.vmdk"
	assert_not_exist "$SRC/vm1"
	assert_not_exist "$DST/vm1"
	reloc_assert_only "$DST2" vm1
	reloc_assert_home_on vm1 "$DST2"
	reloc_assert_no_journal
}

# ---------------------------------------------------------------- persistence

@test "placement persists across unmount and mount; the home can be relocated again afterwards" {
	reloc_make_home vm1 8 32
	reloc_make_home vm2 4 16
	reloc_mount
	reloc_migrate vm1 "$DST" --wait
	echo "after the relocation" >"$MNT/vm1/marker"
	local sums
	sums=$(reloc_sums "$MNT/vm1")
	[ "$sums" = "$(reloc_sums "$DST/vm1")" ]

	reloc_umount
	reloc_mount
	[ "$(reloc_sums "$MNT/vm1")" = "$sums" ] || fail "after remount the home does not show the destination's content"
	[ "$(cat -- "$MNT/vm1/marker")" = "after the relocation" ]
	assert_not_exist "$SRC/vm1"
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_home_on vm2 "$SRC"
	echo "after the remount" >"$MNT/vm1/marker2"
	[ "$(cat -- "$DST/vm1/marker2")" = "after the remount" ]
	assert_not_exist "$SRC/vm1"

	reloc_migrate vm1 "$SRC" --wait
	[ "$(cat -- "$SRC/vm1/marker2")" = "after the remount" ]
	assert_not_exist "$DST/vm1"
	reloc_assert_home_on vm1 "$SRC"
}

@test "--keep-source leaves the source home in place; the mount serves the destination" {
	reloc_make_home vm1 8 32
	local before
	before=$(reloc_sums "$SRC/vm1")
	reloc_mount
	reloc_migrate vm1 "$DST" --wait --keep-source
	assert_dir_exist "$SRC/vm1"
	[ "$(reloc_sums "$SRC/vm1")" = "$before" ] || fail "the kept source home changed"
	[ "$(reloc_sums "$DST/vm1")" = "$before" ] || fail "the destination differs from the source"
	reloc_assert_home_on vm1 "$DST"

	echo "new" >"$MNT/vm1/new-file"
	[ "$(cat -- "$DST/vm1/new-file")" = new ]
	assert_not_exist "$SRC/vm1/new-file"
	# the kept copy blocks a relocation back
	reloc_refused 1 "already has an entry named" migrate "$MNT/vm1" --to "$SRC"
}

# The background copy runs behind the VM's I/O: its threads at nice 10 and at
# the lowest best-effort I/O priority, the daemon's other threads untouched.
@test "the copy threads run at nice 10 and best-effort I/O priority 7; the others at the daemon's" {
	reloc_make_home vm1 16 64
	reloc_mount
	reloc_migrate vm1 "$DST" --rate 4 --manual-cutover
	local id=$RELOC_ID
	reloc_wait_phase "$id" copy 30
	local t nice copiers=0 others=0 prio
	for t in /proc/"$RFS_PID"/task/*; do
		nice=$(awk '{ sub(/^.*\) /, ""); print $17 }' "$t/stat")
		if [ "$nice" = 10 ]; then
			copiers=$((copiers + 1))
			prio=$(ionice -p "${t##*/}")
			[ "$prio" = "best-effort: prio 7" ] || fail "copy thread ${t##*/}: I/O priority '$prio'"
		else
			[ "$nice" = 0 ] || fail "thread ${t##*/} of relocfs at nice $nice"
			others=$((others + 1))
		fi
	done
	[ "$copiers" -ge 1 ] || fail "no relocfs thread at nice 10 during the copy (phase $(rq phase "$id"))"
	[ "$others" -ge 2 ] || fail "only $others threads of relocfs at nice 0"
	run --separate-stderr rctl abort "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl abort: exit $status: $stderr"
	reloc_wait_phase "$id" aborted 60
}

@test "O_DIRECT writers of one disk reach relocfs side by side (FOPEN_PARALLEL_DIRECT_WRITES): two wait together in the cutover pause, and both writes land" {
	local hold=$BATS_TEST_TMPDIR/hold go=$BATS_TEST_TMPDIR/go from n=0 pa pb
	local -a RFS_LAUNCHER=(env "RELOCFS_FAILPOINT_HOLD=cutover-applied:$hold")
	reloc_make_home vm1 4 16
	rfs_mount "$SRC" "$MNT" -d -o "allow_other,state_dir=$STATE"
	grep -q "FUSE_DIRECT_IO_ALLOW_MMAP added" "$RFS_LOG" ||
		skip "this kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP with protocol 7.40 (Linux 6.9)"
	# each writer opens the disk now (an open would wait in the pause too),
	# then writes one block with O_DIRECT once told to
	local script='
import mmap, os, sys, time
path, off, ch, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
buf[:] = ch.encode() * 4096
open(go + "." + ch, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
os.pwritev(fd, [buf], off)
os.close(fd)
print("wrote", ch)'
	"$RFS_PY" -c "$script" "$MNT/vm1/disk-flat.vmdk" 1048576 a "$go" >"$BATS_TEST_TMPDIR/a.out" 2>&1 &
	pa=$!
	_rfs_register pid "$pa"
	"$RFS_PY" -c "$script" "$MNT/vm1/disk-flat.vmdk" 5242880 b "$go" >"$BATS_TEST_TMPDIR/b.out" 2>&1 &
	pb=$!
	_rfs_register pid "$pb"
	rfs_wait_file "$go.a" 30
	rfs_wait_file "$go.b" 30
	reloc_migrate vm1 "$DST" --manual-cutover
	reloc_wait_phase "$RELOC_ID" ready
	run -0 rctl cutover "$MNT/vm1"
	rfs_wait_file "$hold" 60
	from=$(($(stat -c %s "$RFS_LOG") + 1))
	touch -- "$go"
	# both WRITE requests reach relocfs while the pause holds the home; with
	# the inode lock taken exclusively the second would wait in the kernel
	until [ "$(tail -c "+$from" -- "$RFS_LOG" | grep -c "opcode: WRITE")" -ge 2 ]; do
		n=$((n + 1))
		[ "$n" -lt 200 ] || {
			rm -f -- "$hold"
			fail "$(tail -c "+$from" -- "$RFS_LOG" | grep -c "opcode: WRITE") WRITE request(s) reached relocfs in 20 s of the pause, expected 2"
		}
		sleep 0.1
	done
	rm -f -- "$hold"
	wait "$pa" || fail "writer a: $(cat "$BATS_TEST_TMPDIR/a.out")"
	wait "$pb" || fail "writer b: $(cat "$BATS_TEST_TMPDIR/b.out")"
	reloc_wait_phase "$RELOC_ID" done 60
	reloc_assert_home_on vm1 "$DST"
	assert_equal "$(dd if="$MNT/vm1/disk-flat.vmdk" bs=4096 skip=256 count=1 status=none | tr -d a | wc -c)" 0
	assert_equal "$(dd if="$MNT/vm1/disk-flat.vmdk" bs=4096 skip=1280 count=1 status=none | tr -d b | wc -c)" 0
	assert_equal "$(dd if="$DST/vm1/disk-flat.vmdk" bs=4096 skip=256 count=1 status=none | tr -d a | wc -c)" 0
	assert_equal "$(dd if="$DST/vm1/disk-flat.vmdk" bs=4096 skip=1280 count=1 status=none | tr -d b | wc -c)" 0
}
