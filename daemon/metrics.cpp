#include "daemon/metrics.hpp"

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
                          "Fuzzy tiers: the best candidate's match weight of each row judged, by dataset and entity")) {
  build_info.Add({{"version", INGESTD_VERSION}}).Set(1);
  batches_running.Add({}).Set(0);
  results_unpublished.Add({}).Set(0);
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

std::string Metrics::serialize() const {
  TextSerializer s;
  return s.Serialize(registry->Collect());
}

}  // namespace ingestd
