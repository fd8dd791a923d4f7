#!/usr/bin/env bats
# End-to-end passthrough: whole trees, real tools and workloads (cp -a, tar,
# git, sqlite, fio, mmap, exec, concurrent writers) through a relocfs mount
# of a tmpfs directory, compared with the same on a native tmpfs directory
# or with the backing files. Layout as in lib/posix_cases.bash.

bats_require_minimum_version 1.5.0
load lib/posix_cases

setup_file() { posix_setup_file_tmpfs; }
teardown_file() { posix_teardown_file; }
setup() { posix_setup; }
teardown() { posix_teardown; }

# make_fixture DIR: a small tree with every kind of file and metadata
make_fixture() {
	local d=$1
	mkdir -p -- "$d"
	(
		cd -- "$d"
		mkdir -p a/b/c empty "with space" "ünïcødé" -- "-dash"
		cp -- "$DATA/r10k" a/ten
		cp -- "$DATA/r64k" a/b/sixtyfour
		cp -- "$DATA/r1m" a/b/c/onemeg
		: >a/zero
		printf 'x' >"with space/one byte"
		printf 'ü\n' >"ünïcødé/fïlé"
		printf 'dash\n' >"-dash/-f"
		truncate -s 8M sparse
		dd if="$DATA/r64k" of=sparse bs=4096 count=2 seek=700 conv=notrunc status=none
		ln a/ten hard1
		ln a/ten a/b/hard2
		ln -s a/ten rel_link
		ln -s /etc abs_link
		ln -s nowhere dangling
		mkfifo fifo
		chmod 0640 a/ten
		chmod 4755 a/zero
		chmod 2775 a/b
		chmod 1777 empty
		chown 4242:4343 a/b/sixtyfour
		chown -h 4242:4343 rel_link
		setfattr -n user.color -v blue a/ten
		setfattr -n user.bin -v 0x0001ff a/b
		find . -exec touch -h -d "2004-05-06 07:08:09.123456789" {} +
	)
}

@test "a tree made in SOURCE before mounting shows identically (metadata, data, xattrs, inodes, mtimes)" {
	local pre="$BASE/pre" mnt2="$BATS_TEST_TMPDIR/mnt2"
	make_fixture "$pre"
	rfs_mount "$pre" "$mnt2"
	local d
	d=$(diff -u <(rfs_tree "$pre" times) <(rfs_tree "$mnt2" times)) || fail "backing vs mount:
$d"
	d=$(diff -u <(rfs_inodes "$pre") <(rfs_inodes "$mnt2")) || fail "inodes backing vs mount:
$d"
	# reading the backing files directly above moved their atimes behind
	# the mount's back, where the kernel's cached attributes do not follow
	# until it forgets them
	echo 2 >/proc/sys/vm/drop_caches
	d=$(diff -u <(cd "$pre" && find . -printf '%p %A@ %C@\n' | sort) <(cd "$mnt2" && find . -printf '%p %A@ %C@\n' | sort)) ||
		fail "atime/ctime backing vs mount:
$d"
}

@test "cp -a of a tree into the mount gives what cp -a gives natively" {
	make_fixture "$OUT/fix"
	rfs_both 'cp -a "$OUT/fix" t; echo rc=$?; find t | wc -l'
	rfs_assert_same_tree
}

@test "cp -a of a tree out of the mount is identical to the original" {
	make_fixture "$SRC/fix"
	make_fixture "$REF/fix"
	cp -a -- "$MNT/fix" "$OUT/from_mount"
	cp -a -- "$REF/fix" "$OUT/from_native"
	local d
	d=$(diff -u <(rfs_tree "$OUT/from_native" times) <(rfs_tree "$OUT/from_mount" times)) || fail "$d"
}

@test "tar with xattrs extracts into the mount and archives back byte-identically to native" {
	make_fixture "$OUT/fix"
	rfs_both 'mkdir t; tar --xattrs -C "$OUT/fix" -cf - . | tar --xattrs --xattrs-include="user.*" -C t -xpf -; echo rc=$?
		tar --xattrs --sort=name --pax-option=delete=atime,delete=ctime -C t -cf - . | sha256sum; tar -tvf <(tar --sort=name -C t -cf - .) | sha256sum'
	rfs_assert_same_tree
}

