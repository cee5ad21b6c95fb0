// file.arrived: a CSV landed under an allowed root; load it through its dataset.
#pragma once

#include "handlers/handler.hpp"

namespace ingestd::file_arrival {

Outcome handle(const Event& ev, Services& svc, EventCommit& commit);
/// The event's own checks (its dataset exists, its options have the right types): the reason to
/// dead-letter it, or "".
std::string validate(const config::Config& cfg, const Event& ev);

/// Resolves `uri` (file:// or a plain path) to a real path inside one of `roots`, following
/// symlinks; returns "" and sets `error` when it does not resolve, escapes or is no regular file.
std::string resolve_path(const std::string& uri, const std::vector<std::string>& roots, std::string& error);

/// sha256 (hex) and size of a file, read in blocks.
std::pair<std::string, uint64_t> file_digest(const std::string& path);

}  // namespace ingestd::file_arrival
