// Identity memory compaction: identity_keys once held every key of every record ingestd wrote;
// now it holds only the keys a record does not hold in its own columns. This removes, once per
// table and tier, the rows an earlier version wrote for keys the records do hold.
#pragma once

#include <cstdint>
#include <string>

#include <pqxx/pqxx>

#include "config/model.hpp"

namespace ingestd::engine {

/// Compacts identity memory for every tier of every configured entity not compacted yet
/// (ingestd.identity_compactions); returns the rows removed.
int64_t compact_identity_memory(pqxx::connection& conn, const config::Config& cfg);

}  // namespace ingestd::engine
