// The one list of handlers: adding an event type is one folder and one line here.
#include "handlers/file_arrival/file_arrival.hpp"
#include "handlers/handler.hpp"
#include "handlers/migration_request/migration_request.hpp"

namespace ingestd {

const std::vector<HandlerSpec>& handler_registry() {
  static const std::vector<HandlerSpec> handlers = {
      {"file.arrived", "files", {"event_id", "type", "dataset", "uri"}, &file_arrival::handle},
      {"job.requested", "jobs", {"event_id", "type", "job"}, &migration_request::handle},
  };
  return handlers;
}

std::string validate_event(const config::Config& cfg, const Event& ev) {
  const auto& p = ev.payload;
  for (const char* f : {"source_system", "program", "submitted_by", "sha256", "mode"})
    if (p.contains(f) && !p[f].is_null() && !p[f].is_string()) return std::string("field ") + f + " must be a string";
  if (p.contains("dry_run") && !p["dry_run"].is_null() && !p["dry_run"].is_boolean()) return "field dry_run must be a boolean";
  if (p.contains("size_bytes") && !p["size_bytes"].is_null() && !p["size_bytes"].is_number_unsigned())
    return "field size_bytes must be a non-negative integer";
  if (p.contains("options") && !p["options"].is_null() && !p["options"].is_object()) return "field options must be an object";
  if (p.contains("params") && !p["params"].is_null() && !p["params"].is_object()) return "field params must be an object";
  if (ev.type == "file.arrived") {
    const std::string ds = p["dataset"].get<std::string>();
    if (!cfg.datasets.count(ds)) return "unknown dataset " + ds;
    if (p.contains("options") && p["options"].is_object()) {
      const auto& o = p["options"];
      if (o.contains("delimiter") && (!o["delimiter"].is_string() || o["delimiter"].get<std::string>().size() != 1))
        return "options.delimiter must be a one-character string";
      if (o.contains("encoding") && !o["encoding"].is_string()) return "options.encoding must be a string";
    }
  }
  if (ev.type == "job.requested") {
    const std::string job = p["job"].get<std::string>();
    if (!cfg.jobs.count(job) && job != "rollback" && job != "checks") return "unknown job " + job;
  }
  return "";
}

EventVetting vet_event(const config::Config& cfg, Event& ev, const std::string& payload, const std::string& topic_key) {
  EventVetting v;
  auto refuse = [&](std::string reason, const char* metric) {
    v.reason = std::move(reason);
    v.metric = metric;
    v.spec = nullptr;
    return v;
  };
  try {
    ev.payload = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and also out_of_range for numbers like 1e99999 (found by fuzz_event)
    return refuse(std::string("malformed JSON: ") + e.what(), "malformed");
  }
  if (!ev.payload.is_object()) return refuse("event is not a JSON object", "malformed");
  if (ev.payload.contains("event_id") && ev.payload["event_id"].is_string())
    ev.event_id = ev.payload["event_id"].get<std::string>();
  if (!ev.payload.contains("type") || !ev.payload["type"].is_string())
    return refuse("missing required field type", "missing_field");
  ev.type = ev.payload["type"].get<std::string>();
  for (const auto& h : handler_registry())
    if (h.type == ev.type) v.spec = &h;
  if (!v.spec) return refuse("unknown event type " + ev.type, "unknown_type");
  if (v.spec->topic_key != topic_key)
    return refuse("event type " + ev.type + " does not belong on topic " + ev.topic, "wrong_topic");
  for (const auto& f : v.spec->required_strings) {
    if (!ev.payload.contains(f)) return refuse("missing required field " + f, "missing_field");
    if (!ev.payload[f].is_string() || ev.payload[f].get<std::string>().empty())
      return refuse("field " + f + " must be a non-empty string", "wrong_type");
  }
  if (auto why = validate_event(cfg, ev); !why.empty())
    return refuse(why, why.rfind("unknown", 0) == 0 ? "unknown_target" : "wrong_type");
  return v;
}

}  // namespace ingestd
