// Tests of csv.aggregate: the RFC 4180 reader, the record-aligned plan at
// every boundary, and that any split gives the single-pass answer exactly.
// Files go to a fresh temp dir per test.
#include "tests/testing/temp_dir.h"
#include "worker/handlers/csv_aggregate.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "worker/handlers/csv_reader.h"
#include "worker/handlers/number.h"

namespace orchard::worker {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

class CsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = orchard::testing::FreshTestDir("csv");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Every record of the file, parsed in one pass.
  static std::vector<csv::Record> ReadAll(const std::string& path, char delim = ',') {
    int fd = open(path.c_str(), O_RDONLY);
    std::vector<csv::Record> out;
    csv::Reader r(fd, 0, UINT64_MAX, delim, 7);  // a tiny buffer: every refill edge
    csv::Record rec;
    while (*r.Next(rec)) out.push_back(rec);
    close(fd);
    return out;
  }

  // Plans, runs every slice, folds in index order and finishes: what the
  // daemon does, without it.
  absl::StatusOr<json> Aggregate(json params, uint64_t end, std::stop_token stop = {}) {
    PlanInput in{0, end, &params};
    auto plan = handler_.PlanSlices(in);
    if (!plan.ok()) return plan.status();
    EXPECT_FALSE(plan->uniform);
    last_bounds_ = plan->bounds;
    json acc = handler_.Init();
    for (size_t i = 0; i + 1 < plan->bounds.size(); ++i) {
      std::atomic<uint64_t> progress{0};
      SliceContext ctx;
      ctx.index = i;
      ctx.begin = plan->bounds[i];
      ctx.end = plan->bounds[i + 1];
      ctx.attempt = 1;
      ctx.params = &params;
      ctx.progress = &progress;
      ctx.stop = stop;
      auto r = handler_.Run(ctx);
      if (!r.ok()) return r.status();
      // Results travel as JSON text through the store.
      auto st = handler_.Fold(acc, json::parse(r->dump()));
      if (!st.ok()) return st;
    }
    return handler_.Finish({"t-test", &params, true}, std::move(acc));
  }

  fs::path dir_;
  CsvAggregateHandler handler_;
  std::vector<uint64_t> last_bounds_;
};

// This test verifies that the reader handles RFC 4180: quoted delimiters,
// doubled quotes, newlines inside quotes, CRLF, empty fields, a last line
// without a newline, and a UTF-8 byte order mark.
TEST_F(CsvTest, ReaderParsesRfc4180) {
  std::string path = Write("a.csv",
                           "\xEF\xBB\xBF"
                           "k,v\r\n\"a,b\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",\n,\"\"\nlast,1");
  auto recs = ReadAll(path);
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[0].field(0), "k");
  EXPECT_EQ(recs[0].field(1), "v");
  EXPECT_EQ(recs[1].field(0), "a,b");
  EXPECT_EQ(recs[1].field(1), "say \"hi\"");
  EXPECT_EQ(recs[2].field(0), "multi\nline");
  EXPECT_EQ(recs[2].field(1), "");
  ASSERT_EQ(recs[3].size(), 2u);
  EXPECT_EQ(recs[3].field(0), "");
  EXPECT_FALSE(recs[3].blank);
  EXPECT_EQ(recs[4].field(0), "last");
  EXPECT_EQ(recs[4].field(1), "1");
  for (const auto& r : recs) EXPECT_EQ(r.error, nullptr) << r.offset;
}

// This test verifies that malformed quoting is flagged, not hidden, and that
// the parse goes on with the next row.
TEST_F(CsvTest, ReaderFlagsMalformedQuoting) {
  std::string path = Write("bad.csv", "a,b\"c\n\"x\"y,2\nok,3\n\"open,4\n");
  auto recs = ReadAll(path);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_STREQ(recs[0].error, "a quote inside an unquoted field");
  EXPECT_STREQ(recs[1].error, "text after a closing quote");
  EXPECT_EQ(recs[2].error, nullptr);
  EXPECT_STREQ(recs[3].error, "a quoted field is not closed at the end of the file");
}

