// The streaming RFC 4180 parser and the record-boundary scan. See csv_reader.h.
// Thread-safety: a Reader is single-threaded; RecordBounds is reentrant.
#include "worker/handlers/csv_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// The bits set in x. Inline: plain x86-64 has no popcnt instruction and
// __builtin_popcount becomes a library call there.
inline unsigned PopCount(uint32_t x) {
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  x = (x + (x >> 4)) & 0x0F0F0F0Fu;
  return (x * 0x01010101u) >> 24;
}

// Bytes past the buffer's end that a 32-byte load may touch.
constexpr size_t kPad = 64;

// Which of 32 bytes are the delimiter, and which a quote or a LF: bit i for
// p[i].
// SSE2 (every x86-64) compares 16 bytes at a time; elsewhere, a byte loop.
class ByteMask {
 public:
  explicit ByteMask(char delimiter)
#if defined(__SSE2__)
      : delim_(_mm_set1_epi8(delimiter)), quote_(_mm_set1_epi8('"')), lf_(_mm_set1_epi8('\n'))
#else
      : delim_(delimiter)
#endif
  {
  }

  void Of32(const char* p, uint32_t* delims, uint32_t* others) const {
#if defined(__SSE2__)
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    *delims = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, delim_))) |
              (static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, delim_))) << 16);
    __m128i oa = _mm_or_si128(_mm_cmpeq_epi8(a, quote_), _mm_cmpeq_epi8(a, lf_));
    __m128i ob = _mm_or_si128(_mm_cmpeq_epi8(b, quote_), _mm_cmpeq_epi8(b, lf_));
    *others = static_cast<uint32_t>(_mm_movemask_epi8(oa)) |
              (static_cast<uint32_t>(_mm_movemask_epi8(ob)) << 16);
#else
    uint32_t d = 0, o = 0;
    for (int i = 0; i < 32; ++i) {
      char c = p[i];
      d |= static_cast<uint32_t>(c == delim_) << i;
      o |= static_cast<uint32_t>(c == '"' || c == '\n') << i;
    }
    *delims = d;
    *others = o;
#endif
  }

 private:
#if defined(__SSE2__)
  __m128i delim_, quote_, lf_;
#else
  char delim_;
#endif
};

}  // namespace

Reader::Reader(int fd, uint64_t begin, uint64_t end, char delimiter, size_t buffer_bytes,
               size_t max_row_bytes)
    : fd_(fd), end_(end), delim_(delimiter), max_row_(max_row_bytes),
      cap_(std::max<size_t>(buffer_bytes, 1)), buf_(cap_ + kPad), buf_offset_(begin) {
  for (unsigned char c : {static_cast<unsigned char>(delimiter), static_cast<unsigned char>('"'),
                          static_cast<unsigned char>('\r'), static_cast<unsigned char>('\n')}) {
    special_[c] = 1;
  }
  posix_fadvise(fd, static_cast<off_t>(begin), 0, POSIX_FADV_SEQUENTIAL);
}

void Reader::Select(std::vector<int> slot_of_column) {
  int slots = 0;
  for (int s : slot_of_column) slots = std::max(slots, s + 1);
  slot_of_ = std::move(slot_of_column);
  slots_.assign(static_cast<size_t>(slots), std::string_view());
  want_ = 0;
  for (size_t c = 0; c < slot_of_.size() && c < 64; ++c) {
    if (slot_of_[c] >= 0) want_ |= uint64_t{1} << c;
  }
}

absl::StatusOr<bool> Reader::Fill() {
  buf_offset_ += len_;
  pos_ = len_ = 0;
  if (eof_) return false;
  auto n = PreadSome(fd_, buf_.data(), cap_, buf_offset_);
  if (!n.ok()) return n.status();
  len_ = *n;
  if (len_ == 0) eof_ = true;
  return len_ > 0;
}

absl::StatusOr<bool> Reader::Refill() {
  if (eof_ || (pos_ == 0 && len_ == cap_)) return false;
  memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
  buf_offset_ += pos_;
  len_ -= pos_;
  pos_ = 0;
  auto n = PreadSome(fd_, buf_.data() + len_, cap_ - len_, buf_offset_ + len_);
  if (!n.ok()) return n.status();
  if (*n == 0) eof_ = true;
  len_ += *n;
  return *n > 0;
}

