#include "daemon/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ingestd {

void setup_logging(const std::string& level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto def = std::make_shared<spdlog::logger>("ingestd", sink);
  spdlog::set_default_logger(def);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  spdlog::set_level(spdlog::level::from_str(level));
  for (const char* n : {"runtime", "schema", "engine", "file_arrival", "kafka", "http"}) {
    auto l = def->clone(n);
    spdlog::register_logger(l);
  }
}

std::shared_ptr<spdlog::logger> component_logger(const std::string& name) {
  auto l = spdlog::get(name);
  if (!l) {
    l = spdlog::default_logger()->clone(name);
    spdlog::register_logger(l);
  }
  return l;
}

}  // namespace ingestd
