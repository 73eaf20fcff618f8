// csv-aggregate-cpu: the CPU cost of the csv.aggregate handler in one
// process, without a cluster: plans the file (the quote-counting pass), runs
// every slice one after the other on this thread, folds and finishes, and
// prints the CPU time (user + sys) and wall time of each phase, MB/s per core,
// and the result table's digest (so two builds can be checked for the same
// answer). The query is csv-aggregate-bench's: sum and mean of `amount` by
// `region` and `year`, unless --params gives another.
//
//   csv-aggregate-cpu --csv /tmp/rx-2g.csv [--chunk BYTES] [--repeat N]
//                     [--params JSON]   (path and chunk_bytes are filled in)
//
// Prints one JSON object per repeat. Single-threaded; owns nothing else.
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/handlers/csv_aggregate.h"

namespace {

using json = nlohmann::json;

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int Usage(const char* why) {
  fprintf(stderr,
          "csv-aggregate-cpu: %s\nusage: csv-aggregate-cpu --csv PATH [--chunk BYTES] "
          "[--repeat N] [--params JSON]\n",
          why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  uint64_t chunk = 64ull << 20;
  int repeat = 1;
  json params{{"group_by", {"region", "year"}},
              {"aggregates",
               {{{"column", "amount"}, {"op", "sum"}}, {{"column", "amount"}, {"op", "mean"}}}}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage(("missing the value of " + a).c_str());
    std::string v = argv[++i];
    if (a == "--csv") {
      path = v;
    } else if (a == "--chunk") {
      chunk = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--repeat") {
      repeat = std::atoi(v.c_str());
    } else if (a == "--params") {
      params = json::parse(v, nullptr, false);
      if (params.is_discarded() || !params.is_object()) return Usage("--params: not a JSON object");
    } else {
      return Usage(("unknown option " + a).c_str());
    }
  }
  if (path.empty() || chunk == 0 || repeat < 1) return Usage("--csv is required");
  if (path[0] != '/') {
    char* abs = realpath(path.c_str(), nullptr);
    if (abs == nullptr) return Usage(("cannot open " + path).c_str());
    path = abs;
    free(abs);
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Usage(("cannot open " + path).c_str());
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  params["path"] = path;
  params["chunk_bytes"] = chunk;

  orchard::worker::CsvAggregateHandler handler;
  for (int r = 0; r < repeat; ++r) {
    double c0 = CpuSeconds(), w0 = WallSeconds();
    orchard::worker::PlanInput in{0, size, &params};
    auto plan = handler.PlanSlices(in);
    if (!plan.ok()) {
      fprintf(stderr, "plan: %s\n", std::string(plan.status().message()).c_str());
      return 1;
    }
    double c1 = CpuSeconds(), w1 = WallSeconds();
    json acc = handler.Init();
    for (size_t i = 0; i + 1 < plan->bounds.size(); ++i) {
      orchard::worker::SliceContext ctx;
      ctx.index = i;
      ctx.begin = plan->bounds[i];
      ctx.end = plan->bounds[i + 1];
      ctx.attempt = 1;
      ctx.params = &params;
      auto out = handler.Run(ctx);
      if (!out.ok()) {
        fprintf(stderr, "slice %zu: %s\n", i, std::string(out.status().message()).c_str());
        return 1;
      }
      auto folded = handler.Fold(acc, *out);
      if (!folded.ok()) {
        fprintf(stderr, "fold: %s\n", std::string(folded.message()).c_str());
        return 1;
      }
    }
    double c2 = CpuSeconds(), w2 = WallSeconds();
    auto result = handler.Finish({"t-bench", &params, true}, std::move(acc));
    if (!result.ok()) {
      fprintf(stderr, "finish: %s\n", std::string(result.status().message()).c_str());
      return 1;
    }
    const double mb = static_cast<double>(size) / 1e6;
    json line{{"file_mb", std::round(mb)},
              {"slices", plan->bounds.size() - 1},
              {"plan_cpu_s", c1 - c0},
              {"plan_wall_s", w1 - w0},
              {"run_cpu_s", c2 - c1},
              {"run_wall_s", w2 - w1},
              {"run_mb_per_cpu_s", mb / (c2 - c1)},
              {"total_mb_per_cpu_s", mb / (c2 - c0)},
              {"groups", (*result)["groups"]},
              {"rows_read", (*result)["rows_read"]},
              {"bad_rows", (*result)["bad_rows"]},
              {"digest", std::hash<std::string>()((*result).dump())}};
    printf("%s\n", line.dump().c_str());
    fflush(stdout);
  }
  return 0;
}
