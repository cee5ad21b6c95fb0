#include <doctest/doctest.h>

#include "handlers/handler.hpp"
#include "handlers/migration_request/migration_request.hpp"

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

TEST_CASE("which jobs an event may run is the config's: rollback only when listed, any from the CLI") {
  config::Config cfg = people_config();
  cfg.jobs["backfill"] = config::Job{};
  auto vet_job = [&](const std::string& job, bool from_cli = false) {
    Event ev;
    ev.topic = "ingest.jobs";
    ev.from_cli = from_cli;
    return vet_event(cfg, ev, R"({"type":"job.requested","event_id":"e","job":")" + job + R"("})", "jobs");
  };
  CHECK(vet_job("backfill").reason == "");
  CHECK(vet_job("checks").reason == "");
  CHECK(vet_job("rollback").metric == "not_allowed");
  CHECK(vet_job("rollback").reason.find("ingestd run-job rollback") != std::string::npos);
  CHECK(vet_job("rollback", true).reason == "");
  cfg.processing.event_jobs = std::vector<std::string>{"rollback"};
  CHECK(vet_job("rollback").reason == "");
  CHECK(vet_job("backfill").metric == "not_allowed");
  CHECK(vet_job("backfill", true).reason == "");
}

TEST_CASE("the built-in jobs the config knows are the ones the handler runs") {
  CHECK(migration_request::builtin_jobs() == config::kBuiltinJobs);
}
