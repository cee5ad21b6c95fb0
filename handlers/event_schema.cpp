// Vets events against the JSON Schemas in schemas/ with valijson (Debian libvalijson-dev).
#include "handlers/event_schema.hpp"

#include <memory>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace ingestd {

namespace {

using json = nlohmann::json;

/// @brief A schema as parsed once: valijson's form to validate with, and the JSON to describe it.
struct CompiledSchema {
  json document;
  valijson::Schema schema;
};

/// The compiled schemas by name, parsed on first use (a static: thread-safe, once per process).
const std::map<std::string, std::unique_ptr<CompiledSchema>>& compiled_schemas() {
  static const auto schemas = [] {
    std::map<std::string, std::unique_ptr<CompiledSchema>> m;
    for (const auto& [name, text] : schema_texts()) {
      auto c = std::make_unique<CompiledSchema>();
      c->document = json::parse(text);
      valijson::adapters::NlohmannJsonAdapter adapter(c->document);
      valijson::SchemaParser(valijson::SchemaParser::kDraft7).populateSchema(adapter, c->schema);
      m.emplace(name, std::move(c));
    }
    return m;
  }();
  return schemas;
}

/// Escapes a property name as one JSON Pointer token (RFC 6901).
std::string pointer_token(const std::string& name) {
  std::string out;
  for (char ch : name) out += ch == '~' ? "~0" : ch == '/' ? "~1" : std::string(1, ch);
  return out;
}

/// @brief Where an error is: in the event (/options/delimiter) and in the schema
/// (/properties/options/properties/delimiter). Events hold no arrays the schemas look into.
struct ErrorPlace {
  std::string instance, schema;
};

ErrorPlace place_of(const std::vector<std::string>& context) {
  ErrorPlace p;
  for (const auto& c : context) {
    if (c.size() < 2 || c.front() != '[' || c.back() != ']') continue;  // "<root>"
    const std::string token = pointer_token(c.substr(1, c.size() - 2));
    p.instance += "/" + token;
    p.schema += "/properties/" + token;
  }
  return p;
}

/// "expected integer or null, got string": valijson's type message names neither.
std::string type_mismatch(const json& schema_node, const json& value) {
  std::string expected;
  const json types = schema_node.is_object() ? schema_node.value("type", json()) : json();
  for (const auto& t : types.is_array() ? types : json::array({types}))
    if (t.is_string()) expected += (expected.empty() ? "" : " or ") + t.get<std::string>();
  return "expected " + expected + ", got " + value.type_name();
}

/// What the schema expected where valijson's message does not say: the types, or the bound.
std::string expectation(const std::string& description, const json& node, const json& value) {
  if (description.find("'type' constraint") != std::string::npos) return type_mismatch(node, value);
  if (description.rfind("Expected number greater than or equal to", 0) == 0 && node.contains("minimum"))
    return "expected a number >= " + node["minimum"].dump() + ", got " + value.dump();
  return description;
}

/// The reason for one valijson error, naming the schema path that failed.
SchemaProblem describe(const CompiledSchema& c, const json& payload, const valijson::ValidationResults::Error& e) {
  const ErrorPlace p = place_of(e.context);
  const std::string missing = "Missing required property '";
  if (e.description.rfind(missing, 0) == 0) {
    const std::string field = e.description.substr(missing.size(), e.description.rfind('\'') - missing.size());
    return {"schema: " + p.schema + "/required: missing required field " + field, true};
  }
  const json::json_pointer schema_ptr(p.schema), value_ptr(p.instance);
  const bool located = c.document.contains(schema_ptr) && payload.contains(value_ptr);
  const std::string what =
      located ? expectation(e.description, c.document.at(schema_ptr), payload.at(value_ptr)) : e.description;
  return {"schema: " + (p.schema.empty() ? "/" : p.schema) + ": " + what, false};
}

}  // namespace

SchemaProblem schema_problem(const std::string& name, const json& payload) {
  const auto& schemas = compiled_schemas();
  const auto it = schemas.find(name);
  if (it == schemas.end()) return {};
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(payload);
  if (validator.validate(it->second->schema, target, &results)) return {};
  valijson::ValidationResults::Error first;
  results.popError(first);  // the first error is the innermost one of the first failing property
  return describe(*it->second, payload, first);
}

}  // namespace ingestd
