#include "daemon/unix_http.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <microhttpd.h>

#include "config/loader.hpp"

namespace ingestd {

namespace {

std::runtime_error failure(const std::string& path, const std::string& what) {
  return std::runtime_error("http.status_socket: " + path + ": " + what);
}

/// The listening socket at `path`, with its mode and group set before anyone can connect.
int bind_socket(const std::string& path, const std::string& group) {
  sockaddr_un addr{};
  if (path.empty() || path[0] != '/' || path.size() >= sizeof addr.sun_path)
    throw failure(path, "must be an absolute path shorter than " + std::to_string(sizeof addr.sun_path) + " bytes");
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw failure(path, "exists and is not a socket; refusing to replace it");
    unlink(path.c_str());  // left by a process that is gone
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw failure(path, std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const mode_t old = umask(0177);  // born 0600: no window in which others may connect
  const int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  std::string why = bound != 0 ? std::string("cannot bind: ") + std::strerror(errno) : "";
  if (why.empty() && !group.empty()) {
    const auto gid = config::group_id(group);
    if (!gid) why = "group " + group + " does not exist (http.status_socket_group)";
    else if (chown(path.c_str(), uid_t(-1), gid_t(*gid)) != 0 || chmod(path.c_str(), 0660) != 0)
      why = "cannot give it to group " + group + ": " + std::strerror(errno);
  }
  if (why.empty() && listen(fd, 16) != 0) why = std::string("cannot listen: ") + std::strerror(errno);
  if (!why.empty()) {
    close(fd);
    if (bound == 0) unlink(path.c_str());
    throw failure(path, why);
  }
  return fd;
}

MHD_Result answer(void* cls, MHD_Connection* c, const char* url, const char* method, const char*, const char*,
                  size_t*, void**) {
  const auto* ep = static_cast<const HttpEndpoints*>(cls);
  HttpReply r = std::strcmp(method, "GET") == 0 ? route(*ep, url) : HttpReply{405, "text/plain", "GET only\n"};
  MHD_Response* resp = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, "Content-Type", r.type.c_str());
  const MHD_Result ok = MHD_queue_response(c, unsigned(r.code), resp);
  MHD_destroy_response(resp);
  return ok;
}

}  // namespace

struct UnixHttpServer::Impl {
  std::string path;
  HttpEndpoints ep;
  MHD_Daemon* daemon = nullptr;
};

UnixHttpServer::UnixHttpServer(const std::string& path, const std::string& group, HttpEndpoints endpoints)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->ep = std::move(endpoints);
  const int fd = bind_socket(path, group);
  impl_->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &answer,
                                   &impl_->ep, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
  if (!impl_->daemon) {
    close(fd);
    unlink(path.c_str());
    throw failure(path, "the HTTP server did not start");
  }
}

UnixHttpServer::~UnixHttpServer() {
  if (!impl_ || !impl_->daemon) return;
  MHD_stop_daemon(impl_->daemon);  // closes the listening socket too
  unlink(impl_->path.c_str());
}

}  // namespace ingestd
