// Signals: SIGTERM and SIGINT ask for an orderly stop, SIGHUP for a reload (DESIGN §8).
// Shutdown is one flag that every loop and every long batch watches.
#pragma once

#include <atomic>

namespace ingestd {

/// SIGTERM and SIGINT request a stop, SIGHUP a reload; SIGPIPE is ignored.
void install_signals();

/// Set once a stop is asked: finish the current chunk and return.
const std::atomic<bool>& stop_requested();
/// Asks every loop to finish its current chunk and stop (signal-safe).
void request_stop();
/// Asks the running daemon to re-read datasets and jobs (signal-safe).
void request_reload();
/// True once for each reload asked since the last call.
bool take_reload_request();

}  // namespace ingestd
