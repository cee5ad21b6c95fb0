// Logging: one spdlog logger per component, so each line says where it came from.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace ingestd {

/// Sends every component's lines to stderr at `level` (under systemd: the journal; in a
/// terminal it stays off stdout, where commands print their JSON).
void setup_logging(const std::string& level);

/// The logger of a component ("runtime", "kafka", …), cloned from the default one on first use.
std::shared_ptr<spdlog::logger> component_logger(const std::string& name);

}  // namespace ingestd