// This test verifies that every planned bound is a record start, for every
// chunk size, including cuts that fall exactly after a newline, inside a
// quoted newline and between CR and LF.
TEST_F(CsvTest, BoundsAreRecordStartsForEveryChunkSize) {
  std::string text = "h1,h2\r\n\"x\ny\",1\r\n\"\"\"q\"\"\n\",2\nplain,3\r\n\n\"a,\nb\",4\nz,5";
  std::string path = Write("b.csv", text);
  std::set<uint64_t> starts;
  for (const auto& r : ReadAll(path)) starts.insert(r.offset);
  int fd = open(path.c_str(), O_RDONLY);
  for (uint64_t chunk = 1; chunk <= text.size() + 1; ++chunk) {
    auto b = csv::RecordBounds(fd, text.size(), chunk, 5);
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->front(), 0u);
    ASSERT_EQ(b->back(), text.size());
    for (size_t i = 1; i + 1 < b->size(); ++i) {
      EXPECT_TRUE(starts.count((*b)[i])) << "chunk " << chunk << " bound " << (*b)[i];
      EXPECT_LT((*b)[i - 1], (*b)[i]);
    }
  }
  close(fd);
}

std::string TrickyCsv(int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text = "region,name,amount,year\r\n";
  const char* names[] = {"plain", "\"with,comma\"", "\"multi\nline\"", "\"q\"\"uote\"", "",
                         "\"\"", "서울"};
  const char* regions[] = {"11", "26", "\"4\n1\"", "9", "10"};
  for (int i = 0; i < rows; ++i) {
    text += regions[rng() % 5];
    text += ",";
    text += names[rng() % 7];
    text += ",";
    int kind = rng() % 6;
    if (kind == 0) {
      text += "";  // empty: skipped by sum
    } else if (kind == 1) {
      text += std::to_string(rng() % 1000) + "." + std::to_string(rng() % 100);
    } else {
      text += "-" + std::to_string(rng() % 100000);
    }
    text += ",";
    text += std::to_string(2019 + rng() % 3);
    text += (rng() % 2) ? "\r\n" : "\n";
  }
  return text;
}

json TrickyParams(const std::string& path, uint64_t chunk) {
  return json{{"path", path},
              {"group_by", {"region", 3}},
              {"aggregates",
               {{{"op", "count"}},
                {{"column", "amount"}, {"op", "sum"}},
                {{"column", "amount"}, {"op", "mean"}},
                {{"column", "amount"}, {"op", "min"}},
                {{"column", "amount"}, {"op", "max"}},
                {{"column", "name"}, {"op", "count"}}}},
              {"chunk_bytes", chunk}};
}

// This test verifies the central promise: whatever the chunk size — one byte,
// a prime, the whole file — the split aggregate equals the single-pass one
// exactly, rows straddling boundaries and quoted newlines included.
TEST_F(CsvTest, EverySplitEqualsTheSinglePassAggregate) {
  std::string text = TrickyCsv(300, 7);
  std::string path = Write("t.csv", text);
  auto whole = Aggregate(TrickyParams(path, 1ull << 40), text.size());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(last_bounds_.size(), 2u);
  EXPECT_EQ((*whole)["rows_read"], 300);
  EXPECT_EQ((*whole)["bad_rows"], 0) << whole->dump();
  for (uint64_t chunk : {1ull, 2ull, 3ull, 17ull, 64ull, 257ull, 1000ull, 4099ull}) {
    auto split = Aggregate(TrickyParams(path, chunk), text.size());
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_EQ(*split, *whole) << "chunk " << chunk;
    if (chunk < 100) EXPECT_GT(last_bounds_.size(), 20u);
  }
}

// This test verifies the numbers against a hand-computed table, and that
// decimal sums are exact (0.1 + 0.2 is 0.3, however split).
TEST_F(CsvTest, ExactDecimalsAndHandComputedTable) {
  std::string text = "k,v\na,0.1\nb,5\na,0.2\nb,-7\nb,\na,1e1\n";
  std::string path = Write("n.csv", text);
  for (uint64_t chunk : {1ull, 1000ull}) {
    json params{{"path", path},
                {"group_by", {"k"}},
                {"aggregates",
                 {{{"column", "v"}, {"op", "sum"}},
                  {{"column", "v"}, {"op", "mean"}},
                  {{"column", "v"}, {"op", "min"}},
                  {{"column", "v"}, {"op", "max"}},
                  {{"column", "v"}, {"op", "count"}},
                  {{"op", "count"}}}},
                {"chunk_bytes", chunk}};
    auto r = Aggregate(params, text.size());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)["columns"],
              json({"k", "v_sum", "v_mean", "v_min", "v_max", "v_count", "count"}));
    json a = (*r)["rows"][0], b = (*r)["rows"][1];
    EXPECT_EQ(a[0], "a");
    EXPECT_DOUBLE_EQ(a[1].get<double>(), 10.3);
    EXPECT_DOUBLE_EQ(a[2].get<double>(), 10.3 / 3);
    EXPECT_DOUBLE_EQ(a[3].get<double>(), 0.1);
    EXPECT_EQ(b, json({"b", -2, -1.0, -7, 5, 2, 3}));
  }
}

