#include "daemon/http_server.hpp"

#include <stdexcept>
#include <vector>

#include <CivetServer.h>

namespace ingestd {
namespace {

void reply(mg_connection* c, int code, const char* type, const std::string& body) {
  mg_printf(c,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
            code == 200 ? "OK" : "Service Unavailable", type, body.size());
  mg_write(c, body.data(), body.size());
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
  auto add = [&](const char* uri, std::function<void(mg_connection*)> fn) {
    impl_->handlers.push_back(std::make_unique<Endpoint>(std::move(fn)));
    impl_->server->addHandler(uri, impl_->handlers.back().get());
  };
  add("/metrics", [ep](mg_connection* c) { reply(c, 200, "text/plain; version=0.0.4", ep->metrics()); });
  add("/healthz", [](mg_connection* c) { reply(c, 200, "text/plain", "ok\n"); });
  add("/readyz", [ep](mg_connection* c) {
    bool r = ep->ready();
    reply(c, r ? 200 : 503, "text/plain", r ? "ready\n" : "not ready\n");
  });
  add("/status", [ep](mg_connection* c) { reply(c, 200, "application/json", ep->status()); });
}

HttpServer::~HttpServer() {
  if (impl_ && impl_->server) impl_->server->close();
}

int HttpServer::port() const {
  auto ports = impl_->server->getListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

}  // namespace ingestd
