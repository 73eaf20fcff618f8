// The csv.aggregate handler: params, plan (record-aligned byte ranges), the
// per-slice group-by, the exact merge and the result table. See
// csv_aggregate.h for the contract.
// Thread-safety: stateless; Run() runs concurrently on independent files.
#include "worker/handlers/csv_aggregate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "common/split.h"
#include "common/strcat.h"
#include "common/util.h"
#include "worker/handlers/csv_reader.h"
#include "worker/handlers/number.h"
#include "worker/handlers/subprocess.h"

namespace orchard::worker {

namespace {

using json = nlohmann::json;

constexpr uint64_t kDefaultChunk = 64ull << 20;
constexpr size_t kMaxSamples = 10;

enum class Op { kCount, kSum, kMin, kMax, kMean };

struct Aggregate {
  Op op;
  std::string name;  // output column
  int measure = -1;  // index into Params::measures; -1 = count rows
  bool numeric = false;
};

// A column the slice reads: its values counted (non-empty) or parsed.
struct Measure {
  size_t column;
  bool numeric;
  bool extrema = false;  // a min or max of it is asked for
};

struct Params {
  std::string path;
  char delimiter = ',';
  bool header = true;
  std::vector<size_t> group_by;
  std::vector<std::string> group_names;
  std::vector<Aggregate> aggregates;
  std::vector<Measure> measures;
  std::vector<std::pair<size_t, std::string>> filters;
  uint64_t chunk_bytes = kDefaultChunk;
  std::string output;
  std::optional<uint64_t> max_bad_rows;
  uint64_t max_groups = 1'000'000;
  size_t width = 0;  // fields per row (the first record's)
  std::vector<std::string> columns;  // header names, or "c<N>"
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status Invalid(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(Cat("params.", field, ": ", why));
}

// Resolves a column reference (a name, or a 0-based position).
absl::StatusOr<size_t> Column(const Params& p, const json& ref, const std::string& field) {
  if (ref.is_number_integer() && ref.get<int64_t>() >= 0) {
    uint64_t i = ref.get<uint64_t>();
    if (i >= p.width) {
      return Invalid(field, Cat("column ", i, " does not exist: the file's rows have ", p.width,
                                " columns (positions count from 0)"));
    }
    return static_cast<size_t>(i);
  }
  if (!ref.is_string()) return Invalid(field, "must be a column name or a 0-based position");
  const std::string name = ref.get<std::string>();
  if (!p.header) {
    return Invalid(field, Cat("column '", name, "' is a name, but header is false: use a position"));
  }
  auto it = std::find(p.columns.begin(), p.columns.end(), name);
  if (it == p.columns.end()) {
    std::string names;
    for (const auto& c : p.columns) names += (names.empty() ? "" : ", ") + c;
    return Invalid(field, Cat("no column '", name, "' in the header of ", p.path, " (columns: ",
                              names, ")"));
  }
  return static_cast<size_t>(it - p.columns.begin());
}

absl::StatusOr<uint64_t> UintParam(const json& params, const char* key, uint64_t dflt,
                                   uint64_t min) {
  auto it = params.find(key);
  if (it == params.end()) return dflt;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<uint64_t>() < min) {
    return Invalid(key, Cat("must be an integer >= ", min));
  }
  return it->get<uint64_t>();
}

// Reads and checks the params; opens the file to read its first record (the
// header, or the row that sets the width). Returns the open file too.
absl::StatusOr<Params> ParseParams(const json& j, std::unique_ptr<Fd>* file, uint64_t* size) {
  Params p;
  static const char* kKnown[] = {"path",  "delimiter", "header", "group_by", "aggregates",
                                 "chunk_bytes", "filter", "output", "max_bad_rows",
                                 "max_groups"};
  for (const auto& [k, v] : j.items()) {
    if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* n) { return k == n; }) ==
        std::end(kKnown)) {
      return Invalid(k, "unknown (see the csv.aggregate params in the README)");
    }
  }
  if (!j.contains("path") || !j["path"].is_string() || j["path"].get<std::string>().empty()) {
    return Invalid("path", "required, the CSV file's absolute path");
  }
  p.path = j["path"].get<std::string>();
  if (p.path[0] != '/') return Invalid("path", "must be an absolute path (every worker opens it)");
  if (j.contains("delimiter")) {
    const json& d = j["delimiter"];
    if (!d.is_string() || d.get<std::string>().size() != 1 ||
        std::string("\"\r\n").find(d.get<std::string>()[0]) != std::string::npos) {
      return Invalid("delimiter", "must be one byte other than a quote, CR or LF");
    }
    p.delimiter = d.get<std::string>()[0];
  }
  if (j.contains("header")) {
    if (!j["header"].is_boolean()) return Invalid("header", "must be true or false");
    p.header = j["header"].get<bool>();
  }
  auto chunk = UintParam(j, "chunk_bytes", kDefaultChunk, 1);
  if (!chunk.ok()) return chunk.status();
  p.chunk_bytes = *chunk;
  auto groups = UintParam(j, "max_groups", 1'000'000, 1);
  if (!groups.ok()) return groups.status();
  p.max_groups = *groups;
  if (j.contains("max_bad_rows")) {
    auto bad = UintParam(j, "max_bad_rows", 0, 0);
    if (!bad.ok()) return bad.status();
    p.max_bad_rows = *bad;
  }
  if (j.contains("output")) {
    if (!j["output"].is_string() || j["output"].get<std::string>().empty() ||
        j["output"].get<std::string>()[0] != '/') {
      return Invalid("output", "must be an absolute path");
    }
    p.output = j["output"].get<std::string>();
  }

  // O_NONBLOCK: opening a FIFO (or a device) for reading must not wait for
  // a writer: it would hold the worker's control thread for good (issue 19).
  // fstat then refuses anything but a regular file, where the flag has no
  // effect on reads.
  int fd = open(p.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return Invalid("path", Cat("cannot open ", p.path, ": ", strerror(errno)));
  *file = std::make_unique<Fd>(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Invalid("path", Cat(p.path, " is not a regular file"));
  }
  *size = static_cast<uint64_t>(st.st_size);
  csv::Reader first(fd, 0, 1, p.delimiter, 64 << 10);
  csv::Record rec;
  auto got = first.Next(rec);
  if (!got.ok()) return got.status();
  if (*got) {
    if (rec.error != nullptr) {
      return Invalid("path", Cat("the first row of ", p.path, " is malformed: ", rec.error));
    }
    p.width = rec.size();
    for (size_t i = 0; i < rec.size(); ++i) {
      p.columns.push_back(p.header ? std::string(rec.field(i)) : Cat("c", i));
    }
  }

  if (j.contains("group_by")) {
    const json& g = j["group_by"];
    if (!g.is_array()) return Invalid("group_by", "must be an array of columns");
    for (size_t i = 0; i < g.size(); ++i) {
      auto c = Column(p, g[i], Cat("group_by[", i, "]"));
      if (!c.ok()) return c.status();
      p.group_by.push_back(*c);
      p.group_names.push_back(p.columns[*c]);
    }
  }
  if (!j.contains("aggregates") || !j["aggregates"].is_array() || j["aggregates"].empty()) {
    return Invalid("aggregates", R"(required, e.g. [{"column": "amount", "op": "sum"}])");
  }
  const json& aggs = j["aggregates"];
  for (size_t i = 0; i < aggs.size(); ++i) {
    const std::string f = Cat("aggregates[", i, "]");
    const json& a = aggs[i];
    if (!a.is_object() || !a.contains("op") || !a["op"].is_string()) {
      return Invalid(f, R"(must be {"column": C, "op": "count|sum|min|max|mean"})");
    }
    static const std::pair<const char*, Op> kOps[] = {
        {"count", Op::kCount}, {"sum", Op::kSum}, {"min", Op::kMin}, {"max", Op::kMax},
        {"mean", Op::kMean}};
    const std::string op = a["op"].get<std::string>();
    auto o = std::find_if(std::begin(kOps), std::end(kOps), [&](auto& e) { return op == e.first; });
    if (o == std::end(kOps)) return Invalid(f + ".op", Cat("'", op, "' is not count, sum, min, max or mean"));
    Aggregate agg{o->second, op, -1, o->second != Op::kCount};
    if (!a.contains("column")) {
      if (agg.numeric) return Invalid(f + ".column", Cat("required for ", op));
      agg.name = "count";
    } else {
      auto c = Column(p, a["column"], f + ".column");
      if (!c.ok()) return c.status();
      agg.name = Cat(p.columns[*c], "_", op);
      auto m = std::find_if(p.measures.begin(), p.measures.end(), [&](const Measure& m) {
        return m.column == *c && m.numeric == agg.numeric;
      });
      agg.measure = static_cast<int>(m - p.measures.begin());
      if (m == p.measures.end()) p.measures.push_back({*c, agg.numeric});
      if (agg.op == Op::kMin || agg.op == Op::kMax) p.measures[agg.measure].extrema = true;
    }
    p.aggregates.push_back(agg);
  }
  if (j.contains("filter")) {
    json list = j["filter"].is_array() ? j["filter"] : json::array({j["filter"]});
    for (size_t i = 0; i < list.size(); ++i) {
      const json& f = list[i];
      if (!f.is_object() || !f.contains("column") || !f.contains("equals") ||
          !f["equals"].is_string()) {
        return Invalid("filter", R"(must be {"column": C, "equals": "text"} or an array of them)");
      }
      auto c = Column(p, f["column"], "filter.column");
      if (!c.ok()) return c.status();
      p.filters.emplace_back(*c, f["equals"].get<std::string>());
    }
  }
  return p;
}