absl::StatusOr<bool> Reader::Start() {
  if (pos_ == len_) {
    auto more = Fill();
    if (!more.ok()) return more.status();
    if (!*more) return false;
  }
  bool first = position() == 0;
  if (first && len_ >= 3 && memcmp(buf_.data(), "\xEF\xBB\xBF", 3) == 0) {
    pos_ = 3;  // a UTF-8 byte order mark is not part of the first field
  }
  return first || position() < end_;
}

absl::StatusOr<bool> Reader::Next(Record& rec) {
  auto more = Start();
  if (!more.ok() || !*more) return more;
  return Parse(rec);
}

absl::StatusOr<bool> Reader::Parse(Record& rec) {
  rec.offset = position();
  rec.data.clear();
  rec.ends.clear();
  rec.blank = false;
  rec.error = nullptr;
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

int Reader::SplitPlainLine(View& view) {
  char* const base = buf_.data();
  const char* const line = base + pos_;
  const char* const end = base + len_;
  const char* field_start = line;
  size_t field = 0;
  const size_t selected = slot_of_.size();
  const ByteMask specials(delim_);
  for (const char* p = line; p < end; p += 32) {
    uint32_t delims, others;  // delimiters; quotes and LFs
    specials.Of32(p, &delims, &others);
    size_t left = static_cast<size_t>(end - p);
    if (left < 32) {
      delims &= (uint32_t{1} << left) - 1;
      others &= (uint32_t{1} << left) - 1;
    }
    // The delimiters before the first quote or LF end fields [field, field + n).
    uint32_t before = others == 0 ? delims : delims & ((uint32_t{1} << __builtin_ctz(others)) - 1);
    if (before != 0) {
      unsigned n = PopCount(before);
      if (field + n <= 64 && ((want_ >> field) & ((uint64_t{2} << (n - 1)) - 1)) == 0) {
        field += n;  // none of them is selected: skip them at once
        field_start = p + (31 - __builtin_clz(before)) + 1;
      } else {
        do {
          const char* s = p + __builtin_ctz(before);
          before &= before - 1;
          if (field < selected && slot_of_[field] >= 0) {
            slots_[static_cast<size_t>(slot_of_[field])] =
                std::string_view(field_start, static_cast<size_t>(s - field_start));
          }
          ++field;
          field_start = s + 1;
        } while (before != 0);
      }
    }
    if (others == 0) continue;
    const char* s = p + __builtin_ctz(others);
    if (*s == '"') return -1;  // a quote: the state machine unescapes the record
    if (static_cast<size_t>(s - line) > max_row_) return -1;
    // A CR before the LF ends the line; without quotes it can only follow
    // the last field.
    const char* field_end = s > field_start && s[-1] == '\r' ? s - 1 : s;
    if (field < selected && slot_of_[field] >= 0) {
      slots_[static_cast<size_t>(slot_of_[field])] =
          std::string_view(field_start, static_cast<size_t>(field_end - field_start));
    }
    view.offset = position();
    view.fields = field + 1;
    view.blank = field_end == line;
    view.error = nullptr;
    view.slot = slots_.data();
    pos_ = static_cast<size_t>(s + 1 - base);
    return 1;
  }
  return 0;
}

absl::StatusOr<bool> Reader::NextView(View& view) {
  auto more = Start();
  if (!more.ok() || !*more) return more;
  while (true) {
    int got = SplitPlainLine(view);
    if (got == 1) return true;
    if (got < 0) break;
    // No LF after the line start: move the line to the front and read on,
    // unless the buffer is full of it or the file ends.
    auto refilled = Refill();
    if (!refilled.ok()) return refilled.status();
    if (!*refilled) break;
  }
  auto parsed = Parse(slow_);
  if (!parsed.ok()) return parsed.status();
  slow_.data.append(8, '\0');  // the 8 readable bytes after every field View promises
  view.offset = slow_.offset;
  view.fields = slow_.size();
  view.blank = slow_.blank;
  view.error = slow_.error;
  for (size_t c = 0; c < slot_of_.size() && c < slow_.size(); ++c) {
    if (slot_of_[c] >= 0) slots_[static_cast<size_t>(slot_of_[c])] = slow_.field(c);
  }
  view.slot = slots_.data();
  return true;
}

namespace {

// Quote parity of [from, to) and at each of the sorted `marks` inside it:
// parity[i] = quotes in [from, marks[i]) are odd.
absl::Status CountParities(int fd, uint64_t from, uint64_t to, const uint64_t* marks, size_t n,
                           size_t buffer_bytes, uint8_t* parity, bool* total_odd) {
  std::vector<char> buf(buffer_bytes);
  uint64_t pos = from;
  bool odd = false;
  size_t next = 0;  // the next mark to record
  while (pos < to) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - pos));
    auto got = PreadSome(fd, buf.data(), want, pos);
    if (!got.ok()) return got.status();
    if (*got == 0) return absl::FailedPreconditionError("csv: the file shrank while planning");
    uint64_t done = pos;  // bytes before `done` are counted
    uint64_t stop = pos + *got;
    while (next < n && marks[next] <= stop) {
      odd ^= CountQuotes(buf.data() + (done - pos), static_cast<size_t>(marks[next] - done)) & 1;
      done = marks[next];
      parity[next++] = odd;
    }
    odd ^= CountQuotes(buf.data() + (done - pos), static_cast<size_t>(stop - done)) & 1;
    pos = stop;
  }
  while (next < n) parity[next++] = odd;  // marks at `to`
  *total_odd = odd;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> RecordBounds(int fd, uint64_t end, uint64_t chunk,
                                                   size_t buffer_bytes, unsigned threads) {
  std::vector<uint64_t> bounds{0};
  if (chunk == 0 || end <= chunk) {
    bounds.push_back(end);
    return bounds;
  }
  // A record starts at p when byte p-1 is a LF outside quotes; the scan for
  // cut c starts at byte c-1, so its parity is that of [0, c-1).
  std::vector<uint64_t> marks;  // c - 1 for every cut c < end
  for (uint64_t c = chunk; c < end; c += chunk) {
    marks.push_back(c - 1);
    if (c > UINT64_MAX - chunk) break;
  }
  std::vector<uint8_t> parity(marks.size());
  const uint64_t scan_end = marks.back();
  posix_fadvise(fd, 0, static_cast<off_t>(scan_end), POSIX_FADV_SEQUENTIAL);
  if (threads == 0) {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(
        std::clamp<uint64_t>(scan_end / (64ull << 20), 1, std::min(cores, 4u)));
  }
  threads = static_cast<unsigned>(std::clamp<uint64_t>(threads, 1, std::max<uint64_t>(scan_end, 1)));
  // Thread t counts [part[t], part[t+1]); parities are local to its part
  // until the prefix of the parts before it is applied.
  std::vector<uint64_t> part(threads + 1);
  for (unsigned t = 0; t <= threads; ++t) part[t] = scan_end / threads * t;
  part[threads] = scan_end;
  std::vector<size_t> first_mark(threads + 1);
  for (unsigned t = 0; t <= threads; ++t) {
    first_mark[t] = static_cast<size_t>(
        std::upper_bound(marks.begin(), marks.end(), part[t]) - marks.begin());
  }
  first_mark[0] = 0;  // a mark at 0 (chunk 1) belongs to the first part
  first_mark[threads] = marks.size();
  std::vector<absl::Status> status(threads);
  std::vector<uint8_t> odd(threads);
  auto count = [&](unsigned t) {
    bool o = false;
    status[t] = CountParities(fd, part[t], part[t + 1], marks.data() + first_mark[t],
                              first_mark[t + 1] - first_mark[t], buffer_bytes,
                              parity.data() + first_mark[t], &o);
    odd[t] = o;
  };
  {
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(count, t);
    count(0);
    for (auto& th : pool) th.join();
  }
  bool prefix = false;
  for (unsigned t = 0; t < threads; ++t) {
    if (!status[t].ok()) return status[t];
    for (size_t i = first_mark[t]; i < first_mark[t + 1]; ++i) parity[i] ^= prefix;
    prefix ^= odd[t];
  }

  // From each cut, forward to the first LF outside quotes.
  std::vector<char> buf(std::min<size_t>(buffer_bytes, 64 << 10));
  for (size_t k = 0; k < marks.size(); ++k) {
    uint64_t cut = marks[k] + 1;
    if (bounds.back() >= cut) continue;  // the record found for an earlier cut
    bool in_quotes = parity[k];
    uint64_t pos = marks[k], found = 0;
    while (found == 0 && pos < end) {
      auto got = PreadSome(fd, buf.data(), buf.size(), pos);
      if (!got.ok()) return got.status();
      if (*got == 0) break;
      for (size_t i = 0; i < *got; ++i) {
        char c = buf[i];
        if (c == '"') {
          in_quotes = !in_quotes;
        } else if (c == '\n' && !in_quotes) {
          found = pos + i + 1;
          break;
        }
      }
      pos += *got;
    }
    if (found == 0 || found >= end) break;
    bounds.push_back(found);
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
