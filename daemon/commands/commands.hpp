// The commands of `ingestd` (DESIGN §6), one file each; daemon/main.cpp parses the command line
// and calls one. Each returns the exit code (0 ok, 1 failed, 2 usage or config error); what
// it cannot handle it throws, and main logs it and exits 1.
#pragma once

#include <string>

#include "config/model.hpp"

namespace ingestd {

/// `ingestd run`: the daemon, until SIGTERM (daemon/runtime.cpp).
int cmd_run(const config::Config& cfg);

/// `ingestd load FILE --dataset NAME [--dry-run]`: one file through the pipeline, without Kafka.
int cmd_load(const config::Config& cfg, const std::string& file, const std::string& dataset, bool dry_run);

}  // namespace ingestd
