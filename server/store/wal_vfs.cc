// The coalescing WAL VFS; see wal_vfs.h.
#include "server/store/wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <new>
#include <vector>

namespace orchard::store::sqlite {

namespace {

constexpr size_t kFrameHeaderBytes = 24;
constexpr int64_t kWalHeaderBytes = 32;
constexpr size_t kMaxBuffered = 4 << 20;
// The unix VFS writes at most 128 KiB - 1 bytes per call (it masks larger
// sizes), so a flush goes in pieces of 64 KiB: 16 pages a system call.
constexpr size_t kMaxWrite = 64 << 10;

sqlite3_vfs* g_base = nullptr;  // the default VFS we wrap
sqlite3_vfs g_vfs;

// Our part of a file; SQLite allocates szOsFile bytes and the real file's
// part follows ours.
struct File {
  sqlite3_file base;  // must be first: SQLite sees this
  sqlite3_file* real = nullptr;
  bool wal = false;
  bool commit_pending = false;  // the last write was a commit frame's header
  int64_t offset = 0;           // where buffer[0] goes in the file
  std::vector<char> buffer;
};

constexpr size_t kOurBytes = (sizeof(File) + 15) & ~size_t{15};

File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
const sqlite3_io_methods* Real(File* f) { return f->real->pMethods; }

int Flush(File* f) {
  int rc = SQLITE_OK;
  for (size_t done = 0; done < f->buffer.size() && rc == SQLITE_OK; done += kMaxWrite) {
    const size_t n = std::min(kMaxWrite, f->buffer.size() - done);
    rc = Real(f)->xWrite(f->real, f->buffer.data() + done, static_cast<int>(n),
                         f->offset + static_cast<int64_t>(done));
  }
  f->buffer.clear();
  f->commit_pending = false;
  return rc;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

int Close(sqlite3_file* file) {
  File* f = Of(file);
  int flushed = Flush(f);
  int rc = Real(f)->xClose(f->real);
  f->~File();
  return rc != SQLITE_OK ? rc : flushed;
}

int Read(sqlite3_file* file, void* out, int amt, sqlite3_int64 off) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return Real(f)->xRead(f->real, out, amt, off);
}

int Write(sqlite3_file* file, const void* data, int amt, sqlite3_int64 off) {
  File* f = Of(file);
  if (!f->wal) return Real(f)->xWrite(f->real, data, amt, off);
  if (!f->buffer.empty() && off != f->offset + static_cast<int64_t>(f->buffer.size())) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (f->buffer.empty()) {
    f->offset = off;
    // Once, on the file's first write (readers never write): the buffer
    // then never moves.
    if (f->buffer.capacity() == 0) f->buffer.reserve(kMaxBuffered + kFrameHeaderBytes + 65536);
  }
  const auto* bytes = static_cast<const unsigned char*>(data);
  f->buffer.insert(f->buffer.end(), bytes, bytes + amt);
  if (static_cast<size_t>(amt) == kFrameHeaderBytes && off >= kWalHeaderBytes) {
    // A frame header: bytes 4..7 are the database size after a commit, 0 for
    // any other frame. The commit frame's page comes next.
    f->commit_pending = BigEndian32(bytes + 4) != 0;
    return SQLITE_OK;
  }
  if (f->commit_pending || f->buffer.size() >= kMaxBuffered) return Flush(f);
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return Real(f)->xTruncate(f->real, size);
}

int Sync(sqlite3_file* file, int flags) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return Real(f)->xSync(f->real, flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return Real(f)->xFileSize(f->real, size);
}

// The rest pass straight through.
int Lock(sqlite3_file* f, int l) { return Real(Of(f))->xLock(Of(f)->real, l); }
int Unlock(sqlite3_file* f, int l) { return Real(Of(f))->xUnlock(Of(f)->real, l); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(Of(f))->xCheckReservedLock(Of(f)->real, out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Real(Of(f))->xFileControl(Of(f)->real, op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(Of(f))->xSectorSize(Of(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(Of(f))->xDeviceCharacteristics(Of(f)->real);
}
int ShmMap(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return Real(Of(f))->xShmMap(Of(f)->real, page, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(Of(f))->xShmLock(Of(f)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(Of(f))->xShmBarrier(Of(f)->real); }
int ShmUnmap(sqlite3_file* f, int del) { return Real(Of(f))->xShmUnmap(Of(f)->real, del); }
int Fetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** out) {
  return Real(Of(f))->xFetch(Of(f)->real, off, amt, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(Of(f))->xUnfetch(Of(f)->real, off, p);
}

const sqlite3_io_methods kMethods = {
    3,         Close,       Read,      Write,    Truncate,   Sync,     FileSize,
    Lock,      Unlock,      CheckReservedLock,   FileControl, SectorSize,
    DeviceCharacteristics,  ShmMap,    ShmLock,  ShmBarrier, ShmUnmap, Fetch,
    Unfetch,
};

int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  File* f = new (file) File();
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kOurBytes);
  f->wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  // Only a file with the full method set is wrapped (unix's has it);
  // otherwise the open fails rather than call methods it lacks.
  if (rc == SQLITE_OK && (f->real->pMethods == nullptr || f->real->pMethods->iVersion < 3)) {
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    rc = SQLITE_CANTOPEN;
  }
  if (rc != SQLITE_OK) {
    f->~File();
    file->pMethods = nullptr;
    return rc;
  }
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}

}  // namespace

const char* CoalescingWalVfsName() {
  static const char* name = []() -> const char* {
    g_base = sqlite3_vfs_find(nullptr);
    if (g_base == nullptr) return nullptr;
    // Everything but open is the default VFS's own (they reach its state
    // through pAppData, which the copy keeps).
    g_vfs = *g_base;
    g_vfs.pNext = nullptr;
    g_vfs.zName = "orchard-coalescing-wal";
    g_vfs.szOsFile = static_cast<int>(kOurBytes) + g_base->szOsFile;
    g_vfs.xOpen = &Open;
    if (sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
    return g_vfs.zName;
  }();
  return name;
}

}  // namespace orchard::store::sqlite