// This test verifies that a missing column is refused at plan time with an
// error naming the param and the column, and that other bad params name
// their field.
TEST_F(CsvTest, BadParamsNameTheField) {
  std::string path = Write("p.csv", "region,amount\n1,2\n");
  auto plan = [&](json p) {
    PlanInput in{0, 18, &p};
    return handler_.PlanSlices(in).status();
  };
  auto st = plan({{"path", path}, {"group_by", {"regon"}}, {"aggregates", {{{"op", "count"}}}}});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("params.group_by[0]"), std::string::npos) << st;
  EXPECT_NE(st.message().find("'regon'"), std::string::npos) << st;
  st = plan({{"path", path}, {"aggregates", {{{"column", "amount"}, {"op", "median"}}}}});
  EXPECT_NE(st.message().find("params.aggregates[0].op"), std::string::npos) << st;
  st = plan({{"path", path}, {"aggregates", {{{"column", 5}, {"op", "sum"}}}}});
  EXPECT_NE(st.message().find("params.aggregates[0].column"), std::string::npos) << st;
  st = plan({{"path", "relative.csv"}, {"aggregates", {{{"op", "count"}}}}});
  EXPECT_NE(st.message().find("params.path"), std::string::npos) << st;
  st = plan({{"path", path + ".missing"}, {"aggregates", {{{"op", "count"}}}}});
  EXPECT_NE(st.message().find("params.path"), std::string::npos) << st;
  json p{{"path", path}, {"aggregates", {{{"op", "count"}}}}};
  PlanInput past{0, 19, &p};
  st = handler_.PlanSlices(past).status();
  EXPECT_NE(st.message().find("range: must be 0:18"), std::string::npos) << st;
}

// This test verifies that an empty file is refused with a clear reason, and
// that a header-only file gives an empty table.
TEST_F(CsvTest, EmptyFileAndHeaderOnly) {
  std::string empty = Write("e.csv", "");
  json p{{"path", empty}, {"aggregates", {{{"op", "count"}}}}};
  PlanInput in{0, 1, &p};
  auto st = handler_.PlanSlices(in).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("is empty"), std::string::npos) << st;

  std::string header = Write("h.csv", "a,b\r\n");
  auto r = Aggregate({{"path", header}, {"group_by", {"a"}}, {"aggregates", {{{"op", "count"}}}}},
                     5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["rows"], json::array());
  EXPECT_EQ((*r)["rows_read"], 0);
}

// This test verifies that malformed rows are counted and reported with their
// byte offsets, not aggregated, and that max_bad_rows fails the slice for good.
TEST_F(CsvTest, MalformedRowsAreCountedWithOffsets) {
  std::string text = "k,v\na,1\na,2,3\na,x\nb\"c,4\na,5\n";
  std::string path = Write("m.csv", text);
  json p{{"path", path}, {"group_by", {"k"}}, {"aggregates", {{{"column", "v"}, {"op", "sum"}}}}};
  auto r = Aggregate(p, text.size());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["bad_rows"], 3);
  EXPECT_EQ((*r)["rows_read"], 5);
  EXPECT_EQ((*r)["rows"], json::array({json::array({"a", 6})}));
  const json& samples = (*r)["bad_row_samples"];
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0]["offset"], 8);
  EXPECT_EQ(samples[0]["error"], "3 fields, expected 2");
  EXPECT_EQ(samples[1]["offset"], 14);
  EXPECT_NE(samples[1]["error"].get<std::string>().find("'x' is not a number"), std::string::npos);
  EXPECT_EQ(samples[2]["offset"], 18);

  p["max_bad_rows"] = 2;
  auto failed = Aggregate(p, text.size());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.status().message().find("byte offset 8"), std::string::npos) << failed.status();
}

