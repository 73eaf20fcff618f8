// The streaming RFC 4180 parser and the record-boundary scan. See csv_reader.h.
// Thread-safety: a Reader is single-threaded; RecordBounds is reentrant.
#include "worker/handlers/csv_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "common/strcat.h"

namespace orchard::worker::csv {

namespace {

absl::StatusOr<size_t> PreadSome(int fd, char* buf, size_t n, uint64_t offset) {
  while (true) {
    ssize_t r = pread(fd, buf, n, static_cast<off_t>(offset));
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) return absl::UnavailableError(Cat("csv: read: ", strerror(errno)));
  }
}

// The number of '"' bytes in [p, p + n). memchr (vectorised by libc) skips
// the long quote-free stretches most files are made of.
uint64_t CountQuotes(const char* p, size_t n) {
  uint64_t count = 0;
  const char* end = p + n;
  while (p < end) {
    const void* q = memchr(p, '"', static_cast<size_t>(end - p));
    if (q == nullptr) break;
    ++count;
    p = static_cast<const char*>(q) + 1;
  }
  return count;
}

}  // namespace

Reader::Reader(int fd, uint64_t begin, uint64_t end, char delimiter, size_t buffer_bytes,
               size_t max_row_bytes)
    : fd_(fd), end_(end), delim_(delimiter), max_row_(max_row_bytes), buf_(buffer_bytes),
      buf_offset_(begin) {
  for (unsigned char c : {static_cast<unsigned char>(delimiter), static_cast<unsigned char>('"'),
                          static_cast<unsigned char>('\r'), static_cast<unsigned char>('\n')}) {
    special_[c] = 1;
  }
  posix_fadvise(fd, static_cast<off_t>(begin), 0, POSIX_FADV_SEQUENTIAL);
}

absl::StatusOr<bool> Reader::Fill() {
  buf_offset_ += len_;
  pos_ = len_ = 0;
  if (eof_) return false;
  auto n = PreadSome(fd_, buf_.data(), buf_.size(), buf_offset_);
  if (!n.ok()) return n.status();
  len_ = *n;
  if (len_ == 0) eof_ = true;
  return len_ > 0;
}

