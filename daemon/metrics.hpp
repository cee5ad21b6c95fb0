// The Prometheus metric catalog (DESIGN §7). One registry; families created once.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace ingestd {

/// @brief Every metric the daemon exports. Labels never carry batch or event ids.
struct Metrics {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& events;
  prometheus::Family<prometheus::Counter>& rows;
  prometheus::Family<prometheus::Counter>& identity_matches;
  prometheus::Family<prometheus::Histogram>& batch_duration;
  prometheus::Family<prometheus::Gauge>& batches_running;
  prometheus::Family<prometheus::Gauge>& consumer_lag;
  prometheus::Family<prometheus::Counter>& dead_letters;
  prometheus::Family<prometheus::Counter>& retries;
  prometheus::Family<prometheus::Histogram>& db_query_duration;
  prometheus::Family<prometheus::Gauge>& last_success;
  prometheus::Family<prometheus::Gauge>& build_info;
  prometheus::Family<prometheus::Gauge>& up;
  prometheus::Family<prometheus::Gauge>& review_open;
  prometheus::Family<prometheus::Gauge>& results_unpublished;
  prometheus::Family<prometheus::Gauge>& deferred_open;
  prometheus::Family<prometheus::Counter>& reloads;
  prometheus::Family<prometheus::Histogram>& match_weight;
  prometheus::Family<prometheus::Gauge>& reload_ok;
  prometheus::Family<prometheus::Counter>& publish_failures;
  prometheus::Family<prometheus::Counter>& input_bytes;
  prometheus::Family<prometheus::Gauge>& batch_rows;
  prometheus::Family<prometheus::Gauge>& last_progress;

  Metrics();
  void event(const std::string& topic, const std::string& outcome);
  void rows_add(const std::string& dataset, const std::string& entity, const std::string& outcome, double n);
  void dead_letter(const std::string& reason);
  void retry(const std::string& reason);
  void observe_db(const std::string& op, double seconds);
  /// The best candidate's match weight of a row a fuzzy tier judged.
  void observe_match_weight(const std::string& dataset, const std::string& entity, double weight);
  /// A batch starts or ends: no rows read yet, and the progress time is now.
  void batch_boundary();
  /// The running batch read on: `rows` so far, `new_bytes` more of `dataset`'s input; the
  /// progress time is now (a batch without progress for long is stuck).
  void progress(const std::string& dataset, int64_t rows, uint64_t new_bytes);
  /// The exposition: every family above, then the process's own (process_*).
  std::string serialize() const;
};

/// @brief What /proc/self/stat says of the process (proc(5)), in clock ticks.
struct ProcStat {
  double utime = 0, stime = 0;  // CPU time in user and kernel mode
  double start = 0;             // start time after boot
  bool ok = false;              // false: the text did not parse
};
/// Parses /proc/self/stat; the command name in parentheses may hold spaces and parentheses.
ProcStat parse_proc_stat(const std::string& text);

/// The process metrics Prometheus clients export (process_start_time_seconds,
/// process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds,
/// process_max_fds), read from /proc/self now: prometheus-cpp has no process collector.
std::vector<prometheus::MetricFamily> process_metrics();

}  // namespace ingestd
