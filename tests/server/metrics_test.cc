// Tests of server/metrics (the registry and its text format), the commit
// reporter's counting, and the interceptor's method names. The exposition is
// checked by `promtool check metrics` (Debian's prometheus package) when it
// is installed; deploy/install-deps.sh installs it.
#include "server/ops/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "server/ops/commit_reporter.h"
#include "server/ops/interceptor.h"

namespace {

using orchard::server::ServerMetrics;

// Runs `promtool check metrics` on `text`; returns its exit code and output.
// nullopt when promtool is not installed.
std::optional<std::pair<int, std::string>> Promtool(const std::string& text) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  auto path = std::filesystem::temp_directory_path() /
              ("orchard_metrics_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << text;
  std::string cmd = "promtool check metrics < " + path.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int rc = pclose(p);
  std::filesystem::remove(path);
  return std::make_pair(WEXITSTATUS(rc), out);
}

std::string Line(const std::string& text, const std::string& prefix) {
  size_t at = text.find("\n" + prefix);
  if (at == std::string::npos) return "";
  size_t end = text.find('\n', at + 1);
  return text.substr(at + 1, end - at - 1);
}

// This test verifies the text format of a counter, a gauge and a histogram:
// HELP and TYPE lines, labels in order, cumulative buckets with +Inf, sum and
// count.
TEST(MetricsRegistry, RendersTheTextExpositionFormat) {
  orchard::metrics::Registry r;
  auto& c = r.AddCounter("demo_events_total", "Events seen.", {"kind"});
  auto& g = r.AddGauge("demo_depth", "Queue depth.");
  auto& h = r.AddHistogram("demo_seconds", "Latency.", {}, {0.1, 1});
  c.With({"a"}).Inc();
  c.With({"a"}).Inc(2);
  c.With({"b"}).Inc();
  g.With({}).Set(7);
  h.With({}).Observe(0.05);
  h.With({}).Observe(0.5);
  h.With({}).Observe(5);
  EXPECT_EQ(r.Render(),
            "# HELP demo_events_total Events seen.\n"
            "# TYPE demo_events_total counter\n"
            "demo_events_total{kind=\"a\"} 3\n"
            "demo_events_total{kind=\"b\"} 1\n"
            "# HELP demo_depth Queue depth.\n"
            "# TYPE demo_depth gauge\n"
            "demo_depth 7\n"
            "# HELP demo_seconds Latency.\n"
            "# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{le=\"0.1\"} 1\n"
            "demo_seconds_bucket{le=\"1\"} 2\n"
            "demo_seconds_bucket{le=\"+Inf\"} 3\n"
            "demo_seconds_sum 5.55\n"
            "demo_seconds_count 3\n");
}

// This test verifies that label values and help text are escaped as the
// format requires (backslash, quote, newline).
TEST(MetricsRegistry, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(orchard::metrics::EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(orchard::metrics::EscapeHelp("line\\one\ntwo \"q\""), "line\\\\one\\ntwo \"q\"");
  EXPECT_EQ(orchard::metrics::FormatValue(3), "3");
  EXPECT_EQ(orchard::metrics::FormatValue(0.25), "0.25");
}

// This test verifies that Clear() drops a family's children (the per-worker
// gauges refilled at each scrape).
TEST(MetricsRegistry, ClearDropsChildren) {
  orchard::metrics::Registry r;
  auto& g = r.AddGauge("demo_slots", "Slots.", {"worker"});
  g.With({"w-1"}).Set(4);
  g.Clear();
  g.With({"w-2"}).Set(2);
  std::string text = r.Render();
  EXPECT_EQ(text.find("w-1"), std::string::npos);
  EXPECT_NE(text.find("demo_slots{worker=\"w-2\"} 2"), std::string::npos);
}

// This test verifies that the commit reporter counts transitions by
// object/from/to, retries by cause, lease expiries, creations, commits, and
// the counted-only transitions past the detail cap.
TEST(CommitReporter, CountsTransitionsRetriesAndExpiries) {
  ServerMetrics m;
  orchard::server::CommitReporter reporter(&m);
  auto note = [](int64_t idx, int from, int to, std::string event) {
    orchard::store::TransitionNote n;
    n.task_id = "t-1";
    n.subtask_index = idx;
    n.from = from;
    n.to = to;
    n.event = std::move(event);
    n.actor = "w-1";
    n.attempt = 1;
    return n;
  };
  reporter.OnCommitted({{0.002, 3}},
                       {note(-1, 0, 1, "Submitted"), note(-1, 1, 2, "Planned"),
                        note(0, 1, 2, "Leased"), note(0, 2, 1, "Failed"),
                        note(1, 2, 1, "LeaseExpired"), note(2, 2, 4, "LeaseExpiredPermanently")},
                       {{"t-1", true, 1, 5, "CancelRequested", 1000}});
  std::string text = m.registry.Render();
  EXPECT_EQ(Line(text, "orchard_transitions_total{object=\"task\",from=\"Preparing\",to=\"Running\"}"),
            "orchard_transitions_total{object=\"task\",from=\"Preparing\",to=\"Running\"} 1");
  EXPECT_NE(text.find("orchard_transitions_total{object=\"subtask\",from=\"Running\",to="
                      "\"Preparing\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("orchard_transitions_total{object=\"subtask\",from=\"Preparing\",to="
                      "\"Terminated\"} 1000"),
            std::string::npos);
  EXPECT_NE(text.find("orchard_subtask_retries_total{cause=\"failed\"} 1"), std::string::npos);
  EXPECT_NE(text.find("orchard_subtask_retries_total{cause=\"lease_expired\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("orchard_lease_expiries_total 2"), std::string::npos);
  EXPECT_NE(text.find("orchard_tasks_created_total 1"), std::string::npos);
  EXPECT_NE(text.find("orchard_store_commit_batch_ops_count 1"), std::string::npos);
  EXPECT_NE(text.find("orchard_store_commit_seconds_count 1"), std::string::npos);
}

// This test verifies the method label: the service and method without the
// proto package.
TEST(MetricsInterceptor, ShortMethodNameDropsThePackage) {
  EXPECT_EQ(orchard::server::ShortMethodName("/orchard.v1.WorkerService/Acquire"),
            "WorkerService/Acquire");
  EXPECT_EQ(orchard::server::ShortMethodName("/grpc.health.v1.Health/Check"), "Health/Check");
  EXPECT_EQ(orchard::server::ShortMethodName(nullptr), "unknown");
}

// This test verifies that the server's whole exposition, with odd label
// values, passes `promtool check metrics`.
TEST(ServerMetrics, ExpositionPassesPromtool) {
  ServerMetrics m;
  m.tasks.With({"Running"}).Set(2);
  m.worker_slots.With({"w-1", "node \"a\"\\b\nc"}).Set(4);
  m.rpcs.With({"TaskService/Submit", "OK"}).Inc();
  m.rpc_seconds.With({"TaskService/Submit", "OK"}).Observe(0.003);
  m.acquire_wait.With({}).Observe(1.5);
  m.transitions.With({"subtask", "Preparing", "Running"}).Inc();
  m.http_requests.With({"metrics", "200"}).Inc();
  auto r = Promtool(m.registry.Render());
  if (!r) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  EXPECT_EQ(r->first, 0) << r->second << "\n" << m.registry.Render();
}

}  // namespace
