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

}  // namespace ingestd
