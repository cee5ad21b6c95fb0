#include "daemon/http_server.hpp"

#include <stdexcept>
#include <vector>

#include <CivetServer.h>

namespace ingestd {
namespace {

void reply(mg_connection* c, const HttpReply& r) {
  mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            r.code, mg_get_response_code_text(c, r.code), r.type.c_str(), r.body.size());
  mg_write(c, r.body.data(), r.body.size());
}

struct Endpoint : CivetHandler {
  std::function<void(mg_connection*)> fn;
  explicit Endpoint(std::function<void(mg_connection*)> f) : fn(std::move(f)) {}
  bool handleGet(CivetServer*, mg_connection* c) override {
    fn(c);
    return true;
  }
};

}  // namespace

HttpReply route(const HttpEndpoints& ep, const std::string& uri) {
  if (uri == "/metrics") return {200, "text/plain; version=0.0.4", ep.metrics()};
  if (uri == "/healthz") return {200, "text/plain", "ok\n"};
  if (uri == "/readyz") {
    const bool r = ep.ready();
    return {r ? 200 : 503, "text/plain", r ? "ready\n" : "not ready\n"};
  }
  if (uri == "/status" && ep.status) return {200, "application/json", ep.status()};
  if (uri == "/status") return {404, "text/plain", "/status is served on the unix socket (http.status_socket)\n"};
  return {404, "text/plain", "not found\n"};
}

struct HttpServer::Impl {
  HttpEndpoints ep;
  std::unique_ptr<CivetServer> server;
  std::vector<std::unique_ptr<Endpoint>> handlers;
};

HttpServer::HttpServer(const std::string& listen, HttpEndpoints endpoints) : impl_(std::make_unique<Impl>()) {
  impl_->ep = std::move(endpoints);
  // A port alone binds loopback: /metrics and /status have no authentication, so listening on
  // every interface must be asked for by address (0.0.0.0:PORT).
  const bool port_only = !listen.empty() && listen.find_first_not_of("0123456789") == std::string::npos;
  std::string ports = port_only ? "127.0.0.1:" + listen : listen;
  std::vector<std::string> opts{"listening_ports", ports, "num_threads", "4"};
  try {
    impl_->server = std::make_unique<CivetServer>(opts);
  } catch (const std::exception& e) {
    throw std::runtime_error("http.listen: cannot listen on " + listen + ": " + e.what());
  }
  auto* ep = &impl_->ep;
  for (const char* uri : {"/metrics", "/healthz", "/readyz", "/status"}) {
    impl_->handlers.push_back(std::make_unique<Endpoint>([ep, uri](mg_connection* c) { reply(c, route(*ep, uri)); }));
    impl_->server->addHandler(uri, impl_->handlers.back().get());
  }
}

HttpServer::~HttpServer() {
  if (impl_ && impl_->server) impl_->server->close();
}

int HttpServer::port() const {
  auto ports = impl_->server->getListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

}  // namespace ingestd