@test "a 64 MiB file streams in and out byte-identically" {
	dd if=/dev/urandom of="$OUT/big" bs=1M count=64 status=none
	dd if="$OUT/big" of="$MNT/big" bs=1M status=none
	cmp -- "$OUT/big" "$SRC/big"
	assert_equal "$(dd if="$MNT/big" bs=1M status=none | sha256sum)" "$(sha256sum <"$OUT/big")"
	assert_equal "$(stat -c %s -- "$MNT/big")" 67108864
}

@test "data written through the mount is in the backing file right after close (no fsync)" {
	cp -- "$DATA/r1m" "$MNT/f"
	cmp -- "$DATA/r1m" "$SRC/f"
	printf 'appended' >>"$MNT/f"
	assert_equal "$(tail -c 8 -- "$SRC/f")" appended
}

@test "fio: 4 jobs of random 4k writes with crc32c verify (psync)" {
	rfs_require_cmd fio
	run fio --name=rw --directory="$MNT" --size=16m --numjobs=4 --rw=randwrite --bs=4k \
		--ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --group_reporting --minimal
	assert_success
	refute_output --partial "verify"
}

@test "fio: O_DIRECT libaio random writes with crc32c verify" {
	rfs_require_cmd fio
	run fio --name=dio --directory="$MNT" --size=16m --numjobs=2 --rw=randwrite --bs=8k \
		--ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --minimal
	assert_success
	refute_output --partial "verify"
}

@test "fio: mmap engine random writes with md5 verify" {
	rfs_require_cmd fio
	run fio --name=mm --directory="$MNT" --size=8m --numjobs=2 --rw=randwrite --bs=4k \
		--ioengine=mmap --verify=md5 --do_verify=1 --verify_fatal=1 --verify_state_save=0 --minimal
	assert_success
	refute_output --partial "verify"
}

@test "8 concurrent writers of different files all land intact" {
	local i
	local -a pids=()
	for i in 1 2 3 4 5 6 7 8; do
		head -c $((300000 + i * 4099)) /dev/urandom >"$OUT/in$i"
	done
	for i in 1 2 3 4 5 6 7 8; do
		timeout 60 dd if="$OUT/in$i" of="$MNT/out$i" bs=$((1000 + i * 517)) status=none 3>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	for i in 1 2 3 4 5 6 7 8; do
		cmp -- "$OUT/in$i" "$MNT/out$i"
		cmp -- "$OUT/in$i" "$SRC/out$i"
	done
}

@test "4 concurrent O_APPEND writers lose and tear no line" {
	local d script='for w in 1 2 3 4; do
			( for i in $(seq 1 500); do echo "writer $w line $i padding-padding-padding" >> log; done ) &
		done; wait
		wc -l < log; sort log | uniq -c | awk "\$1 != 1" | wc -l; grep -vc "^writer [1-4] line [0-9]* padding-padding-padding\$" log'
	rfs_both "$script"
	assert_output "2000
0
0"
}

@test "a shared writable mmap writes through to the backing file" {
	rfs_both 'fsops mmap_write m 1048576; fsops mmap_read m; sha256sum m'
	assert_line "mmap write ok: True"
	rfs_assert_same_tree
}

@test "mmap reads see data written with write()" {
	rfs_both 'cp "$DATA/r1m" f; fsops mmap_read f; sha256sum < "$DATA/r1m"'
	assert_equal "${lines[0]#len=1048576 sha=}" "${lines[1]%% *}"
}

@test "a binary and a script copied into the mount can be executed" {
	cp -- /bin/true "$MNT/true"
	printf '#!/bin/sh\necho script ran "$@"\n' >"$MNT/script"
	chmod 0755 -- "$MNT/script"
	run "$MNT/true"
	assert_success
	run "$MNT/script" ok
	assert_success
	assert_output "script ran ok"
}

