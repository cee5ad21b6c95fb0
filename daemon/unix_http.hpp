// The HTTP endpoints on a unix socket (`http.status_socket`), for /status with its batch and
// event detail: reachable only by whom the socket's mode and group let in, unlike a TCP port
// every local user can connect to. libmicrohttpd serves it (Debian's civetweb is built without
// unix socket support).
#pragma once

#include <memory>
#include <string>

#include "daemon/http_server.hpp"

namespace ingestd {

/// @brief /metrics, /healthz, /readyz and /status on a unix socket.
class UnixHttpServer {
 public:
  /// Binds `path` (a stale socket there is replaced; anything else is refused), mode 0600, or
  /// 0660 with group `group` when given. Throws with the config key on failure.
  UnixHttpServer(const std::string& path, const std::string& group, HttpEndpoints endpoints);
  ~UnixHttpServer();
  UnixHttpServer(const UnixHttpServer&) = delete;
  UnixHttpServer& operator=(const UnixHttpServer&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ingestd
