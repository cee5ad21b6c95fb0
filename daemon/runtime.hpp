// The daemon: consumer loop, inbox and offsets in PostgreSQL, results and dead letters,
// HTTP endpoints, systemd notifications, orderly shutdown.
#pragma once

#include <atomic>
#include <string>

#include "config/model.hpp"

namespace ingestd {

/// Asks every running Runtime to finish its current chunk and stop (signal-safe).
void request_stop();
/// Asks the running daemon to re-read datasets and jobs (SIGHUP; signal-safe).
void request_reload();

/// Runs `ingestd run` until SIGTERM/SIGINT. Returns the process exit code.
int run_daemon(const config::Config& cfg);

/// Runs one file through the pipeline without Kafka (`ingestd load`). Prints the result.
int run_load(const config::Config& cfg, const std::string& file, const std::string& dataset, bool dry_run);

/// Connects to PostgreSQL and applies the bookkeeping migrations; throws on failure.
void prepare_database(const config::Config& cfg);

}  // namespace ingestd
