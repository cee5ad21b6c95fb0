// Operator commands that read or repair state: status, review queue, dead-letter replay.
#pragma once

#include <optional>
#include <string>

#include "config/model.hpp"

namespace ingestd {

/// `ingestd status [BATCH]`: running and recent batches as a table (or JSON), or one batch.
int cmd_status(const config::Config& cfg, const std::string& batch, bool as_json);

/// `ingestd review list|merge ID --into RECORD|distinct ID`.
int cmd_review(const config::Config& cfg, const std::string& action, int64_t id, const std::string& into,
               const std::string& actor);

/// `ingestd dlq replay`: republishes dead letters to the topics they came from (header
/// source_topic), up to `limit`, and commits its own position so nothing is replayed twice.
int cmd_dlq_replay(const config::Config& cfg, int64_t limit, bool dry_run);

}  // namespace ingestd
