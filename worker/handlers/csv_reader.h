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

#include "absl/status/statusor.h"

namespace orchard::worker::csv {

struct Record {
  uint64_t offset = 0;        // of its first byte in the file
  std::string data;           // the unescaped fields, back to back
  std::vector<uint32_t> ends;  // field i is data[ends[i-1] + gap, ends[i])
  uint32_t gap = 0;            // 1 when data keeps the delimiters (fast path)
  bool blank = false;          // an empty line: no fields at all
  const char* error = nullptr;  // malformed: why (static text)

  size_t size() const { return ends.size(); }
  std::string_view field(size_t i) const {
    uint32_t b = i == 0 ? 0 : ends[i - 1] + gap;
    return std::string_view(data).substr(b, ends[i] - b);
  }
};

class Reader {
 public:
  // Reads records starting in [begin, end) from `fd` (not owned). `begin`
  // must be a record start.
  Reader(int fd, uint64_t begin, uint64_t end, char delimiter, size_t buffer_bytes = 1 << 20,
         size_t max_row_bytes = 1 << 20);

  // The next record; false past the range. Errors: reading the file.
  absl::StatusOr<bool> Next(Record& rec);
  // File offset of the next byte to parse.
  uint64_t position() const { return buf_offset_ + pos_; }

 private:
  // Refills the buffer at the current position; false at end of file.
  absl::StatusOr<bool> Fill();

  int fd_;
  uint64_t end_;
  char delim_;
  size_t max_row_;
  std::vector<char> buf_;
  uint64_t buf_offset_;  // file offset of buf_[0]
  size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
  uint8_t special_[256] = {};  // delimiter, quote, CR, LF
};

// The slice boundaries of [0, end) for a file of `file_size` bytes: 0, then
// for each multiple of `chunk` the first record start at or after it, then
// `end`. One sequential pass over [0, end) counting quotes, `buffer_bytes` at
// a time.
absl::StatusOr<std::vector<uint64_t>> RecordBounds(int fd, uint64_t end, uint64_t chunk,
                                                   size_t buffer_bytes = 1 << 20);

// Writes `field` to `out` as RFC 4180 requires (quoted when it holds the
// delimiter, a quote, CR or LF).
void AppendField(std::string& out, std::string_view field, char delimiter);

}  // namespace orchard::worker::csv