// This test verifies the filter, positions without a header, another
// delimiter, and the output file.
TEST_F(CsvTest, FilterPositionsDelimiterAndOutputFile) {
  std::string text = "x;1;a\ny;2;b\nx;3;b\n\"x;\";4;b\n";
  std::string path = Write("f.csv", text);
  std::string out = (dir_ / "out.csv").string();
  json p{{"path", path},
         {"header", false},
         {"delimiter", ";"},
         {"group_by", {0}},
         {"filter", {{"column", 2}, {"equals", "b"}}},
         {"aggregates", {{{"column", 1}, {"op", "sum"}}}},
         {"output", out},
         {"chunk_bytes", 4}};
  auto r = Aggregate(p, text.size());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["output"], out);
  EXPECT_FALSE(r->contains("rows"));
  EXPECT_EQ((*r)["groups"], 3);
  std::ifstream f(out);
  std::string written((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, "c0,c1_sum\nx,3\nx;,4\ny,2\n");
}

// This test verifies that a stop request ends the slice as CANCELLED.
TEST_F(CsvTest, StopEndsTheSliceCancelled) {
  std::string path = Write("s.csv", TrickyCsv(20000, 3));
  std::stop_source stop;
  stop.request_stop();
  auto r = Aggregate(TrickyParams(path, 1ull << 40), fs::file_size(path), stop.get_token());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
}


// Every record of `path` through NextView (all columns selected, the given
// buffer and row limit), checked field by field against Next, the state
// machine alone. Returns the number of records.
size_t ExpectViewMatchesNext(const std::string& path, size_t buffer, size_t max_row = 1 << 20,
                             char delim = ',') {
  int fd = open(path.c_str(), O_RDONLY);
  csv::Reader slow(fd, 0, UINT64_MAX, delim, 1 << 16, max_row);
  csv::Reader fast(fd, 0, UINT64_MAX, delim, buffer, max_row);
  std::vector<int> all(64);
  for (int i = 0; i < 64; ++i) all[i] = i;
  fast.Select(all);
  csv::Record rec;
  csv::View view;
  size_t n = 0;
  while (true) {
    auto a = slow.Next(rec);
    auto b = fast.NextView(view);
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << "buffer " << buffer << " after record " << n;
    if (!*a || !*b) break;
    std::string where = "buffer " + std::to_string(buffer) + " record at " +
                        std::to_string(rec.offset);
    EXPECT_EQ(view.offset, rec.offset) << where;
    EXPECT_EQ(view.fields, rec.size()) << where;
    EXPECT_EQ(view.blank, rec.blank) << where;
    EXPECT_STREQ(view.error == nullptr ? "" : view.error, rec.error == nullptr ? "" : rec.error)
        << where;
    // (A malformed record's fields are never used; over the row limit, the
    // text it keeps depends on where the reads fell.)
    bool malformed = rec.error != nullptr;
    for (size_t i = 0; !malformed && i < rec.size() && i < 64 && view.fields == rec.size(); ++i) {
      EXPECT_EQ(view.slot[i], rec.field(i)) << where << " field " << i;
    }
    ++n;
  }
  close(fd);
  return n;
}

// This test verifies that the fast path (a quote-free line split in the
// buffer) and the state machine agree at every buffer boundary: a quote
// right at the boundary, CRLF split across two reads, a row longer than the
// buffer, a lone CR, blank lines and a last line without a newline.
TEST_F(CsvTest, FastPathAgreesWithStateMachineAtEveryBufferBoundary) {
  const std::string texts[] = {
      "a,b,c\r\n1,\"2\",3\r\n\"x\ny\",,z\r\n\r\nlong-field-longer-than-a-buffer,2,3\nend,,",
      "k,v\n\"q\"\"uote\",1\nplain,2\r\nlone\rcr,3\n\n\n\"open,4",
      "h\r\n\"\"\r\n,\r\n\r\nx",
      "a,b\"c\n\"x\"y,2\nok,3\n",
      "only,one,line",
  };
  for (const auto& text : texts) {
    std::string path = Write("edge.csv", text);
    size_t records = 0;
    for (size_t buffer = 1; buffer <= text.size() + 2; ++buffer) {
      size_t n = ExpectViewMatchesNext(path, buffer);
      if (buffer == 1) records = n;
      EXPECT_EQ(n, records) << "buffer " << buffer;
    }
    EXPECT_GT(records, 0u);
    // The row limit: over it on both paths alike.
    for (size_t limit : {0, 1, 3, 8}) ExpectViewMatchesNext(path, 7, limit);
  }
}

