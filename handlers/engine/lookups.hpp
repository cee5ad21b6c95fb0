// Lookups (`lookup: {table, key, returns}`): a field's value replaced by the id it names in
// another table, with on_missing null | reject | defer (deferred_refs, resolve_refs jobs).
#pragma once

#include <vector>

#include <pqxx/pqxx>

#include "handlers/engine/row.hpp"
#include "handlers/engine/row_builder.hpp"
#include "handlers/engine/table_plan.hpp"

namespace ingestd::engine {

/// Resolves every lookup field of the chunk's rows: one query per field and chunk, the
/// distinct keys as one array parameter.
void resolve_lookups(pqxx::transaction_base& tx, const std::vector<EntityMapping>& entities,
                     const std::vector<EntityTables>& tables, Chunk& chunk);

}  // namespace ingestd::engine
