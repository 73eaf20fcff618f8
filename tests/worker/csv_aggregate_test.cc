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

}  // namespace
}  // namespace orchard::worker
