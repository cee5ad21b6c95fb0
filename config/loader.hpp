// Loads ingestd.yaml into the config model, strictly: every error names file:line and key path.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/model.hpp"

namespace ingestd::config {

/// @brief All problems found in a config file, one message per problem, each
/// "FILE:LINE: key.path: what was expected".
struct ConfigError : std::runtime_error {
  std::vector<std::string> problems;
  explicit ConfigError(std::vector<std::string> p);
};

/// Which parts of a config file a command reads.
enum class Sections {
  All,    // everything, validated (the daemon and every command that touches PostgreSQL)
  Kafka,  // the kafka section only, validated; of the datasets only their names (`ingestd submit`)
};

/// The id of the group named `name` (files.rejects_group); nullopt when the system has none.
std::optional<unsigned> group_id(const std::string& name);

/// Reads, substitutes ${VAR} and file:PATH values, validates and returns the config.
/// Throws ConfigError listing every problem (not just the first).
Config load_config(const std::string& path, Sections sections = Sections::All);
/// Same from text (path is used in messages only).
Config load_config_text(const std::string& text, const std::string& path, Sections sections = Sections::All);

}  // namespace ingestd::config
