#include "daemon/metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <prometheus/text_serializer.h>

namespace ingestd {

using namespace prometheus;

namespace {

/// A metric family, named and described, in `registry`.
template <typename Builder>
auto& family(Builder&& builder, Registry& registry, const char* name, const char* help) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

Metrics::Metrics()
    : events(family(BuildCounter(), *registry, "ingestd_events_total", "Events consumed, by topic and outcome")),
      rows(family(BuildCounter(), *registry, "ingestd_rows_total", "Input rows by dataset, entity and outcome")),
      identity_matches(family(BuildCounter(), *registry, "ingestd_identity_matches_total",
                              "Rows matched to an existing record, by the identity tier that matched")),
      batch_duration(
          family(BuildHistogram(), *registry, "ingestd_batch_duration_seconds", "Wall time of finished batches")),
      batches_running(family(BuildGauge(), *registry, "ingestd_batches_running", "Batches in progress")),
      consumer_lag(family(BuildGauge(), *registry, "ingestd_consumer_lag",
                          "Messages between the consumer position and the partition end")),
      dead_letters(family(BuildCounter(), *registry, "ingestd_dead_letters_total",
                          "Events sent to the dead-letter topic, by reason")),
      retries(family(BuildCounter(), *registry, "ingestd_retries_total", "Transient failures retried")),
      db_query_duration(family(BuildHistogram(), *registry, "ingestd_db_query_duration_seconds",
                               "PostgreSQL statement time by operation")),
      last_success(family(BuildGauge(), *registry, "ingestd_last_success_timestamp_seconds",
                          "Unix time of the last completed batch per dataset or job")),
      build_info(family(BuildGauge(), *registry, "ingestd_build_info", "Build information")),
      up(family(BuildGauge(), *registry, "ingestd_dependency_up", "1 when the dependency is reachable")),
      review_open(family(BuildGauge(), *registry, "ingestd_review_queue_open", "Rows waiting in the review queue")),
      results_unpublished(family(BuildGauge(), *registry, "ingestd_results_unpublished",
                                 "Result messages in the outbox that the broker has not acknowledged yet")),
      deferred_open(family(BuildGauge(), *registry, "ingestd_deferred_refs_open",
                           "Deferred references not resolved yet, by dataset and field")),
      reloads(family(BuildCounter(), *registry, "ingestd_reloads_total",
                     "SIGHUP reloads of datasets and jobs, by outcome")),
      match_weight(family(BuildHistogram(), *registry, "ingestd_match_weight",
                          "Fuzzy tiers: the best candidate's match weight of each row judged, by dataset and entity")),
      reload_ok(family(BuildGauge(), *registry, "ingestd_config_last_reload_successful",
                       "1 when the last SIGHUP reload was applied (or none came yet), 0 when it was refused")),
      publish_failures(family(BuildCounter(), *registry, "ingestd_publish_failures_total",
                              "Messages Kafka did not acknowledge, by kind: result or dead_letter")),
      input_bytes(family(BuildCounter(), *registry, "ingestd_input_bytes_total",
                         "Bytes read from input files (as stored: compressed files count compressed), by dataset")),
      batch_rows(family(BuildGauge(), *registry, "ingestd_batch_rows_read",
                        "Rows the running batch has read so far (0 between batches)")),
      last_progress(family(BuildGauge(), *registry, "ingestd_batch_last_progress_timestamp_seconds",
                           "Unix time a batch last started, committed a chunk or ended")) {
  build_info.Add({{"version", INGESTD_VERSION}}).Set(1);
  batches_running.Add({}).Set(0);
  results_unpublished.Add({}).Set(0);
  batch_boundary();
}

void Metrics::event(const std::string& topic, const std::string& outcome) {
  events.Add({{"topic", topic}, {"outcome", outcome}}).Increment();
}
void Metrics::rows_add(const std::string& dataset, const std::string& entity, const std::string& outcome, double n) {
  rows.Add({{"dataset", dataset}, {"entity", entity}, {"outcome", outcome}}).Increment(n);
}
void Metrics::dead_letter(const std::string& reason) { dead_letters.Add({{"reason", reason}}).Increment(); }
void Metrics::retry(const std::string& reason) { retries.Add({{"reason", reason}}).Increment(); }
void Metrics::observe_db(const std::string& op, double seconds) {
  static const Histogram::BucketBoundaries b{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
  db_query_duration.Add({{"op", op}}, b).Observe(seconds);
}

void Metrics::observe_match_weight(const std::string& dataset, const std::string& entity, double weight) {
  static const Histogram::BucketBoundaries b{-10, -5, 0, 2, 4, 6, 8, 10, 12, 15, 20, 30};
  match_weight.Add({{"dataset", dataset}, {"entity", entity}}, b).Observe(weight);
}

void Metrics::batch_boundary() {
  batch_rows.Add({}).Set(0);
  last_progress.Add({}).SetToCurrentTime();
}

void Metrics::progress(const std::string& dataset, int64_t rows, uint64_t new_bytes) {
  batch_rows.Add({}).Set(double(rows));
  last_progress.Add({}).SetToCurrentTime();
  input_bytes.Add({{"dataset", dataset}}).Increment(double(new_bytes));
}

std::string Metrics::serialize() const {
  auto families = registry->Collect();
  for (auto& f : process_metrics()) families.push_back(std::move(f));
  TextSerializer s;
  return s.Serialize(families);
}

ProcStat parse_proc_stat(const std::string& text) {
  ProcStat p;
  const auto close = text.rfind(')');
  if (close == std::string::npos) return p;
  std::istringstream in(text.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state) of proc(5)
  for (std::string w; in >> w;) f.push_back(w);
  if (f.size() < 20) return p;
  try {
    p.utime = std::stod(f[11]);
    p.stime = std::stod(f[12]);
    p.start = std::stod(f[19]);
    p.ok = true;
  } catch (const std::exception&) {
  }
  return p;
}

namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The `btime` line of /proc/stat: the boot time, in Unix seconds.
double boot_time() {
  std::istringstream in(read_text("/proc/stat"));
  for (std::string key; in >> key;)
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
  return 0;
}

MetricFamily one_value(const char* name, const char* help, MetricType type, double value) {
  ClientMetric m;
  (type == MetricType::Counter ? m.counter.value : m.gauge.value) = value;
  return MetricFamily{name, help, type, {m}};
}

}  // namespace

std::vector<MetricFamily> process_metrics() {
  std::vector<MetricFamily> out;
  const double ticks = double(sysconf(_SC_CLK_TCK));
  if (const ProcStat st = parse_proc_stat(read_text("/proc/self/stat")); st.ok && ticks > 0) {
    out.push_back(one_value("process_cpu_seconds_total", "User and system CPU time spent in seconds",
                            MetricType::Counter, (st.utime + st.stime) / ticks));
    out.push_back(one_value("process_start_time_seconds", "Start time of the process since unix epoch in seconds",
                            MetricType::Gauge, boot_time() + st.start / ticks));
  }
  std::istringstream statm(read_text("/proc/self/statm"));
  double size = 0, resident = 0;
  if (statm >> size >> resident)
    out.push_back(one_value("process_resident_memory_bytes", "Resident memory size in bytes", MetricType::Gauge,
                            resident * double(sysconf(_SC_PAGESIZE))));
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
  if (!ec) out.push_back(one_value("process_open_fds", "Number of open file descriptors", MetricType::Gauge, fds));
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0)
    out.push_back(one_value("process_max_fds", "Maximum number of open file descriptors", MetricType::Gauge,
                            double(rl.rlim_cur)));
  return out;
}

}  // namespace ingestd
