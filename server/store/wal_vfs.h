// A SQLite VFS that hands each commit's WAL frames to the kernel in a few
// large writes instead of two per page.
//
// SQLite appends a commit to the WAL as frames, each with two writes: a
// 24-byte frame header and the page. A commit that dirties 20 pages costs 40
// pwrite calls, and on a virtual machine a system call is dear: they were a
// quarter of the group-commit writer's time (bench `many`, perf). This VFS
// wraps the default one and, for WAL files only, gathers contiguous appends
// in a buffer and writes them out (64 KiB per call) when the commit frame's
// page arrives (its header carries the database size, which only a commit
// frame does; WAL file format, sqlite.org/fileformat.html#walformat), before
// anything else touches the file (a read, sync, truncate, size or close), on
// a write that is not contiguous, and past 4 MiB.
//
// Durability is unchanged: the commit frame's write returns only after the
// whole commit was written (and fails with the write's error, so SQLite rolls
// the transaction back, as before); SQLite's own syncs come after it, and the
// other connections see a commit only once the writer updates the WAL index,
// after that write.
//
// Thread-safety: a file is used by one connection at a time (SQLite's rule).
#pragma once

namespace orchard::store::sqlite {

// Registers the VFS (once; not as the default) and returns its name, for
// sqlite3_open_v2. Null if registration failed: use the default VFS.
const char* CoalescingWalVfsName();

}  // namespace orchard::store::sqlite
