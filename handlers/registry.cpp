// The one list of handlers: adding an event type is one folder and one line here.
#include <algorithm>

#include "handlers/event_schema.hpp"
#include "handlers/file_arrival/file_arrival.hpp"
#include "handlers/handler.hpp"
#include "handlers/migration_request/migration_request.hpp"

namespace ingestd {

const std::vector<HandlerSpec>& handler_registry() {
  static const std::vector<HandlerSpec> handlers = {
      {"file.arrived", "files", "dataset", {}, &file_arrival::validate, &file_arrival::handle},
      {"job.requested", "jobs", "job", migration_request::builtin_jobs(), &migration_request::validate,
       &migration_request::handle},
  };
  return handlers;
}

const HandlerSpec* find_handler(const std::string& type) {
  for (const auto& h : handler_registry())
    if (h.type == type) return &h;
  return nullptr;
}

namespace {

/// The topic a topic key names in the config (topics.*).
std::string config_topic(const config::Config& cfg, const std::string& key) {
  if (key == "files") return cfg.kafka.topics.files;
  if (key == "jobs") return cfg.kafka.topics.jobs;
  return "";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> consumed_topics(const config::Config& cfg) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : handler_registry())
    if (std::none_of(out.begin(), out.end(), [&](const auto& t) { return t.first == h.topic_key; }))
      out.emplace_back(h.topic_key, config_topic(cfg, h.topic_key));
  return out;
}

std::string topic_key_of(const config::Config& cfg, const std::string& topic) {
  for (const auto& [key, name] : consumed_topics(cfg))
    if (name == topic) return key;
  return "";
}

std::string validate_event(const config::Config& cfg, const Event& ev) {
  if (auto problem = schema_problem(ev.type, ev.payload); !problem.reason.empty()) return problem.reason;
  const HandlerSpec* spec = find_handler(ev.type);
  return spec && spec->validate ? spec->validate(cfg, ev) : "";
}

EventVetting vet_event(const config::Config& cfg, Event& ev, const std::string& payload, const std::string& topic_key) {
  EventVetting v;
  auto refuse = [&](std::string reason, const char* metric) {
    v.reason = std::move(reason);
    v.metric = metric;
    v.spec = nullptr;
    return v;
  };
  // Shape first, without building the tree: a NUL or a 20k-deep nesting that reached the inbox
  // would be refused by PostgreSQL there, looking like an outage (issue 16).
  if (const EventShapeProblem shape = event_shape_problem(payload); !shape.reason.empty()) {
    ev.event_id = shape.event_id;
    ev.type = shape.type;
    return refuse(shape.reason, "malformed");
  }
  try {
    ev.payload = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and also out_of_range for numbers like 1e99999 (found by fuzz_event)
    return refuse(std::string("malformed JSON: ") + e.what(), "malformed");
  }
  if (!ev.payload.is_object()) return refuse("event is not a JSON object", "malformed");
  if (ev.payload.contains("event_id") && ev.payload["event_id"].is_string())
    ev.event_id = ev.payload["event_id"].get<std::string>();
  if (ev.event_id.size() > kMaxEventIdBytes) {
    // Too long to be an inbox key or a result's key: answered by its dead letter alone.
    const std::string why = "field event_id is " + std::to_string(ev.event_id.size()) + " bytes; the limit is " +
                            std::to_string(kMaxEventIdBytes) + ": " + excerpt(ev.event_id, 64);
    ev.event_id.clear();
    return refuse(why, "too_large");
  }
  if (!ev.payload.contains("type") || !ev.payload["type"].is_string())
    return refuse("missing required field type", "missing_field");
  ev.type = ev.payload["type"].get<std::string>();
  v.spec = find_handler(ev.type);
  if (!v.spec) return refuse("unknown event type " + excerpt(ev.type), "unknown_type");
  if (v.spec->topic_key != topic_key)
    return refuse("event type " + ev.type + " does not belong on topic " + ev.topic, "wrong_topic");
  if (auto problem = schema_problem(ev.type, ev.payload); !problem.reason.empty())
    return refuse(problem.reason, problem.missing_field ? "missing_field" : "wrong_type");
  if (auto why = v.spec->validate ? v.spec->validate(cfg, ev) : ""; !why.empty())
    return refuse(why, why.rfind("unknown", 0) == 0       ? "unknown_target"
                       : why.rfind("not allowed", 0) == 0 ? "not_allowed"
                                                          : "wrong_type");
  return v;
}

}  // namespace ingestd
