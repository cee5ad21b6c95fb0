// The event contracts (schemas/*.schema.json, JSON Schema draft 7), compiled into the binary and
// checked with valijson: what an event must look like before its handler's own checks run.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace ingestd {

/// The schemas in schemas/, by name (file.arrived, job.requested, result): their text as
/// compiled in (generated from schemas/embed.cmake).
const std::map<std::string, std::string>& schema_texts();

/// @brief Why a payload does not meet its schema ("" = it does).
struct SchemaProblem {
  std::string reason;          // "schema: /properties/size_bytes: expected integer or null, got string"
  bool missing_field = false;  // a required property is absent (the dead-letter metric tells it apart)
};

/// Checks `payload` against the schema named `name` (an event type). The reason names the
/// failing schema path and what it expected. A name without a schema is no problem.
SchemaProblem schema_problem(const std::string& name, const nlohmann::json& payload);

}  // namespace ingestd