absl::StatusOr<bool> Reader::Next(Record& rec) {
  if (pos_ == len_) {
    auto more = Fill();
    if (!more.ok()) return more.status();
    if (!*more) return false;
  }
  bool first = position() == 0;
  if (first && len_ >= 3 && memcmp(buf_.data(), "\xEF\xBB\xBF", 3) == 0) {
    pos_ = 3;  // a UTF-8 byte order mark is not part of the first field
  }
  if (!first && position() >= end_) return false;
  rec.offset = position();
  rec.data.clear();
  rec.ends.clear();
  rec.blank = false;
  rec.error = nullptr;
  rec.gap = 0;
  enum State { kFieldStart, kUnquoted, kQuoted, kAfterQuote, kCr };
  State state = kFieldStart;
  State before_cr = kFieldStart;  // where a CR not followed by LF goes back to
  bool quoted_any = false, overflow = false;
  auto append = [&](const char* p, size_t n) {
    if (overflow) return;
    if (rec.data.size() + n > max_row_) {
      overflow = true;
      rec.error = "row longer than the row limit";
      return;
    }
    rec.data.append(p, n);
  };
  // Fast path: a whole line in the buffer without quotes (most rows of most
  // files) is copied once and split at the delimiters.
  {
    const char* line = buf_.data() + pos_;
    const void* nl = memchr(line, '\n', len_ - pos_);
    if (nl != nullptr) {
      size_t n = static_cast<const char*>(nl) - line;
      if (memchr(line, '"', n) == nullptr && n <= max_row_) {
        size_t data_n = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
        rec.data.assign(line, data_n);
        for (size_t i = 0; i < data_n; ++i) {
          if (line[i] == delim_) rec.ends.push_back(static_cast<uint32_t>(i));
        }
        rec.ends.push_back(static_cast<uint32_t>(data_n));
        rec.blank = data_n == 0;
        rec.gap = 1;
        pos_ += n + 1;
        return true;
      }
    }
  }
  auto end_field = [&]() { rec.ends.push_back(static_cast<uint32_t>(rec.data.size())); };
  // A delimiter or CR outside quotes: true when `c` was one.
  auto separator = [&](char c) {
    if (c == delim_) {
      end_field();
      state = kFieldStart;
      return true;
    }
    if (c == '\r') {
      before_cr = kUnquoted;
      state = kCr;
      return true;
    }
    return false;
  };
  auto finish = [&]() {
    end_field();
    rec.blank = rec.ends.size() == 1 && rec.data.empty() && !quoted_any;
    return true;
  };
  while (true) {
    if (pos_ == len_) {
      auto more = Fill();
      if (!more.ok()) return more.status();
      if (!*more) {  // end of file ends the record
        if (state == kQuoted) rec.error = "a quoted field is not closed at the end of the file";
        if (state == kCr) append("\r", 1);
        return finish();
      }
    }
    const char* b = buf_.data();
    char c = b[pos_];
    switch (state) {
      case kFieldStart:
      case kUnquoted: {
        // Fast path: a run of ordinary bytes.
        size_t run = pos_;
        while (run < len_ && !special_[static_cast<unsigned char>(b[run])]) ++run;
        if (run > pos_) {
          append(b + pos_, run - pos_);
          pos_ = run;
          state = kUnquoted;
          continue;
        }
        ++pos_;
        if (c == '\n') return finish();
        if (separator(c)) break;
        {  // '"'
          if (state == kFieldStart) {
            quoted_any = true;
            state = kQuoted;
          } else {
            if (rec.error == nullptr) rec.error = "a quote inside an unquoted field";
            append("\"", 1);
          }
        }
        break;
      }
      case kQuoted: {
        const void* q = memchr(b + pos_, '"', len_ - pos_);
        size_t run = q == nullptr ? len_ : static_cast<const char*>(q) - b;
        append(b + pos_, run - pos_);
        pos_ = run;
        if (q != nullptr) {
          ++pos_;
          state = kAfterQuote;
        }
        break;
      }
      case kAfterQuote:
        ++pos_;
        if (c == '\n') return finish();
        if (c == '"') {
          append("\"", 1);
          state = kQuoted;
        } else if (!separator(c)) {
          if (rec.error == nullptr) rec.error = "text after a closing quote";
          append(&c, 1);
          state = kUnquoted;
        }
        break;
      case kCr:
        if (c == '\n') {
          ++pos_;
          return finish();
        }
        append("\r", 1);  // a lone CR is data; c is parsed again
        state = before_cr;
        break;
    }
  }
}

absl::StatusOr<std::vector<uint64_t>> RecordBounds(int fd, uint64_t end, uint64_t chunk,
                                                   size_t buffer_bytes) {
  std::vector<uint64_t> bounds{0};
  std::vector<char> buf(buffer_bytes);
  uint64_t pos = 0;      // bytes before pos are accounted for in `odd`
  bool odd = false;      // an odd number of quotes in [0, pos)
  uint64_t cut = chunk;  // the next cut, to move to a record start
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  while (cut < end) {
    // Quote parity up to the byte before the cut: a record starts at p when
    // byte p-1 is a '\n' outside quotes.
    uint64_t scan_from = cut - 1;
    while (pos < scan_from) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), scan_from - pos));
      auto got = PreadSome(fd, buf.data(), n, pos);
      if (!got.ok()) return got.status();
      if (*got == 0) return absl::FailedPreconditionError("csv: the file shrank while planning");
      odd ^= CountQuotes(buf.data(), *got) & 1;
      pos += *got;
    }
    uint64_t found = 0;  // 0: none before end
    while (found == 0 && pos < end) {
      auto got = PreadSome(fd, buf.data(), buf.size(), pos);
      if (!got.ok()) return got.status();
      if (*got == 0) break;
      size_t i = 0;
      for (; i < *got; ++i) {
        char c = buf[i];
        if (c == '"') {
          odd = !odd;
        } else if (c == '\n' && !odd) {
          found = pos + i + 1;
          break;
        }
      }
      pos += found ? i + 1 : *got;
    }
    if (found == 0 || found >= end) break;
    bounds.push_back(found);
    cut = (found / chunk + 1) * chunk;
  }
  bounds.push_back(end);
  return bounds;
}

void AppendField(std::string& out, std::string_view field, char delimiter) {
  if (field.find_first_of(std::string{delimiter, '"', '\r', '\n'}) == std::string_view::npos) {
    out.append(field);
    return;
  }
  out.push_back('"');
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace orchard::worker::csv