// A random CSV mixing every case the reader knows, from a fixed seed.
std::string RandomCsv(std::mt19937& rng, int rows) {
  const char* fields[] = {"", "1", "22", "-3.5", "abc", "\"q,uoted\"", "\"multi\nline\"",
                          "\"dou\"\"ble\"", "\"\"", "lone\rcr", "bad\"quote", "\"after\"x",
                          "서울", "12345678901234567890"};
  std::string text;
  for (int r = 0; r < rows; ++r) {
    int kind = static_cast<int>(rng() % 20);
    if (kind == 0) {
      text += (rng() % 2) ? "\r\n" : "\n";  // a blank line
      continue;
    }
    int width = kind == 1 ? static_cast<int>(rng() % 6) + 1 : 4;  // a few rows of other widths
    for (int f = 0; f < width; ++f) {
      if (f > 0) text += ",";
      // Mostly plain rows, as in real files; some with anything.
      text += fields[(kind < 14) ? rng() % 5 : rng() % std::size(fields)];
    }
    if (r + 1 < rows || rng() % 2) text += (rng() % 3 == 0) ? "\r\n" : "\n";
  }
  return text;
}

// This test verifies, on random inputs from a fixed seed, that NextView (fast
// path where it applies) returns exactly what the state machine returns, for
// buffer sizes around the SIMD block size and larger.
TEST_F(CsvTest, FastPathAndStateMachineAgreeOnRandomInputs) {
  std::mt19937 rng(20261125);
  for (int file = 0; file < 30; ++file) {
    std::string text = RandomCsv(rng, 200);
    char delim = file % 3 == 0 ? '\t' : ',';  // another delimiter, in a third of them
    std::replace(text.begin(), text.end(), ',', delim);
    std::string path = Write("r.csv", text);
    for (size_t buffer : {1, 5, 31, 32, 33, 64, 97, 1024, 1 << 16}) {
      ExpectViewMatchesNext(path, buffer, 1 << 20, delim);
    }
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "file " << file << ":\n" << text;
      return;
    }
  }
}

// This test verifies that only the selected columns are returned, in their
// slots, and that skipping unselected fields in bulk counts them right
// (rows of 70 columns: past the 64 the bulk skip knows).
TEST_F(CsvTest, ViewSelectsColumnsBySlot) {
  std::string text;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 70; ++c) text += (c ? "," : "") + std::to_string(r * 100 + c);
    text += "\n";
  }
  std::string path = Write("wide.csv", text);
  int fd = open(path.c_str(), O_RDONLY);
  for (size_t buffer : {16, 100, 1 << 16}) {
    csv::Reader reader(fd, 0, UINT64_MAX, ',', buffer);
    std::vector<int> slot_of(70, -1);
    slot_of[69] = 0;
    slot_of[3] = 1;
    slot_of[65] = 2;
    reader.Select(slot_of);
    csv::View v;
    for (int r = 0; r < 3; ++r) {
      ASSERT_TRUE(*reader.NextView(v));
      EXPECT_EQ(v.fields, 70u);
      EXPECT_EQ(v.slot[0], std::to_string(r * 100 + 69));
      EXPECT_EQ(v.slot[1], std::to_string(r * 100 + 3));
      EXPECT_EQ(v.slot[2], std::to_string(r * 100 + 65));
    }
    EXPECT_FALSE(*reader.NextView(v));
  }
  close(fd);
}