std::string KeyText(const json& key) { return key.dump(-1, ' ', false, json::error_handler_t::replace); }

// Key bytes: each field as a 4-byte length and its text.
void EncodeKey(std::string& out, std::string_view field) {
  uint32_t n = static_cast<uint32_t>(field.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out.append(field);
}

// 8 bytes from p, the first in the low byte; only the first n (<= 8) kept.
// REQUIRES: p[0..7] readable (csv::View promises it after every field).
uint64_t Load8(const char* p, size_t n) {
  uint64_t v;
  memcpy(&v, p, 8);
  return n >= 8 ? v : v & ((uint64_t{1} << (8 * n)) - 1);
}

// A hash of a row's group fields, read where they lie (no key is built for
// a row whose group exists): each field's length and bytes, 8 at a time.
class KeyHash {
 public:
  void Add(std::string_view f) {
    const char* p = f.data();
    size_t n = f.size();
    Mix(n * 0x9E3779B97F4A7C15ull ^ Load8(p, n));
    for (p += 8; n > 8; p += 8, n -= 8) Mix(Load8(p, n - 8));
  }
  uint64_t value() const { return h_; }

 private:
  void Mix(uint64_t v) {
    unsigned __int128 m = static_cast<unsigned __int128>(h_ ^ v) * 0xBF58476D1CE4E5B9ull;
    h_ = static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
  }
  uint64_t h_ = 0x9E3779B97F4A7C15ull;
};

// One slice's groups: an open-addressing table (hash once per row, compare
// the fields with the stored key), the keys back to back in one string
// (EncodeKey's form), and each group's stats in one array (measures + 1 per
// group, the last counts rows).
class Groups {
 public:
  Groups(size_t stats_per_group, std::vector<size_t> key_slots)
      : per_(stats_per_group), key_slots_(std::move(key_slots)), index_(64, 0) {}

  size_t size() const { return offsets_.size(); }
  std::string_view key(size_t g) const {
    size_t b = offsets_[g], e = g + 1 < offsets_.size() ? offsets_[g + 1] : keys_.size() - 8;
    return std::string_view(keys_).substr(b, e - b);
  }
  num::Stats* stats(size_t g) { return &stats_[g * per_]; }

  // The stats of the row's group, or nullptr when it is new and `max`
  // groups exist.
  num::Stats* Find(const std::string_view* slot, uint64_t max) {
    KeyHash hash;
    for (size_t s : key_slots_) hash.Add(slot[s]);
    const uint64_t h = hash.value();
    const size_t mask = index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      uint32_t entry = index_[i];
      if (entry == 0) break;
      size_t g = entry - 1;
      if (hashes_[g] == h && Equal(g, slot)) return stats(g);
    }
    if (size() >= max) return nullptr;
    size_t g = size();
    keys_.resize(keys_.size() - 8);
    offsets_.push_back(keys_.size());
    for (size_t s : key_slots_) EncodeKey(keys_, slot[s]);
    keys_.append(8, '\0');
    hashes_.push_back(h);
    stats_.resize(stats_.size() + per_);
    if ((size() + 1) * 2 > index_.size()) {
      Rehash(index_.size() * 2);
    } else {
      Place(g);
    }
    return stats(g);
  }

 private:
  bool Equal(size_t g, const std::string_view* slot) const {
    const char* k = keys_.data() + offsets_[g];
    for (size_t s : key_slots_) {
      uint32_t n;
      memcpy(&n, k, 4);
      if (n != slot[s].size()) return false;
      if (n <= 8) {  // short keys (codes, years): one compare
        if (Load8(k + 4, n) != Load8(slot[s].data(), n)) return false;
      } else if (memcmp(k + 4, slot[s].data(), n) != 0) {
        return false;
      }
      k += 4 + n;
    }
    return true;
  }
  void Place(size_t g) {
    size_t mask = index_.size() - 1;
    size_t i = hashes_[g] & mask;
    while (index_[i] != 0) i = (i + 1) & mask;
    index_[i] = static_cast<uint32_t>(g + 1);
  }
  void Rehash(size_t n) {
    index_.assign(n, 0);
    for (size_t g = 0; g < size(); ++g) Place(g);
  }

  size_t per_;
  std::vector<size_t> key_slots_;
  std::vector<uint32_t> index_;  // group + 1, 0 = empty; at most half full
  std::vector<uint64_t> hashes_;
  std::vector<size_t> offsets_;
  std::string keys_ = std::string(8, '\0');  // then 8 bytes, so Equal may load 8 at a time
  std::vector<num::Stats> stats_;
};

