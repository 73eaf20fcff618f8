// Prometheus metrics without an external library: a small registry of
// counter, gauge and histogram families with labels, rendered in the text
// exposition format 0.0.4 (HELP and TYPE lines, escaped label values), and
// ServerMetrics, the server's own families in one place.
//
// Thread-safety: everything here may be used from any thread at once. A
// family's map of label values is guarded by its mutex; a child's value is an
// atomic (counter, gauge) or guarded by the child's own mutex (histogram).
// References returned by With() stay valid until the family is Clear()ed.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::metrics {

class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // REQUIRES: bounds sorted ascending; +Inf is implied.
  explicit Histogram(const std::vector<double>& bounds) : bounds_(bounds), counts_(bounds.size()) {}
  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Snap() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Exponential bucket bounds: start, start*factor, ... (n bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int n);

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with its label names and a child per label-value tuple.
template <typename M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The child for these label values (as many as label names), created at 0.
  M& With(const std::vector<std::string>& values) {
    std::lock_guard lock(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) {
      it = children_.emplace(values, Make()).first;
    }
    return *it->second;
  }
  // Drops every child (e.g. gauges refilled from the store at each scrape).
  void Clear() {
    std::lock_guard lock(mu_);
    children_.clear();
  }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn(label_values, child) for each child, in label order, under the lock.
  template <typename Fn>
  void ForEach(Fn fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::unique_ptr<M> Make() {
    if constexpr (std::is_same_v<M, Histogram>) {
      return std::make_unique<M>(bounds_);
    } else {
      return std::make_unique<M>();
    }
  }

  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

class Registry {
 public:
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> labels, std::vector<double> bounds);

  // Every family, in registration order, in the text exposition format 0.0.4.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::pair<Type, size_t>> order_;
};

// The text format's escaping: label values escape backslash, double quote and
// newline; HELP text escapes backslash and newline.
std::string EscapeLabelValue(std::string_view v);
std::string EscapeHelp(std::string_view v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string FormatValue(double v);

}  // namespace orchard::metrics

namespace orchard::server {

// The server's metric families. Counters count since this process started
// (they restart at zero with the server; Prometheus' rate() handles that);
// the gauges marked "from the store" are refilled at each scrape.
struct ServerMetrics {
  ServerMetrics();

  metrics::Registry registry;
  // From the store, at each scrape.
  metrics::Family<metrics::Gauge>& tasks;              // {state}
  metrics::Family<metrics::Gauge>& subtasks;           // {state}
  metrics::Family<metrics::Gauge>& workers;            // {alive}
  metrics::Family<metrics::Gauge>& worker_slots;       // {worker, name}, live workers
  metrics::Family<metrics::Gauge>& worker_slots_used;  // {worker, name}, live workers
  metrics::Family<metrics::Gauge>& slots;              // live workers' slots, summed
  metrics::Family<metrics::Gauge>& slots_used;
  // Counted as they happen, in this process.
  metrics::Family<metrics::Counter>& transitions;      // {object, from, to}
  metrics::Family<metrics::Counter>& tasks_created;
  metrics::Family<metrics::Counter>& lease_expiries;   // subtask leases
  metrics::Family<metrics::Counter>& retries;          // {cause}: Running -> Preparing
  metrics::Family<metrics::Histogram>& acquire_wait;   // seconds an Acquire long poll was held
  metrics::Family<metrics::Counter>& rpcs;             // {method, code}
  metrics::Family<metrics::Histogram>& rpc_seconds;    // {method, code}
  metrics::Family<metrics::Counter>& stream_messages;  // {method, direction}: streams only
  metrics::Family<metrics::Histogram>& commit_seconds;
  metrics::Family<metrics::Histogram>& commit_batch;
  metrics::Family<metrics::Counter>& http_requests;    // {handler, code}
  // 1 for the store this process runs on: {backend, synchronous}.
  metrics::Family<metrics::Gauge>& store_info;
};

}  // namespace orchard::server
