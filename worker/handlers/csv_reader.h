// RFC 4180 CSV, streamed from a byte range of a file with a fixed buffer, and
// the planner's scan that puts slice boundaries on record starts.
//
// A record starts at offset 0 or right after a '\n' that is outside quotes
// ("outside" = an even number of '"' before it in the file: a quoted field
// opens and closes with one quote each and a doubled quote inside counts two,
// so parity is exact for well-formed CSV). CsvReader(begin, end) returns the
// records that *start* in [begin, end), reading past `end` to finish the last
// one; with begin on a record start, adjacent ranges therefore cover every
// record exactly once, whatever the boundaries.
//
// Parsing: quoted fields, doubled quotes, delimiters and newlines inside
// quotes, CRLF or LF line ends, empty fields; bytes are passed through (UTF-8
// text stays UTF-8). What RFC 4180 forbids is parsed leniently and flagged in
// CsvRecord::error: a quote inside an unquoted field, text after a closing
// quote, a quoted field still open at the end of the file, a record longer
// than the row limit (its text is dropped past the limit, so memory stays
// bounded by the buffer and the limit).
//
// Thread-safety: a CsvReader is used by one thread; independent readers on one
// file are fine (pread only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace orchard::worker::csv {

struct Record {
  uint64_t offset = 0;        // of its first byte in the file
  std::string data;           // the unescaped fields, back to back
  std::vector<uint32_t> ends;  // field i is data[ends[i-1], ends[i])
  bool blank = false;          // an empty line: no fields at all
  const char* error = nullptr;  // malformed: why (static text)

  size_t size() const { return ends.size(); }
  std::string_view field(size_t i) const {
    uint32_t b = i == 0 ? 0 : ends[i - 1];
    return std::string_view(data).substr(b, ends[i] - b);
  }
};

// A record as Reader::NextView lends it: the field count and the text of the
// selected columns only (see Reader::Select).
struct View {
  uint64_t offset = 0;  // of its first byte in the file
  size_t fields = 0;    // fields in the record
  bool blank = false;   // an empty line: no fields at all
  const char* error = nullptr;  // malformed: why (static text)
  // slot[k]: the text of the column Select() gave slot k, when that column
  // is < fields. Points into the reader's buffer (or its copy of a record
  // that needed unescaping); valid until the next call. At least 8 readable
  // bytes (of any value) follow each text, so it may be loaded 8 at a time.
  const std::string_view* slot = nullptr;
};

inline constexpr size_t kDefaultBufferBytes = 256 << 10;

class Reader {
 public:
  // Reads records starting in [begin, end) from `fd` (not owned). `begin`
  // must be a record start. Memory: the buffer (plus 64 bytes) and, for a
  // record that needs unescaping or does not fit the buffer, that record
  // (at most max_row_bytes of text).
  Reader(int fd, uint64_t begin, uint64_t end, char delimiter,
         size_t buffer_bytes = kDefaultBufferBytes, size_t max_row_bytes = 1 << 20);

  // The next record, every field unescaped; false past the range. Errors:
  // reading the file. Always the general RFC 4180 state machine: the
  // reference NextView is checked against.
  absl::StatusOr<bool> Next(Record& rec);

  // Chooses the columns NextView returns: slot_of_column[c] is column c's
  // slot, or -1 when it is not needed.
  void Select(std::vector<int> slot_of_column);
  // The next record, as Next would parse it, with only the selected columns.
  // Fast path: a line that is whole in the buffer and has no quote is split
  // in place (SIMD scan for the delimiter, quote and LF); any other record
  // goes through Next's state machine. Errors: reading the file.
  absl::StatusOr<bool> NextView(View& view);
  // NextView for every record left, calling on_row(const View&) -> bool
  // (false: stop there). The lines that follow a record in the buffer go
  // straight to the fast path, without NextView's per-call checks.
  template <class OnRow>
  absl::Status ForEachView(OnRow&& on_row);

  // File offset of the next byte to parse.
  uint64_t position() const { return buf_offset_ + pos_; }

 private:
  // Before a record: fills an empty buffer, drops a BOM at offset 0; false
  // when no record starts in the range any more.
  absl::StatusOr<bool> Start();
  // The state machine, from pos_ to the end of the record.
  absl::StatusOr<bool> Parse(Record& rec);
  // Refills the buffer at the current position; false at end of file.
  absl::StatusOr<bool> Fill();
  // Keeps [pos_, len_), moved to the front, and reads more after it; false
  // when nothing more could be read (end of file or a full buffer).
  absl::StatusOr<bool> Refill();
  // The fast path of NextView: 1 done, 0 no LF in the buffered bytes, -1 the
  // line needs the state machine (a quote, or longer than the row limit).
  int SplitPlainLine(View& view);

  int fd_;
  uint64_t end_;
  char delim_;
  size_t max_row_;
  size_t cap_;             // usable buffer bytes; buf_ has 64 more (SIMD reads)
  std::vector<char> buf_;
  uint64_t buf_offset_;  // file offset of buf_[0]
  size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
  uint8_t special_[256] = {};  // delimiter, quote, CR, LF
  std::vector<int> slot_of_;   // Select()
  uint64_t want_ = 0;          // bit c: column c < 64 has a slot
  std::vector<std::string_view> slots_;
  Record slow_;  // NextView's record when it needs the state machine
};

template <class OnRow>
absl::Status Reader::ForEachView(OnRow&& on_row) {
  View view;
  while (true) {
    auto more = NextView(view);
    if (!more.ok()) return more.status();
    if (!*more || !on_row(static_cast<const View&>(view))) return absl::OkStatus();
    while (pos_ < len_ && position() < end_ && SplitPlainLine(view) == 1) {
      if (!on_row(static_cast<const View&>(view))) return absl::OkStatus();
    }
  }
}

// The slice boundaries of [0, end): 0, then for each multiple of `chunk` the
// first record start at or after it (each once, those before `end`), then
// `end`. Two steps: the quote parity at every cut, from one pass over the
// bytes before the last cut that counts quotes (memchr), split over
// `threads` threads (0: up to 4, one per 64 MiB, at most the cores); then
// from each cut a short forward scan to the first LF outside quotes. Reads
// `buffer_bytes` at a time per thread.
absl::StatusOr<std::vector<uint64_t>> RecordBounds(int fd, uint64_t end, uint64_t chunk,
                                                   size_t buffer_bytes = kDefaultBufferBytes,
                                                   unsigned threads = 0);

// Writes `field` to `out` as RFC 4180 requires (quoted when it holds the
// delimiter, a quote, CR or LF).
void AppendField(std::string& out, std::string_view field, char delimiter);

}  // namespace orchard::worker::csv
