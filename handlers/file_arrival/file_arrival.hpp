// file.arrived: a CSV landed under an allowed root; load it through its dataset.
#pragma once

#include <sys/stat.h>

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
/// sha256 (hex) and size of what an open descriptor reads from its start, in blocks.
std::pair<std::string, uint64_t> fd_digest(int fd);

/// @brief An announced file opened once (issue 16 item 3): no FIFO, device or directory, one
/// link, and the file the descriptor reaches is beneath an allowed root whatever a path's
/// components became meanwhile. It is hashed and parsed through this descriptor.
class OpenedFile {
 public:
  /// Opens `real` (resolve_path's answer); `error` says why not, or stays empty.
  OpenedFile(const std::string& real, const std::vector<std::string>& roots, std::string& error);
  ~OpenedFile();
  OpenedFile(const OpenedFile&) = delete;
  OpenedFile& operator=(const OpenedFile&) = delete;
  int fd() const { return fd_; }
  /// A path that opens this very file again, whatever was renamed over its name since.
  std::string reopen_path() const { return "/proc/self/fd/" + std::to_string(fd_); }
  /// "" when the file still has the size and modification time it had when opened and its
  /// name still leads to it; else what changed.
  std::string changed_since_open() const;

 private:
  std::string path_;
  int fd_ = -1;
  struct stat st_ {};
};

}  // namespace ingestd::file_arrival
