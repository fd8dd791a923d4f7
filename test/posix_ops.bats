#!/usr/bin/env bats
# POSIX operations through a relocfs mount of a tmpfs directory, each compared
# with the same operation on a native tmpfs directory (see lib/posix_cases.bash).

load lib/posix_cases

setup_file() { posix_setup_file_tmpfs; }
teardown_file() { posix_teardown_file; }
setup() { posix_setup; }
teardown() { posix_teardown; }

@test "stat through the mount equals stat of the backing files (type, size, mode, owner, nlink, ino, blocks, times)" {
	case_stat_of_native_files_matches_backing
}

@test "lookup of missing names gives the native ENOENT/ENOTDIR messages" {
	case_stat_missing_gives_same_errors
}

@test "st_ino through the mount equals st_ino of every backing file" {
	case_ino_matches_backing
}

@test "st_ino stays the same after the kernel forgets the inodes (drop_caches)" {
	case_ino_stable_after_cache_drop
}

@test "st_ino is unchanged by rename within and across directories" {
	case_ino_stable_across_rename
}

@test "the mount root shows the SOURCE root's mode, owner, mtime and inode" {
	case_mount_root_matches_source_root
}

@test "chmod of a file to each mode incl. setuid/setgid/sticky gives the native mode" {
	case_chmod_file_modes
}

@test "chmod of a directory to each mode incl. setgid/sticky gives the native mode" {
	case_chmod_dir_modes
}

@test "chmod through a symlink changes the target, not the link" {
	case_chmod_through_symlink_changes_target
}

@test "chown/chgrp of files and chown -R of a tree set the native owners" {
	case_chown_owner_and_group
}

@test "chown -h on a symlink changes the link owner, not the target" {
	case_chown_h_changes_link_not_target
}

@test "chown clears setuid/setgid of files like native, keeps setgid of directories" {
	case_chown_clears_setuid_setgid
}

@test "chown/chgrp by the owner clears setuid/setgid of files like native, keeps setgid of directories" {
	case_chown_by_owner_clears_setuid_setgid
}

@test "a user in more than 64 groups keeps all of them: creates in a group-only setgid dir, chmod g+s and writes keep setgid" {
	case_user_in_more_than_64_groups
}

@test "truncate grow/shrink gives native sizes and contents" {
	case_truncate_grow_and_shrink
}

@test "truncate errors (missing, directory, ENOTDIR) match native" {
	case_truncate_errors
}

@test "ftruncate on an open fd gives native sizes and contents" {
	case_ftruncate_on_open_fd
}

@test "O_TRUNC and shell > truncate an existing file to 0" {
	case_o_trunc_empties_file
}

@test "close(2) on a filesystem whose close reports nothing sends no FLUSH request (FOPEN_NOFLUSH)" {
	case_close_sends_no_flush
}

@test "touch -d / -a -d / -m -d set exact ns times, also pre-1970 and post-2038" {
	case_touch_sets_explicit_times
}

@test "touch -a (UTIME_NOW atime, UTIME_OMIT mtime) keeps the mtime" {
	case_touch_a_now_omits_mtime
}

@test "touch -m (UTIME_NOW mtime, UTIME_OMIT atime) keeps the atime" {
	case_touch_m_now_omits_atime
}

@test "utimensat with odd and negative nanosecond values round-trips exactly" {
	case_utimensat_exact_nanoseconds
}

@test "touch -h sets the symlink's times and leaves the target alone" {
	case_touch_h_sets_symlink_times_only
}

@test "a write through the mount updates mtime and ctime" {
	case_write_updates_mtime_and_ctime
}

@test "readdir of 1500 entries lists the same names, types and attributes as native" {
	case_readdir_many_entries
}

@test "readdir with 300 names of 250 bytes matches native" {
	case_readdir_long_names
}

@test "readdir d_type of every file type and d_ino == st_ino match native" {
	case_readdir_types_and_d_ino
}

@test "readdir order and d_ino through the mount equal the backing directory's" {
	case_readdir_order_and_d_ino_match_backing
}

@test "readdir of an empty directory gives only . and .." {
	case_readdir_empty_dir
}

@test "readdir reflects creates, unlinks and renames at once" {
	case_readdir_after_changes
}

@test "create/mkdir modes follow the umask like native (incl. setuid create mode)" {
	case_create_mode_respects_umask
}

@test "create/mkdir/mkfifo beneath a default ACL ignore the umask like native, elsewhere apply it (root and user)" {
	case_create_mode_default_acl_ignores_umask
}

@test "O_CREAT|O_EXCL fails with EEXIST on files and dangling symlinks, creates otherwise" {
	case_open_o_excl
}

@test "open errors (O_NOFOLLOW ELOOP, O_DIRECTORY ENOTDIR, EISDIR, ENOENT) match native" {
	case_open_flag_errors
}

