// The Prometheus metric catalog (DESIGN §7). One registry; families created once.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
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

  Metrics();
  void event(const std::string& topic, const std::string& outcome);
  void rows_add(const std::string& dataset, const std::string& entity, const std::string& outcome, double n);
  void dead_letter(const std::string& reason);
  void retry(const std::string& reason);
  void observe_db(const std::string& op, double seconds);
  /// The best candidate's match weight of a row a fuzzy tier judged.
  void observe_match_weight(const std::string& dataset, const std::string& entity, double weight);
  std::string serialize() const;
};

}  // namespace ingestd
