#include <doctest/doctest.h>

#include "config/loader.hpp"

using namespace ingestd::config;

namespace {
std::string problems_of(const std::string& text, Sections sections) {
  try {
    load_config_text(text, "t.yaml", sections);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a config of only kafka is enough for a publisher, not for the daemon") {
  const std::string text = "kafka:\n  brokers: b1:9092\n  topics: {results: r}\n";
  const Config c = load_config_text(text, "t.yaml", Sections::Kafka);
  CHECK(c.kafka.brokers == "b1:9092");
  CHECK(c.kafka.topics.results == "r");
  CHECK(c.datasets.empty());
  CHECK(problems_of(text, Sections::All).find("postgres.url") != std::string::npos);
}

TEST_CASE("kafka-only loading keeps key-path errors and names the datasets without reading them") {
  CHECK(problems_of("kafka:\n  topicz: {}\n", Sections::Kafka).find("t.yaml:2: kafka.topicz") != std::string::npos);
  CHECK(problems_of("kafka: {}\nbogus: 1\n", Sections::Kafka).find("bogus") != std::string::npos);
  // a dataset's own errors (here: no entities) are the daemon's to report, not a publisher's
  const Config c = load_config_text("kafka: {}\ndatasets:\n  people: {nonsense: 1}\n", "t.yaml", Sections::Kafka);
  CHECK(c.datasets.count("people") == 1);
  CHECK(load_config_text("", "t.yaml", Sections::Kafka).kafka.brokers == "embedded");
}