@test "sqlite databases (rollback journal and WAL) stay consistent" {
	rfs_both '"$RFS_PY" - <<"EOF"
import sqlite3
for mode in ("delete", "wal"):
    db = sqlite3.connect("db_" + mode)
    db.execute("pragma journal_mode=" + mode)
    db.execute("create table t (k integer primary key, v text)")
    for batch in range(20):
        with db:
            db.executemany("insert into t (v) values (?)", [("row %d %d" % (batch, i) * 3,) for i in range(100)])
    with db:
        db.execute("delete from t where k % 7 = 0")
        db.execute("update t set v = upper(v) where k % 5 = 0")
    print(mode, db.execute("pragma integrity_check").fetchone()[0],
          db.execute("select count(*), sum(length(v)) from t").fetchone())
    db.close()
    db = sqlite3.connect("db_" + mode)
    print(mode, "reopened", db.execute("select count(*) from t").fetchone()[0])
    db.close()
EOF'
	assert_line "delete ok (1715, 43215)"
	assert_line "wal ok (1715, 43215)"
}

@test "git init, add, commit and fsck give the native commit id" {
	rfs_require_cmd git
	make_fixture "$OUT/fix"
	rm -f -- "$OUT/fix/fifo"
	rfs_both 'export HOME="$OUT" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
		export GIT_AUTHOR_DATE="2001-01-01T00:00:00Z" GIT_COMMITTER_DATE="2001-01-01T00:00:00Z"
		# (.git/index caches st_dev/st_ino/ctime, which differ between two dirs: removed at the end)
		git init -q -b main repo && cp -a "$OUT/fix/." repo/ && cd repo && git add -A && git commit -q -m one && git gc -q && git fsck --strict 2>&1 && git rev-parse HEAD && git status --porcelain | wc -l; rm .git/index'
	rfs_assert_same_tree
}

@test "names with spaces, newlines, unicode, dashes, 255 bytes work; 256 bytes give ENAMETOOLONG" {
	rfs_both 'n255=$(printf "%0255d" 7); n256=$(printf "%0256d" 7)
		: > "a b"; : > "$(printf "new\nline")"; : > "ünï ☃"; : > -- "-rf"; : > "$n255"; : > "$n256"; mkdir "$n256"
		ls -b | sha256sum; ls | wc -l; stat -c %s "$n255"'
	rfs_assert_same_tree
}

@test "a 100-level deep directory tree can be made, used and removed" {
	rfs_both 'p=.; for i in $(seq 1 100); do p=$p/d$i; done; mkdir -p "$p"; echo deep > "$p/f"; cat "$p/f"; find . | wc -l; rm -rf d1; ls -A'
	rfs_assert_same_tree
}

@test "3000 small files are created, read and removed" {
	rfs_both 'mkdir s; for i in $(seq 1 3000); do echo "file $i" > s/$i; done; cat s/* | sha256sum; ls s | wc -l; rm -r s; ls -A'
	rfs_assert_same_tree
}

@test "du through the mount equals du of the backing directory" {
	make_fixture "$SRC/fix"
	assert_equal "$(cd "$MNT" && du -s --block-size=1 fix && du -s --apparent-size --block-size=1 fix)" \
		"$(cd "$SRC" && du -s --block-size=1 fix && du -s --apparent-size --block-size=1 fix)"
}

@test "data survives unmount and remount, with the same inode numbers" {
	make_fixture "$MNT/fix"
	local before_tree before_ino
	before_tree=$(rfs_tree "$MNT" times)
	before_ino=$(rfs_inodes "$MNT")
	local pid=$RFS_PID
	fusermount3 -u -- "$MNT"
	rfs_wait_gone "$pid" || fail "relocfs did not exit"
	rfs_mount "$SRC" "$MNT" -o allow_other
	assert_equal "$(rfs_tree "$MNT" times)" "$before_tree"
	assert_equal "$(rfs_inodes "$MNT")" "$before_ino"
}

@test "after a lazy unmount an open file stays readable, and relocfs exits at the last close" {
	cp -- "$DATA/r1m" "$SRC/f"
	local pid=$RFS_PID
	exec 5<"$MNT/f"
	fusermount3 -uz -- "$MNT"
	! rfs_is_mounted "$MNT" || fail "still mounted after fusermount3 -uz"
	assert_equal "$(sha256sum <&5)" "$(sha256sum <"$DATA/r1m")"
	rfs_pid_alive "$pid" || fail "relocfs exited while a file was still open"
	exec 5<&-
	rfs_wait_gone "$pid" || fail "relocfs still running after the last close"
}
