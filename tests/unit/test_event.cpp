#include <doctest/doctest.h>

#include "handlers/event_schema.hpp"
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
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"people"})").reason ==
        "schema: /required: missing required field uri");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"people"})").metric == "missing_field");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"zzz","uri":"file:///x"})").reason == "unknown dataset zzz");
  CHECK(vet(R"({"type":"file.arrived","event_id":"e","dataset":"people","uri":"file:///x","dry_run":"yes"})").reason ==
        "schema: /properties/dry_run: expected boolean or null, got string");
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

namespace {
std::string nested(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "[";
  s += "1";
  for (int i = 0; i < depth; ++i) s += "]";
  return s;
}
std::string file_event_with(const std::string& extra_field) {
  return R"({"event_id":"e1","type":"file.arrived","dataset":"people","uri":"file:///x",)" + extra_field + "}";
}
}  // namespace

TEST_CASE("vet_event refuses a \\u0000 anywhere, before the inbox's jsonb would (issue 16)") {
  Event ev;
  auto v = vet_event(people_config(), ev, file_event_with(R"("note":"a\u0000b")"), "files");
  CHECK(v.reason.find("NUL character") != std::string::npos);
  CHECK(v.metric == "malformed");
  CHECK(v.reason.find('\0') == std::string::npos);
  CHECK(ev.event_id == "e1");  // read before the problem: the uploader gets a failed result
  CHECK(vet(file_event_with(R"("a\u0000":1)")).reason.find("a key contains a NUL") == 0);
  CHECK(vet(file_event_with(R"("note":"a\\u0000b")")).reason == "");  // an escaped backslash, no NUL
}

TEST_CASE("vet_event refuses nesting deeper than 64 without building it") {
  // the event itself is level 1, so the field holds at most 63 levels
  CHECK(vet(file_event_with("\"x\":" + nested(kMaxEventDepth - 1))).reason == "");
  CHECK(vet(file_event_with("\"x\":" + nested(kMaxEventDepth))).reason == "JSON nested deeper than 64 levels");
  CHECK(vet(file_event_with("\"x\":" + nested(20000))).metric == "malformed");
}

TEST_CASE("vet_event refuses an event_id longer than 255 bytes and forgets it") {
  Event ev;
  const std::string payload =
      R"({"event_id":")" + std::string(10240, 'x') + R"(","type":"file.arrived","dataset":"people","uri":"file:///x"})";
  auto v = vet_event(people_config(), ev, payload, "files");
  CHECK(v.reason.rfind("field event_id is 10240 bytes; the limit is 255", 0) == 0);
  CHECK(v.reason.size() < 200);
  CHECK(ev.event_id.empty());
  CHECK(vet(R"({"event_id":")" + std::string(255, 'x') +
            R"(","type":"file.arrived","dataset":"people","uri":"file:///x"})")
            .reason == "");
}

TEST_CASE("a reason echoes at most an excerpt of a long name") {
  const std::string name(800000, 'd');
  auto v = vet(R"({"type":"file.arrived","event_id":"e","dataset":")" + name + R"(","uri":"file:///x"})");
  CHECK(v.reason == "unknown dataset " + std::string(200, 'd') + "… (800000 bytes)");
  CHECK(v.metric == "unknown_target");
  CHECK(excerpt("short") == "short");
  // never cuts a UTF-8 character in two: "é" is two bytes, the cut lands before it
  CHECK(excerpt("aé", 2) == "a… (3 bytes)");
}

TEST_CASE("the schema names the failing path: nested options, lengths, numbers") {
  auto with = [](const std::string& field) { return vet(file_event_with(field)); };
  CHECK(with(R"("size_bytes":"12")").reason == "schema: /properties/size_bytes: expected integer or null, got string");
  CHECK(with(R"("size_bytes":1.5)").reason == "schema: /properties/size_bytes: expected integer or null, got number");
  CHECK(with(R"("size_bytes":-1)").reason == "schema: /properties/size_bytes: expected a number >= 0, got -1");
  CHECK(with(R"("size_bytes":-1)").metric == "wrong_type");
  CHECK(with(R"("options":{"delimiter":";;"})").reason.rfind("schema: /properties/options/properties/delimiter: ", 0) ==
        0);
  CHECK(with(R"("options":{"encoding":1})").reason ==
        "schema: /properties/options/properties/encoding: expected string, got number");
  CHECK(vet(R"({"type":"file.arrived","event_id":"","dataset":"people","uri":"file:///x"})")
            .reason.rfind("schema: /properties/event_id: ", 0) == 0);
  CHECK(with(R"("size_bytes":12,"options":{"delimiter":";"},"sha256":null,"anything":[1])").reason == "");
}

TEST_CASE("the schemas are compiled in and parse") {
  for (const char* name : {"file.arrived", "job.requested", "result"}) {
    CAPTURE(name);
    REQUIRE(schema_texts().count(name) == 1);
    CHECK(schema_problem(name, nlohmann::json::object()).reason != "");
  }
}

TEST_CASE("event_head reads event_id and type from the head of an oversized payload only") {
  // what follows the head is never parsed: unterminated, deeper than any limit, megabytes long
  const std::string payload = R"({"event_id": "e-1", "type": "file.arrived", "pad": )" + std::string(2 << 20, '[');
  const EventShapeProblem head = event_head(payload);
  CHECK(head.event_id == "e-1");
  CHECK(head.type == "file.arrived");
  // ids past the head are not looked for
  const EventShapeProblem late = event_head(R"({"pad": ")" + std::string(100 << 10, 'x') + R"(", "event_id": "e-2"})");
  CHECK(late.event_id.empty());
  // nested keys of the same name are not the event's
  CHECK(event_head(R"({"options": {"event_id": "inner"}, "type": "t")").event_id.empty());
}
