// Documents (issue 17, `kind: documents`): a file becomes one row of the documents table,
// linked to the owner record its event's `metadata` leads to through the owner entity's exact
// identity tiers (the same keys, indexes and identity memory a load matches by). The same
// sha256 for the same owner is one row: a unique index on (owner, sha256) says so.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "daemon/metrics.hpp"
#include "handlers/engine/identity/index_check.hpp"

namespace ingestd::engine {

/// The entity whose records own the documents of `d` (the loader made sure it exists).
const config::Entity& owner_entity(const config::Config& cfg, const config::DocumentsSpec& d);

/// A metadata value as the text a file's cell would hold ("" for null or absent).
std::string metadata_text(const nlohmann::json& metadata, const std::string& key);

/// Why `metadata` cannot name an owner of dataset `d` (no identity tier of the owner is given
/// whole), or "": the reason to refuse the event before anything is loaded.
std::string owner_key_problem(const config::Config& cfg, const config::DocumentsSpec& d,
                              const nlohmann::json& metadata);

/// @brief The owner record the metadata leads to, or why there is none.
struct DocumentOwner {
  std::string id;     // "" = none: `error` says why
  int tier = 0;       // the owner entity's tier (1-based) it was found at
  std::string error;  // no record, or two records claim the keys, or a value does not normalize
};

/// Finds the owner of a document: the metadata's values normalized and keyed as a load keys
/// the owner entity's fields, probed through the owner table's tier indexes and identity memory,
/// decided by the resolver (highest tier, conflicting higher-tier values rule a record out, two
/// records claiming it is no owner). Throws BatchError where a tier has no index.
DocumentOwner find_owner(pqxx::transaction_base& tx, const config::Config& cfg, const config::DocumentsSpec& d,
                         const nlohmann::json& metadata, const std::string& batch_id, Metrics* metrics);

/// @brief One document row's values.
struct DocumentRow {
  std::string owner_id, sha256, uri, path, media_type, original_name, batch_id;
  int64_t size_bytes = 0;
};

/// @brief What became of a document row: its id, and whether this call inserted it.
struct StoredDocument {
  std::string id;
  bool inserted = false;  // false: the owner already had a row with this sha256 (`id` is that row)
};

/// The owner's row with this sha256, if there is one.
std::optional<std::string> existing_document(pqxx::transaction_base& tx, const config::DocumentsSpec& d,
                                             const DocumentRow& row);

/// Inserts the row (the columns `d` names), or finds the one a racing event inserted first, and
/// records the insert in the batch's lineage (so rollback deletes it and explain shows it).
StoredDocument insert_document(pqxx::transaction_base& tx, const config::DocumentsSpec& d, const DocumentRow& row,
                               const std::string& bookkeeping_schema);

/// The documents table's problems, each naming its config key: table, id, owner and value
/// columns that do not exist.
std::vector<std::string> documents_schema_problems(pqxx::transaction_base& tx, const config::Dataset& ds);

/// The unique index on (owner column, sha256 column) that makes "one row per file and owner"
/// hold under races, or the statement that makes it (`ingestd check --create-indexes`).
TierIndexReport documents_index(pqxx::transaction_base& tx, const config::Dataset& ds);

}  // namespace ingestd::engine
