#include "daemon/logging.hpp"

#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/redact.hpp"

namespace ingestd {

namespace {

thread_local LogContext t_context;
LogOverrides g_cli;  // what the command line set: it wins over the config

/// syslog(3) priorities, the `<N>` journald reads at the start of a line (sd-daemon.h).
int syslog_priority(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

/// UTC, ISO 8601 with milliseconds: 2026-12-02T12:24:12.345Z.
std::string utc_time(spdlog::log_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", int(ms % 1000));
  return buf;
}

std::string json_line(const spdlog::details::log_msg& msg) {
  nlohmann::ordered_json j = {{"time", utc_time(msg.time)},
                      {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                                            spdlog::level::to_string_view(msg.level).size())},
                      {"component", std::string(msg.logger_name.data(), msg.logger_name.size())},
                      {"message", std::string(msg.payload.data(), msg.payload.size())}};
  const LogContext& c = t_context;
  for (const auto& [key, value] : {std::pair<std::string, const std::string&>{"event_id", c.event_id},
                                   {"batch_id", c.batch_id}, {c.target_kind, c.target}, {"uri", c.uri}})
    if (!key.empty() && !value.empty()) j[key] = value;
  // A file's bytes can reach a message: invalid UTF-8 becomes U+FFFD instead of an exception.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void apply_settings(const std::string& level, config::LogFormat format) {
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_formatter(std::make_unique<LineFormatter>(format, stderr_is_journal()));
}

}  // namespace

LineFormatter::LineFormatter(config::LogFormat format, bool journal)
    : format_(format),
      journal_(journal),
      // The journal stamps every line itself: a second timestamp would only repeat it.
      text_(std::make_unique<spdlog::pattern_formatter>(journal ? "[%n] %v" : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v")) {}

void LineFormatter::format(const spdlog::details::log_msg& original, spdlog::memory_buf_t& dest) {
  // Every line passes here: a password in an error (libpq quoting a malformed URL) is masked.
  const std::string payload = config::redact(std::string_view(original.payload.data(), original.payload.size()));
  spdlog::details::log_msg msg = original;
  msg.payload = payload;
  if (journal_) fmt::format_to(std::back_inserter(dest), "<{}>", syslog_priority(msg.level));
  if (format_ == config::LogFormat::Text) return text_->format(msg, dest);
  const std::string line = json_line(msg);
  dest.append(line.data(), line.data() + line.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> LineFormatter::clone() const {
  return std::make_unique<LineFormatter>(format_, journal_);
}

void setup_logging(const LogOverrides& cli) {
  g_cli = cli;
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto def = std::make_shared<spdlog::logger>("ingestd", sink);
  spdlog::set_default_logger(def);
  for (const char* n : {"runtime", "schema", "engine", "file_arrival", "kafka", "http"})
    spdlog::register_logger(def->clone(n));
  apply_settings(cli.level.value_or("info"), cli.format.value_or(config::LogFormat::Text));
}

void apply_log_config(const config::Logging& cfg) {
  apply_settings(g_cli.level.value_or(cfg.level), g_cli.format.value_or(cfg.format));
}

std::shared_ptr<spdlog::logger> component_logger(const std::string& name) {
  auto l = spdlog::get(name);
  if (!l) {
    l = spdlog::default_logger()->clone(name);
    spdlog::register_logger(l);
  }
  return l;
}

bool stderr_is_journal() {
  const char* v = std::getenv("JOURNAL_STREAM");
  uintmax_t dev = 0, ino = 0;
  if (!v || std::sscanf(v, "%" SCNuMAX ":%" SCNuMAX, &dev, &ino) != 2) return false;
  struct stat st {};
  return fstat(2, &st) == 0 && uintmax_t(st.st_dev) == dev && uintmax_t(st.st_ino) == ino;
}

const LogContext& log_context() { return t_context; }

ScopedLogContext::ScopedLogContext(LogContext ctx) : saved_(std::move(t_context)) { t_context = std::move(ctx); }

ScopedLogContext::~ScopedLogContext() { t_context = std::move(saved_); }

}  // namespace ingestd
