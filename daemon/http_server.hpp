// HTTP endpoints: /metrics /healthz /readyz /status (civetweb, the server prometheus-cpp uses).
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace ingestd {

/// @brief What the endpoints report; each callback is called on a civetweb worker thread.
struct HttpEndpoints {
  std::function<std::string()> metrics;  // Prometheus text format
  std::function<bool()> ready;           // Kafka and PostgreSQL reachable
  std::function<std::string()> status;   // JSON; empty: not served here (http.status_socket)
};

/// @brief One answer: status code, content type, body.
struct HttpReply {
  int code = 200;
  std::string type, body;
};

/// The answer to GET `uri`, the same whichever server asks (404 for an unknown path).
HttpReply route(const HttpEndpoints& ep, const std::string& uri);

class HttpServer {
 public:
  /// Listens on "host:port" (port 0 picks a free one). Throws on bind failure.
  HttpServer(const std::string& listen, HttpEndpoints endpoints);
  ~HttpServer();
  /// The port actually bound.
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ingestd