struct Counts {
  uint64_t rows_read = 0, rows_aggregated = 0, bad_rows = 0;
  json samples = json::array();
  void Bad(uint64_t offset, std::string_view why) {
    ++bad_rows;
    if (samples.size() < kMaxSamples) samples.push_back({{"offset", offset}, {"error", SanitizeUtf8(why)}});
  }
};

json DecodeKey(std::string_view k) {
  json key = json::array();
  while (k.size() >= 4) {
    uint32_t n;
    memcpy(&n, k.data(), 4);
    key.push_back(SanitizeUtf8(k.substr(4, n)));
    k.remove_prefix(4 + n);
  }
  return key;
}

// Numbers first by value, then the rest as bytes: "9" < "10", "a" < "b".
bool KeyLess(const json& a, const json& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const std::string& x = a[i].get_ref<const std::string&>();
    const std::string& y = b[i].get_ref<const std::string&>();
    if (x == y) continue;
    auto nx = num::Parse(x), ny = num::Parse(y);
    if (nx && ny) {
      int c = num::Compare(*nx, *ny);
      if (c != 0) return c < 0;
    } else if (nx || ny) {
      return nx.has_value();
    }
    return x < y;
  }
  return a.size() < b.size();
}

absl::Status MergeInto(json& acc, const json& r) {
  if (!r.is_object() || !r.contains("groups") || !r["groups"].is_object()) {
    return absl::DataLossError("csv.aggregate: a slice result without groups");
  }
  for (const char* k : {"rows_read", "rows_aggregated", "bad_rows"}) {
    acc[k] = acc.value(k, uint64_t{0}) + r.value(k, uint64_t{0});
  }
  json& samples = acc["bad_row_samples"];
  for (const auto& s : r.value("bad_row_samples", json::array())) samples.push_back(s);
  std::sort(samples.begin(), samples.end(),
            [](const json& a, const json& b) { return a.value("offset", 0ull) < b.value("offset", 0ull); });
  if (samples.size() > kMaxSamples) samples.erase(samples.begin() + kMaxSamples, samples.end());
  json& groups = acc["groups"];
  for (const auto& [key, stats] : r["groups"].items()) {
    auto it = groups.find(key);
    if (it == groups.end()) {
      groups[key] = stats;
      continue;
    }
    if (!stats.is_array() || !it->is_array() || stats.size() != it->size()) {
      return absl::DataLossError("csv.aggregate: slice results of different shapes");
    }
    for (size_t i = 0; i < stats.size(); ++i) {
      auto a = num::Stats::FromJson((*it)[i]), b = num::Stats::FromJson(stats[i]);
      if (!a || !b) return absl::DataLossError("csv.aggregate: a slice result with bad stats");
      a->Merge(*b);
      (*it)[i] = a->ToJson();
    }
  }
  return absl::OkStatus();
}

