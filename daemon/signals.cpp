#include "daemon/signals.hpp"

#include <csignal>

namespace ingestd {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_stop(int) { g_stop = true; }
void on_hup(int) { g_reload = true; }

}  // namespace

void install_signals() {
  struct sigaction hup {};
  hup.sa_handler = on_hup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

const std::atomic<bool>& stop_requested() { return g_stop; }
void request_stop() { g_stop = true; }
void request_reload() { g_reload = true; }
bool take_reload_request() { return g_reload.exchange(false); }

}  // namespace ingestd