// This test verifies that quoting every field (the state machine's path)
// gives the same aggregate as the same file unquoted (the fast path).
TEST_F(CsvTest, QuotedAndPlainFilesAggregateTheSame) {
  std::mt19937 rng(11);
  std::string plain = "region,amount,year\n", quoted = "\"region\",\"amount\",\"year\"\r\n";
  for (int i = 0; i < 5000; ++i) {
    std::string f[3] = {std::to_string(11 + rng() % 17),
                        (rng() % 9 == 0) ? "" : std::to_string(rng() % 100000) +
                                                    ((rng() % 4 == 0) ? ".25" : ""),
                        std::to_string(2019 + rng() % 4)};
    plain += f[0] + "," + f[1] + "," + f[2] + "\n";
    quoted += "\"" + f[0] + "\",\"" + f[1] + "\",\"" + f[2] + "\"\r\n";
  }
  auto params = [](const std::string& path) {
    return json{{"path", path},
                {"group_by", {"region", "year"}},
                {"aggregates",
                 {{{"column", "amount"}, {"op", "sum"}},
                  {{"column", "amount"}, {"op", "mean"}},
                  {{"column", "amount"}, {"op", "max"}},
                  {{"op", "count"}}}},
                {"chunk_bytes", 7000}};
  };
  std::string a = Write("plain.csv", plain), b = Write("quoted.csv", quoted);
  auto x = Aggregate(params(a), plain.size());
  auto y = Aggregate(params(b), quoted.size());
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ((*x)["rows"], (*y)["rows"]);
  EXPECT_EQ((*x)["rows_read"], 5000);
  EXPECT_EQ((*y)["rows_read"], 5000);
}

// This test verifies that the plan's bounds are exactly the first record
// start at or after each multiple of the chunk (each once), however many
// threads count the quotes.
TEST_F(CsvTest, BoundsAreTheFirstRecordStartAfterEachCutForAnyThreadCount) {
  std::string text = TrickyCsv(400, 5);
  std::string path = Write("t.csv", text);
  std::vector<uint64_t> starts;
  for (const auto& r : ReadAll(path)) starts.push_back(r.offset);
  int fd = open(path.c_str(), O_RDONLY);
  for (uint64_t chunk : {1ull, 2ull, 7ull, 64ull, 333ull, 1000ull, 4096ull}) {
    std::vector<uint64_t> want{0};
    for (uint64_t c = chunk; c < text.size(); c += chunk) {
      auto it = std::lower_bound(starts.begin(), starts.end(), c);
      if (it == starts.end()) break;
      if (*it != want.back()) want.push_back(*it);
    }
    want.push_back(text.size());
    for (unsigned threads : {1u, 2u, 3u, 4u}) {
      for (size_t buffer : {5ul, 4096ul}) {
        auto b = csv::RecordBounds(fd, text.size(), chunk, buffer, threads);
        ASSERT_TRUE(b.ok()) << b.status();
        EXPECT_EQ(*b, want) << "chunk " << chunk << " threads " << threads << " buffer " << buffer;
      }
    }
  }
  close(fd);
}

// This test verifies that the small-number fast paths read exactly what
// Parse reads, and leave to Parse whatever is not a plain short decimal.
TEST(CsvNumberTest, FastParsersMatchParse) {
  std::mt19937 rng(3);
  const char alphabet[] = "0123456789.-+ eE9x";
  std::vector<std::string> cases = {"0",     "-0",    "+7",   "12345678", "123456789",
                                    "1.",    ".5",    "-.5",  "007",      "99999999",
                                    "1.2.3", "-",     ".",    "",         " 1",
                                    "1e3",   "1234567890123456789", "999999999999999999",
                                    "-99999999999999999", "12:4", "/"};
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    size_t n = rng() % 12;
    for (size_t j = 0; j < n; ++j) s += alphabet[rng() % (sizeof alphabet - 1)];
    cases.push_back(s);
  }
  for (const auto& s : cases) {
    auto want = num::Parse(s);
    num::Small small;
    if (num::ParseSmall(s, small)) {
      ASSERT_TRUE(want && want->exact) << "'" << s << "'";
      EXPECT_EQ(num::Compare(small.ToNumber(), *want), 0) << "'" << s << "'";
      EXPECT_EQ(small.scale, want->scale) << "'" << s << "'";
    }
    std::string padded = s + std::string("\x7f\x01\x35\x39\x2e\x00\xff\x30", 8);  // 8 bytes after
    num::Small fast;
    bool ok = num::ParseSmallPadded(std::string_view(padded.data(), s.size()), fast);
    EXPECT_EQ(ok, num::ParseSmall(s, small)) << "'" << s << "'";
    if (ok) {
      EXPECT_EQ(fast.mant, small.mant) << "'" << s << "'";
      EXPECT_EQ(fast.scale, small.scale) << "'" << s << "'";
    }
  }
}

}  // namespace
}  // namespace orchard::worker
