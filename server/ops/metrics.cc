// The metrics registry and its text rendering; ServerMetrics' families.
// Thread-safety: see metrics.h.
#include "server/ops/metrics.h"

#include <cmath>

#include <fmt/format.h>

namespace orchard::metrics {

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard lock(mu_);
  if (i < counts_.size()) ++counts_[i];
  ++count_;
  sum_ += v;
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.count = count_;
  s.sum = sum_;
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int n) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < n; ++i, v *= factor) out.push_back(v);
  return out;
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

namespace {

// {a="x",b="y"} plus an extra label (le) when given; "" when there are none.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  if (!out.empty()) out += '}';
  return out;
}

template <typename M>
void Header(std::string& out, const Family<M>& f, const char* type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name(), EscapeHelp(f.help()), f.name(),
                     type);
}

template <typename M>
void RenderSimple(std::string& out, const Family<M>& f, const char* type) {
  Header(out, f, type);
  f.ForEach([&](const std::vector<std::string>& values, const M& m) {
    out += f.name();
    out += LabelText(f.label_names(), values);
    out += ' ';
    out += FormatValue(m.value());
    out += '\n';
  });
}

void RenderHistogram(std::string& out, const Family<Histogram>& f) {
  Header(out, f, "histogram");
  f.ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
    Histogram::Snapshot s = h.Snap();
    for (size_t i = 0; i < s.bounds.size(); ++i) {
      out += fmt::format("{}_bucket{} {}\n", f.name(),
                         LabelText(f.label_names(), values, "le", FormatValue(s.bounds[i])),
                         s.cumulative[i]);
    }
    out += fmt::format("{}_bucket{} {}\n", f.name(),
                       LabelText(f.label_names(), values, "le", "+Inf"), s.count);
    out += fmt::format("{}_sum{} {}\n", f.name(), LabelText(f.label_names(), values),
                       FormatValue(s.sum));
    out += fmt::format("{}_count{} {}\n", f.name(), LabelText(f.label_names(), values), s.count);
  });
}

}  // namespace

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  counters_.push_back(
      std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels)));
  order_.emplace_back(Type::kCounter, counters_.size() - 1);
  return *counters_.back();
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  gauges_.push_back(
      std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels)));
  order_.emplace_back(Type::kGauge, gauges_.size() - 1);
  return *gauges_.back();
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> labels,
                                          std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(labels), std::move(bounds)));
  order_.emplace_back(Type::kHistogram, histograms_.size() - 1);
  return *histograms_.back();
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [type, i] : order_) {
    switch (type) {
      case Type::kCounter: RenderSimple(out, *counters_[i], "counter"); break;
      case Type::kGauge: RenderSimple(out, *gauges_[i], "gauge"); break;
      case Type::kHistogram: RenderHistogram(out, *histograms_[i]); break;
    }
  }
  return out;
}

}  // namespace orchard::metrics

namespace orchard::server {

using metrics::ExponentialBuckets;

ServerMetrics::ServerMetrics()
    : tasks(registry.AddGauge("orchard_tasks", "Tasks by state (from the store).", {"state"})),
      subtasks(registry.AddGauge("orchard_subtasks",
                                 "Subtasks by state: the sums of the tasks' counters (from the "
                                 "store).",
                                 {"state"})),
      workers(registry.AddGauge("orchard_workers",
                                "Registered workers, alive (heartbeat within the lease TTL) or "
                                "not (from the store).",
                                {"alive"})),
      worker_slots(registry.AddGauge("orchard_worker_slots", "Slots offered by each live worker.",
                                     {"worker", "name"})),
      worker_slots_used(registry.AddGauge("orchard_worker_slots_in_use",
                                          "Slots in use on each live worker (from its last "
                                          "heartbeat).",
                                          {"worker", "name"})),
      slots(registry.AddGauge("orchard_slots", "Slots offered by all live workers.")),
      slots_used(registry.AddGauge("orchard_slots_in_use", "Slots in use on all live workers.")),
      transitions(registry.AddCounter("orchard_transitions_total",
                                      "Committed state transitions by this server process "
                                      "(restarts at zero).",
                                      {"object", "from", "to"})),
      tasks_created(registry.AddCounter("orchard_tasks_created_total",
                                        "Tasks created by this server process.")),
      lease_expiries(registry.AddCounter("orchard_lease_expiries_total",
                                         "Subtask leases that expired (the worker stopped "
                                         "heartbeating), each a failed attempt.")),
      retries(registry.AddCounter("orchard_subtask_retries_total",
                                  "Subtask attempts that failed with attempts left and went back "
                                  "to Preparing, by cause (failed, lease_expired).",
                                  {"cause"})),
      acquire_wait(registry.AddHistogram(
          "orchard_acquire_wait_seconds",
          "How long the server held a worker's Acquire long poll before answering (work found "
          "or timeout).",
          {}, {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
      rpcs(registry.AddCounter("orchard_rpcs_total", "gRPC calls handled, by method and code.",
                               {"method", "code"})),
      rpc_seconds(registry.AddHistogram("orchard_rpc_duration_seconds",
                                        "gRPC call latency (long polls included), by method and "
                                        "code.",
                                        {"method", "code"}, ExponentialBuckets(0.0005, 4, 10))),
      stream_messages(
          registry.AddCounter("orchard_stream_messages_total",
                              "Messages on gRPC streams, by method and direction (received, sent).",
                              {"method", "direction"})),
      commit_seconds(registry.AddHistogram("orchard_store_commit_seconds",
                                           "Latency of the store's COMMIT statements.", {},
                                           ExponentialBuckets(0.0001, 2.5, 12))),
      commit_batch(registry.AddHistogram("orchard_store_commit_batch_ops",
                                         "Write operations per group commit.", {},
                                         {1, 2, 4, 8, 16, 32, 64, 128, 256})),
      http_requests(registry.AddCounter("orchard_http_requests_total",
                                        "HTTP requests served, by handler and status code.",
                                        {"handler", "code"})),
      store_info(registry.AddGauge("orchard_store_info",
                                   "1 for the store this server runs on: its backend and its "
                                   "synchronous level (normal survives kill -9, full survives "
                                   "power loss).",
                                   {"backend", "synchronous"})) {
  // Families without labels show their sample from the start.
  tasks_created.With({});
  lease_expiries.With({});
  slots.With({});
  slots_used.With({});
  acquire_wait.With({});
  commit_seconds.With({});
  commit_batch.With({});
}

}  // namespace orchard::server
