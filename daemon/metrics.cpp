#include "daemon/metrics.hpp"

#include <prometheus/text_serializer.h>

namespace ingestd {

using namespace prometheus;

Metrics::Metrics()
    : events(BuildCounter().Name("ingestd_events_total").Help("Events consumed, by topic and outcome").Register(*registry)),
      rows(BuildCounter().Name("ingestd_rows_total").Help("Input rows by dataset, entity and outcome").Register(*registry)),
      identity_matches(BuildCounter()
                           .Name("ingestd_identity_matches_total")
                           .Help("Rows matched to an existing record, by the identity tier that matched")
                           .Register(*registry)),
      batch_duration(BuildHistogram()
                         .Name("ingestd_batch_duration_seconds")
                         .Help("Wall time of finished batches")
                         .Register(*registry)),
      batches_running(BuildGauge().Name("ingestd_batches_running").Help("Batches in progress").Register(*registry)),
      consumer_lag(BuildGauge()
                       .Name("ingestd_consumer_lag")
                       .Help("Messages between the consumer position and the partition end")
                       .Register(*registry)),
      dead_letters(BuildCounter()
                       .Name("ingestd_dead_letters_total")
                       .Help("Events sent to the dead-letter topic, by reason")
                       .Register(*registry)),
      retries(BuildCounter().Name("ingestd_retries_total").Help("Transient failures retried").Register(*registry)),
      db_query_duration(BuildHistogram()
                            .Name("ingestd_db_query_duration_seconds")
                            .Help("PostgreSQL statement time by operation")
                            .Register(*registry)),
      last_success(BuildGauge()
                       .Name("ingestd_last_success_timestamp_seconds")
                       .Help("Unix time of the last completed batch per dataset or job")
                       .Register(*registry)),
      build_info(BuildGauge().Name("ingestd_build_info").Help("Build information").Register(*registry)),
      up(BuildGauge().Name("ingestd_dependency_up").Help("1 when the dependency is reachable").Register(*registry)),
      review_open(BuildGauge()
                      .Name("ingestd_review_queue_open")
                      .Help("Rows waiting in the review queue")
                      .Register(*registry)),
      deferred_open(BuildGauge()
                        .Name("ingestd_deferred_refs_open")
                        .Help("Deferred references not resolved yet, by dataset and field")
                        .Register(*registry)),
      reloads(BuildCounter()
                  .Name("ingestd_reloads_total")
                  .Help("SIGHUP reloads of datasets and jobs, by outcome")
                  .Register(*registry)) {
  build_info.Add({{"version", INGESTD_VERSION}}).Set(1);
  batches_running.Add({}).Set(0);
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

std::string Metrics::serialize() const {
  TextSerializer s;
  return s.Serialize(registry->Collect());
}

}  // namespace ingestd