@test "O_DIRECT writes and reads give the native contents" {
	case_o_direct_write_and_read
}

@test "O_DIRECT and buffered I/O on one file see each other's data" {
	case_o_direct_and_buffered_io_are_coherent
}

@test "O_DIRECT beside cached pages, a shared mapping and 16 parallel O_DIRECT writers gives the native results" {
	case_o_direct_beside_cache_mappings_and_parallel_writers
}

@test "O_APPEND writes (incl. pwrite at 0) append like native" {
	case_o_append
}

@test "O_SYNC and O_DSYNC writes give the native contents" {
	case_o_sync_and_o_dsync_writes
}

@test "a 5 MiB file written and read back is byte-identical" {
	case_write_read_5m
}

@test "overwrites with odd block sizes and offsets give native contents" {
	case_write_read_odd_block_sizes
}

@test "pread at, across and past EOF returns what native returns" {
	case_read_at_and_past_eof
}

@test "pwrite beyond 4 GiB gives the native size and data" {
	case_write_beyond_4gib
}

@test "one 1 MiB write() is written completely" {
	case_single_1mib_write
}

@test "files of 0, 1, 4095..131073 bytes round-trip exactly" {
	case_boundary_file_sizes
}

@test "data written on one fd is seen at once by another open" {
	case_write_visible_to_other_fd
}

@test "fsync, fdatasync, directory fsync and syncfs succeed" {
	case_fsync_fdatasync_syncfs
}

@test "rename of a file keeps its inode and data" {
	case_rename_file_keeps_inode_and_data
}

@test "rename between a top-level entry and a top-level directory works like native (same inode, no EXDEV)" {
	case_rename_between_top_level_and_subdir
}

@test "rename over an existing file replaces it and drops its link count" {
	case_rename_replaces_existing_file
}

@test "rename of directories, over an empty one, ENOTEMPTY, EINVAL into itself, ENOENT" {
	case_rename_directories
}

@test "rename file over dir (EISDIR) and dir over file (ENOTDIR) match native" {
	case_rename_type_mismatch_errors
}

@test "rename between two links of one inode is a no-op" {
	case_rename_between_hardlinks_is_noop
}

@test "renameat2 RENAME_NOREPLACE fails with EEXIST on an existing target" {
	case_rename_noreplace
}

@test "renameat2 RENAME_EXCHANGE swaps a file and a directory atomically" {
	case_rename_exchange
}

@test "renameat2 RENAME_WHITEOUT by a user: the whiteout is the caller's (the setgid dir's group), like native" {
	case_rename_whiteout_owner
}

@test "an open fd keeps working after its file is renamed" {
	case_rename_open_file_keeps_fd
}

@test "an open fd still reads the old file after another is renamed over it" {
	case_rename_over_open_file
}

@test "unlink and its errors (ENOENT, EISDIR, ENOTDIR) match native" {
	case_unlink_errors
}

@test "rm -rf of a tree with files, links and fifos leaves nothing" {
	case_rm_rf_tree
}

@test "mkdir modes, link counts and errors (EEXIST, ENOTDIR, ENOENT) match native" {
	case_mkdir_modes_and_errors
}

@test "rmdir errors (ENOTEMPTY, ENOENT, ENOTDIR, EINVAL) and parent link counts match native" {
	case_rmdir_errors_and_link_counts
}

@test "symlink and readlink of relative, absolute, dangling and long targets match native" {
	case_symlink_and_readlink
}

@test "symlink loops give ELOOP, 4095-byte targets work, 4096 give ENAMETOOLONG" {
	case_symlink_loops_and_max_length
}

@test "hard links share st_ino and data, nlink counts up and down" {
	case_hardlink_shares_inode_and_counts
}

@test "link errors (dir EPERM, EEXIST, ENOENT) match native" {
	case_hardlink_errors
}

@test "a hard link to a symlink links the symlink itself" {
	case_hardlink_to_symlink
}

@test "mkfifo creates a fifo that carries data" {
	case_mkfifo_and_data_through_it
}

@test "mknod creates character and block device nodes with the native numbers" {
	case_mknod_devices
}

@test "bind of a unix socket creates a socket node" {
	case_unix_socket_bind
}

@test "statfs (stat -f) totals equal those of the backing file system" {
	case_statfs_matches_backing_fs
}

@test "statfs free counts equal the backing's before and after a 16 MiB write" {
	case_statfs_free_space_follows_writes
}

@test "user.* xattrs set, get, list and remove like native" {
	case_xattr_set_get_list_remove
}

@test "setxattr XATTR_CREATE/XATTR_REPLACE give EEXIST/ENODATA like native" {
	case_xattr_create_and_replace_flags
}

