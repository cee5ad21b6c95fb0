// file.arrived's own checks, run before the event reaches the handler, after its schema
// (schemas/file.arrived.schema.json) vouched for the fields' types.
#include "handlers/engine/documents.hpp"
#include "handlers/file_arrival/file_arrival.hpp"

namespace ingestd::file_arrival {

std::string validate(const config::Config& cfg, const Event& ev) {
  const auto& p = ev.payload;
  const std::string ds = p["dataset"].get<std::string>();
  if (!cfg.datasets.count(ds)) return "unknown dataset " + excerpt(ds);
  if (const auto& docs = cfg.datasets.at(ds).documents) {
    if (p.contains("options") && p["options"].is_object() && !p["options"].empty())
      return "options apply to datasets of records; dataset " + ds + " stores documents";
    return engine::owner_key_problem(cfg, *docs, p.value("metadata", nlohmann::json::object()));
  }
  if (p.contains("options") && p["options"].is_object()) {
    const auto& o = p["options"];
    // The schema allows one character; the CSV reader splits on one byte.
    if (o.contains("delimiter") && o["delimiter"].get<std::string>().size() != 1)
      return "options.delimiter must be a one-byte character";
    // CSV's options would be silently ignored by another format's reader: say so instead.
    const config::Format format = cfg.datasets.at(ds).format;
    for (const char* key : {"delimiter", "encoding"})
      if (o.contains(key) && format != config::Format::Csv)
        return std::string("options.") + key + " applies to csv datasets; dataset " + ds + " reads " +
               std::string(config::to_string(format)) + " (JSON Lines are UTF-8)";
  }
  return "";
}

}  // namespace ingestd::file_arrival
