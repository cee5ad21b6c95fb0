#include <doctest/doctest.h>

#include "handlers/handler.hpp"

using namespace ingestd;

namespace {
config::Config people_config() {
  config::Config c;
  config::Dataset d;
  d.name = "people";
  c.datasets["people"] = d;
  return c;
}
EventVetting vet(const std::string& payload, const std::string& topic_key = "files") {
  static const config::Config cfg = people_config();
  Event ev;
  ev.topic = topic_key == "files" ? "ingest.files" : "ingest.jobs";
  return vet_event(cfg, ev, payload, topic_key);
}
}  // namespace

TEST_CASE("vet_event accepts a proper file.arrived event") {
  auto v = vet(R"({"event_id":"e1","type":"file.arrived","dataset":"people","uri":"file:///x"})");
  CHECK(v.reason == "");
  REQUIRE(v.spec != nullptr);
  CHECK(v.spec->type == "file.arrived");
}

TEST_CASE("vet_event: number overflow is malformed JSON, not an escaped exception (fuzz_event crash)") {
  auto v = vet(R"({"event_id": 4444444444444e44444444})");
  CHECK(v.reason.rfind("malformed JSON", 0) == 0);
  CHECK(v.metric == "malformed");
}

TEST_CASE("vet_event refuses with the reason the dead letter carries") {
  CHECK(vet("{nope").metric == "malformed");
  CHECK(vet("[1]").reason == "event is not a JSON object");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"people"})").reason == "missing required field uri");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"zzz","uri":"file:///x"})").reason == "unknown dataset zzz");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"people","uri":"file:///x","dry_run":"yes"})").reason ==
        "field dry_run must be a boolean");
  CHECK(vet(R"({"type":"job.requested","event_id":"e","job":"x"})").metric == "wrong_topic");
  CHECK(vet(R"({"type":"job.requested","event_id":"e","job":"x"})", "jobs").reason == "unknown job x");
}