@test "40 xattrs list completely and a 3000-byte value round-trips" {
	case_xattr_many_and_large_values
}

@test "xattrs on a directory round-trip" {
	case_xattr_on_directory
}

@test "user.* xattrs on a symlink fail with EPERM, through it they land on the target" {
	case_xattr_user_on_symlink_not_permitted
}

@test "trusted.* xattrs round-trip for root" {
	case_xattr_trusted_namespace_as_root
}

@test "xattr calls on missing names and attributes fail like native" {
	case_xattr_errors_on_missing_file
}

@test "setfacl by the owner outside the file's group drops setgid like native; in it, keeps it" {
	case_acl_set_by_owner_outside_group_drops_setgid
}

@test "listxattr hides trusted.* from a user like native (list and size probe), shows it to root" {
	case_xattr_trusted_hidden_from_users_in_list
}

@test "trusted.* and security.* xattrs of a symlink itself by root work like native, the target untouched" {
	case_xattr_trusted_security_on_symlink_as_root
}

@test "fallocate -l allocates like native, st_blocks equal the backing file's" {
	case_fallocate_allocates
}

@test "fallocate -n (KEEP_SIZE) allocates past EOF without growing the file" {
	case_fallocate_keep_size
}

@test "fallocate -p punches a hole: zeros, fewer blocks, same size" {
	case_fallocate_punch_hole
}

@test "fallocate -z (ZERO_RANGE) behaves like native" {
	case_fallocate_zero_range
}

@test "SEEK_DATA/SEEK_HOLE report the native data/hole map and ENXIO" {
	case_seek_data_and_hole
}

@test "cp --sparse=always from the mount gives a copy as sparse as from native" {
	case_cp_sparse_from_mount_stays_sparse
}

@test "cp --sparse=always into the mount keeps the holes (st_blocks == backing)" {
	case_cp_sparse_into_mount_stays_sparse
}

@test "copy_file_range copies a whole file exactly" {
	case_copy_file_range_whole_file
}

@test "copy_file_range with offsets, past EOF, overlapping (EINVAL) and on a dir matches native" {
	case_copy_file_range_offsets_and_errors
}

@test "flock -x held by one process blocks -x and -s of another until released" {
	case_flock_exclusive_conflict
}

@test "flock -s held by one process allows -s and blocks -x of another" {
	case_flock_shared_locks_coexist
}

@test "POSIX fcntl locks conflict across processes by range, F_GETLK names the holder" {
	case_fcntl_lock_conflict
}

@test "an unlinked open file keeps reading, writing, ftruncate and fchmod" {
	case_unlinked_open_file_keeps_working
}

@test "an unlinked open file keeps its data for shell fds and leaves nothing behind" {
	case_unlinked_open_file_shell_fds
}

@test "a non-root user gets EACCES where the modes say so" {
	case_user_gets_eacces
}

@test "a non-root user gets EPERM for chmod/chown/explicit times on others' files" {
	case_user_gets_eperm_on_chmod_chown_utimes
}

@test "a sticky directory stops a non-root user removing others' files" {
	case_user_sticky_dir_protects_others_files
}

@test "files a non-root user creates are owned by the user's uid/gid in the backing dir" {
	case_user_creates_files_owned_by_user
}

@test "a non-root user may chmod/touch/xattr own files but not give them away" {
	case_user_own_file_chmod_chown_utimes
}

@test "a write by a non-root user clears setuid/setgid like native" {
	case_user_write_clears_setuid_setgid
}

@test "an O_TRUNC open by a non-root user clears setuid/setgid like native" {
	case_user_truncating_open_clears_setuid_setgid
}

@test "a write or truncate by root keeps setuid/setgid like native" {
	case_root_write_keeps_setuid_setgid
}

@test "a write or truncate drops a file capability like native, also one set after earlier writes" {
	case_write_drops_file_capability
}

@test "fallocate and copy_file_range by a non-root user clear setuid/setgid like native" {
	case_user_fallocate_copy_range_clear_setuid_setgid
}

@test "a non-root user's files in a setgid directory get its group, umask applies" {
	case_user_setgid_dir_and_umask
}

@test "access(2) for a non-root user matches the modes, exec of an unreadable file fails" {
	case_user_access_checks
}

@test "new files in a setgid directory get the directory's group, subdirs keep setgid" {
	case_root_setgid_dir_inherits_group
}

@test "a symlink to /etc inside SOURCE shows as a symlink with target /etc" {
	case_symlink_to_etc_shows_as_symlink
}

@test "chown -h, touch -h, setfattr -h on a symlink to outside change only the link" {
	case_ops_on_symlink_to_outside_change_only_the_link
}

@test "a backing dir replaced by a symlink to outside never gets files created outside" {
	case_dir_swapped_for_symlink_in_backing_does_not_escape
}