absl::Status WriteOutput(const std::string& path, const json& columns, const json& rows) {
  std::string text;
  auto line = [&text](const json& values) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) text.push_back(',');
      const json& v = values[i];
      csv::AppendField(text, v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump(),
                       ',');
    }
    text.push_back('\n');
  };
  line(columns);
  for (const auto& r : rows) line(r);
  // A fresh temp file of our own in the target's directory: O_EXCL and
  // O_NOFOLLOW, so a file or symlink planted at the name is never followed
  // or written through, and O_NONBLOCK so nothing waits on a FIFO.
  const std::string tmp = Cat(path, ".tmp-", NewId("o-"));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                0644);
  FILE* f = fd < 0 ? nullptr : fdopen(fd, "wb");
  if (f == nullptr) {
    if (fd >= 0) close(fd);
    return absl::FailedPreconditionError(Cat("params.output: cannot write ", tmp, ": ", strerror(errno)));
  }
  bool ok = fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::FailedPreconditionError(Cat("params.output: cannot write ", path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Plan> CsvAggregateHandler::PlanSlices(const PlanInput& in) const {
  std::unique_ptr<Fd> file;
  uint64_t size = 0;
  auto p = ParseParams(*in.params, &file, &size);
  if (!p.ok()) return p.status();
  if (size == 0) return Invalid("path", Cat(p->path, " is empty: there is nothing to aggregate"));
  if (in.begin != 0 || in.end > size) {
    return absl::InvalidArgumentError(Cat("range: must be 0:", size, " (the bytes of ", p->path,
                                          ") or start at 0 and end before that"));
  }
  if ((in.end - 1) / p->chunk_bytes + 1 > kMaxSubtasks) {
    return Invalid("chunk_bytes", Cat("too small: more than ", kMaxSubtasks, " slices"));
  }
  auto bounds = csv::RecordBounds(file->get(), in.end, p->chunk_bytes);
  if (!bounds.ok()) return bounds.status();
  Plan plan;
  plan.uniform = false;
  plan.bounds = std::move(*bounds);
  return plan;
}

absl::StatusOr<json> CsvAggregateHandler::Run(const SliceContext& ctx) const {
  std::unique_ptr<Fd> file;
  uint64_t size = 0;
  auto params = ParseParams(*ctx.params, &file, &size);
  // Params were checked at plan time: a failure now means the file changed.
  if (!params.ok()) return absl::FailedPreconditionError(params.status().message());
  const Params& p = *params;
  if (size < ctx.end) {
    return absl::FailedPreconditionError(
        Cat("params.path: ", p.path, " is ", size, " bytes now, shorter than the planned range"));
  }
  // The reader returns only the columns the query reads, each in a slot.
  std::vector<int> slot_of(p.width, -1);
  int slots = 0;
  auto slot = [&](size_t column) {
    if (slot_of[column] < 0) slot_of[column] = slots++;
    return static_cast<size_t>(slot_of[column]);
  };
  std::vector<size_t> group_slots, measure_slots;
  std::vector<std::pair<size_t, std::string_view>> filters;
  for (size_t c : p.group_by) group_slots.push_back(slot(c));
  for (const auto& m : p.measures) measure_slots.push_back(slot(m.column));
  for (const auto& [c, value] : p.filters) filters.emplace_back(slot(c), value);

  csv::Reader reader(file->get(), ctx.begin, ctx.end, p.delimiter);
  reader.Select(std::move(slot_of));
  Counts t;
  Groups groups(p.measures.size() + 1, group_slots);
  // A row's values, parsed before any is added (a bad one drops the row):
  // kind 0 empty, 1 small (the usual), 2 any other number.
  std::vector<num::Small> small(p.measures.size());
  std::vector<num::Number> other(p.measures.size());
  std::vector<uint8_t> kind(p.measures.size());
  const size_t need = p.width;  // every row must have the first row's width
  bool skip_header = p.header && ctx.begin == 0;
  uint64_t n = 0;
  absl::Status failed;  // why on_row stopped early
  auto on_row = [&](const csv::View& row) -> bool {
    if ((n++ & 4095) == 0) {
      if (ctx.stop.stop_requested()) {
        failed = absl::CancelledError("csv.aggregate: stopped");
        return false;
      }
      if (ctx.progress != nullptr) ctx.progress->store(reader.position() - ctx.begin);
    }
    if (skip_header) {
      skip_header = false;
      return true;
    }
    if (row.blank && row.error == nullptr) return true;
    ++t.rows_read;
    if (row.error != nullptr) {
      t.Bad(row.offset, row.error);
    } else if (row.fields != need) {
      t.Bad(row.offset, Cat(row.fields, " fields, expected ", need));
    } else {
      bool match = true;
      for (const auto& [s, value] : filters) match = match && row.slot[s] == value;
      if (!match) return true;
      bool bad = false;
      for (size_t m = 0; m < p.measures.size() && !bad; ++m) {
        std::string_view f = row.slot[measure_slots[m]];
        kind[m] = f.empty() ? 0 : 1;
        if (f.empty() || !p.measures[m].numeric || num::ParseSmallPadded(f, small[m])) continue;
        kind[m] = 2;
        if (auto v = num::Parse(f)) {
          other[m] = *v;
        } else {
          t.Bad(row.offset, Cat("column '", p.columns[p.measures[m].column], "': '",
                                f.substr(0, 40), "' is not a number"));
          bad = true;
        }
      }
      if (!bad) {
        num::Stats* s = groups.Find(row.slot, p.max_groups);
        if (s == nullptr) {
          failed = absl::FailedPreconditionError(
              Cat("csv.aggregate: more than params.max_groups (", p.max_groups, ") groups"));
          return false;
        }
        ++s[p.measures.size()].count;  // the row count
        for (size_t m = 0; m < p.measures.size(); ++m) {
          if (kind[m] == 0) continue;
          if (p.measures[m].extrema) {
            s[m].AddValue(kind[m] == 1 ? small[m].ToNumber() : other[m]);
          } else if (p.measures[m].numeric) {
            if (kind[m] == 1) {
              s[m].AddToSum(small[m]);
            } else {
              s[m].AddToSum(other[m]);
            }
          } else {
            ++s[m].count;
          }
        }
        ++t.rows_aggregated;
      }
    }
    if (p.max_bad_rows && t.bad_rows > *p.max_bad_rows) {
      failed = absl::FailedPreconditionError(
          Cat("csv.aggregate: slice ", ctx.index, " has more than params.max_bad_rows (",
              *p.max_bad_rows, ") malformed rows; the first at byte offset ",
              t.samples[0]["offset"].get<uint64_t>(), ": ", t.samples[0]["error"].get<std::string>()));
      return false;
    }
    return true;
  };
  if (absl::Status read = reader.ForEachView(on_row); !read.ok()) return read;
  if (!failed.ok()) return failed;
  if (ctx.progress != nullptr) ctx.progress->store(ctx.end - ctx.begin);
  json out_groups = json::object();
  for (size_t g = 0; g < groups.size(); ++g) {
    json s = json::array();
    const num::Stats* stats = groups.stats(g);
    for (size_t m = 0; m <= p.measures.size(); ++m) s.push_back(stats[m].ToJson());
    out_groups[KeyText(DecodeKey(groups.key(g)))] = std::move(s);
  }
  return json{{"rows_read", t.rows_read},
              {"rows_aggregated", t.rows_aggregated},
              {"bad_rows", t.bad_rows},
              {"bad_row_samples", std::move(t.samples)},
              {"groups", std::move(out_groups)}};
}

json CsvAggregateHandler::Init() const {
  return json{{"rows_read", 0},
              {"rows_aggregated", 0},
              {"bad_rows", 0},
              {"bad_row_samples", json::array()},
              {"groups", json::object()}};
}

absl::Status CsvAggregateHandler::Fold(json& acc, const json& result) const {
  return MergeInto(acc, result);
}

absl::StatusOr<json> CsvAggregateHandler::Finish(const FinishContext& ctx, json acc) const {
  if (ctx.params == nullptr) return acc;
  std::unique_ptr<Fd> file;
  uint64_t size = 0;
  auto params = ParseParams(*ctx.params, &file, &size);
  if (!params.ok()) return params.status();
  const Params& p = *params;
  json columns = p.group_names;
  for (const auto& a : p.aggregates) columns.push_back(a.name);
  std::vector<std::pair<json, const json*>> keyed;
  for (const auto& [k, stats] : acc["groups"].items()) keyed.emplace_back(json::parse(k), &stats);
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return KeyLess(a.first, b.first); });
  json rows = json::array();
  for (const auto& [key, stats] : keyed) {
    json row = key;
    auto rows_stats = num::Stats::FromJson(stats->back());
    if (!rows_stats) return absl::DataLossError("csv.aggregate: bad stats in a slice result");
    for (const auto& a : p.aggregates) {
      if (a.measure < 0) {
        row.push_back(rows_stats->count);
        continue;
      }
      auto s = num::Stats::FromJson((*stats)[static_cast<size_t>(a.measure)]);
      if (!s) return absl::DataLossError("csv.aggregate: bad stats in a slice result");
      switch (a.op) {
        case Op::kCount: row.push_back(s->count); break;
        case Op::kSum: row.push_back(s->sum.ToJson()); break;
        case Op::kMin: row.push_back(s->min ? s->min->ToJson() : json(nullptr)); break;
        case Op::kMax: row.push_back(s->max ? s->max->ToJson() : json(nullptr)); break;
        case Op::kMean:
          row.push_back(s->count == 0 ? json(nullptr)
                                      : json(s->sum.ToDouble() / static_cast<double>(s->count)));
          break;
      }
    }
    rows.push_back(std::move(row));
  }
  json out{{"columns", columns},
           {"groups", rows.size()},
           {"rows_read", acc["rows_read"]},
           {"rows_aggregated", acc["rows_aggregated"]},
           {"bad_rows", acc["bad_rows"]},
           {"bad_row_samples", acc["bad_row_samples"]}};
  if (p.output.empty()) {
    out["rows"] = std::move(rows);
  } else {
    out["output"] = p.output;
    if (ctx.succeeded) {
      if (auto st = WriteOutput(p.output, columns, rows); !st.ok()) return st;
    }
  }
  return out;
}

}  // namespace orchard::worker
