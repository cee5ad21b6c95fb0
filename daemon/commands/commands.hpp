// The commands of `ingestd` (DESIGN §6), one file each; daemon/main.cpp parses the command line
// and calls one. Each returns an exit code (ExitCode); what it cannot handle it throws, and main
// logs it and exits 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/bookkeeping.hpp"

namespace ingestd {

/// The exit codes of every command (DESIGN §6; `ingestd --help` lists them).
enum ExitCode : int {
  kExitCompleted = 0,    // done (a dry run, a duplicate, a published event too)
  kExitFailed = 1,       // failed, or refused
  kExitUsage = 2,        // usage or config error
  kExitRejects = 3,      // completed with rejects
  kExitTimedOut = 4,     // no result within --timeout (submit --wait)
};
/// The exit code of a run that ended with `status`.
int exit_code(engine::ResultStatus status);
/// The exit code of a result message's status (unknown words count as completed).
int exit_code(const std::string& result_status);

/// `ingestd run`: the daemon, until SIGTERM (daemon/runtime.cpp).
int cmd_run(const config::Config& cfg);

/// `ingestd check [--offline] [--create-indexes] [--json]`: the config, that its tables and columns
/// exist, and the index behind every identity tier (made with --create-indexes).
int cmd_check(const config::Config& cfg, const std::string& config_path, bool offline, bool create_indexes,
              bool as_json);

/// `ingestd explain BATCH ROW` / `ingestd explain --record TABLE ID`.
int cmd_explain(const config::Config& cfg, const std::string& a, const std::string& b, bool record, bool as_json);

/// `ingestd name-key`: the identity key of each name on stdin, one a line (hidden; diagnosis, tests).
int cmd_name_key();

/// Problems of the config's jobs that only the databases can tell (`ingestd check`, online):
/// an unreachable source database, a source query, `after` statement or check that does not
/// plan; each named by its key path.
std::vector<std::string> check_job_statements(const config::Config& cfg, pqxx::connection& target);

/// @brief What a file event says of a document (`--meta KEY=VALUE`, `--original-name`).
struct DocumentOptions {
  std::vector<std::string> metadata;  // KEY=VALUE
  std::string original_name;
};
/// Adds `metadata` and `original_name` to a file.arrived event; false with `error` for a
/// malformed --meta.
bool add_document_fields(const DocumentOptions& o, nlohmann::json& ev, std::string& error);
/// KEY=VALUE arguments into `out`'s keys; false with `error` (naming `flag`) for one without a key.
bool parse_key_values(const std::vector<std::string>& args, const std::string& flag, nlohmann::json& out,
                      std::string& error);

/// `ingestd load FILE --dataset NAME [--dry-run] [--json]`: one file through the pipeline, without
/// Kafka; its result message on stdout (on one line with --json).
int cmd_load(const config::Config& cfg, const std::string& file, const std::string& dataset, bool dry_run, bool as_json,
             const DocumentOptions& document = {});

/// @brief The options of `ingestd submit file|job` (and of run-job).
struct SubmitOptions {
  DocumentOptions document;  // submit file
  std::string path, dataset, source_system, program, submitted_by = "ingestd-submit", event_id, delimiter, encoding;
  std::string job, mode;
  std::vector<std::string> params;  // KEY=VALUE
  bool dry_run = false, wait = false;
  bool json = false;  // one JSON object on one line
  int timeout_s = 120;
};
/// `ingestd submit file PATH --dataset NAME`: publishes a file.arrived event as an uploader would.
int cmd_submit_file(const config::Config& cfg, SubmitOptions o);
/// `ingestd submit job NAME`: publishes a job.requested event.
int cmd_submit_job(const config::Config& cfg, SubmitOptions o);
/// The job.requested event of `o` (job, mode, params from KEY=VALUE, dry_run, submitted_by);
/// nullopt with `error` for a malformed --param. A new event id is `event_id_prefix` + a UUID.
std::optional<nlohmann::json> job_request(const SubmitOptions& o, const std::string& event_id_prefix,
                                          std::string& error);
/// `ingestd run-job NAME [--mode M] [--param K=V] [--dry-run]`: one job through the pipeline,
/// without Kafka; the result message on stdout, exit codes as load.
int cmd_run_job(const config::Config& cfg, const SubmitOptions& o);

/// `ingestd rollback BATCH [--dry-run] [--json]`: what was undone, as JSON (on one line with --json).
int cmd_rollback(const config::Config& cfg, const std::string& batch, bool dry_run, const engine::Actor& actor,
                 bool as_json);

/// `ingestd status [BATCH]`: running and recent batches as a table (or JSON), or one batch.
int cmd_status(const config::Config& cfg, const std::string& batch, bool as_json);

/// @brief The options of `ingestd review list`: a page of open items, oldest first.
struct ReviewListOptions {
  int64_t after = 0, limit = 20;
  bool json = false;  // one JSON object per item and line
};
/// `ingestd review list|merge ID [--into RECORD]|distinct ID`.
int cmd_review(const config::Config& cfg, const std::string& action, int64_t id, const std::string& into,
               const engine::Actor& actor, const ReviewListOptions& list = {});

/// `ingestd train DATASET FILE`: m/u weights of the dataset's fuzzy tier, estimated from FILE
/// (at most max_rows rows), written to `output` (default: the file the tier names); with
/// `as_json` the weights are printed as one JSON object.
int cmd_train(const config::Config& cfg, const std::string& dataset, const std::string& file, std::string output,
              size_t max_rows, bool as_json);

/// `ingestd merge TABLE LOSER --into WINNER [--dry-run] [--json]`: two records of an entity's
/// table become one, as one batch that `ingestd rollback` undoes (0 merged, 1 refused, 2 usage).
int cmd_merge(const config::Config& cfg, const std::string& table, const std::string& loser, const std::string& winner,
              bool dry_run, bool json_output, const engine::Actor& actor);

/// `ingestd dlq replay`: republishes dead letters to the topics they came from (header
/// source_topic), up to `limit`, and commits its own position so nothing is replayed twice.
/// Prints what it did as JSON (on one line with `as_json`).
int cmd_dlq_replay(const config::Config& cfg, int64_t limit, bool dry_run, bool as_json);

/// @brief The options of `ingestd embedded-broker`.
struct EmbeddedBrokerOptions {
  int brokers = 1;
  int partitions = 3;
  std::vector<std::string> topics{"ingest.files", "ingest.jobs", "ingest.results", "ingest.dead-letter"};
  std::string address_file;
};
/// `ingestd embedded-broker`: librdkafka's mock cluster on loopback until SIGTERM, taking
/// fault-injection commands on stdin (tests and demos only).
int cmd_embedded_broker(const EmbeddedBrokerOptions& o);

}  // namespace ingestd
