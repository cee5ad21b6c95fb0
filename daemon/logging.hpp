// Logging: one spdlog logger per component, so each line says where it came from. Lines go to
// stderr as text (a terminal: with a timestamp; the journal: a `<N>` priority prefix and no
// timestamp of our own) or as one JSON object per line, which carries the batch and event the
// thread is working on (LogContext).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include "config/model.hpp"

namespace ingestd {

/// @brief The log settings the command line gave; what it leaves unset comes from the config.
struct LogOverrides {
  std::optional<std::string> level;
  std::optional<config::LogFormat> format;
};

/// Sends every component's lines to stderr (under systemd: the journal; in a terminal it stays
/// off stdout, where commands print their JSON), with the command line's settings or the
/// defaults. The command line's settings win over every later apply_log_config().
void setup_logging(const LogOverrides& cli);

/// Applies the config's `logging:` section (at start and on reload), except what the command
/// line set.
void apply_log_config(const config::Logging& cfg);

/// The logger of a component ("runtime", "kafka", …), cloned from the default one on first use.
std::shared_ptr<spdlog::logger> component_logger(const std::string& name);

/// True when stderr is the journal's stream (systemd.exec: $JOURNAL_STREAM is "DEV:INODE" of it).
bool stderr_is_journal();

/// @brief What the thread logging a line is working on (empty fields are left out of JSON lines).
struct LogContext {
  std::string event_id, batch_id;
  std::string target_kind;  // "dataset" or "job"
  std::string target, uri;
};

/// The calling thread's context (empty outside a batch).
const LogContext& log_context();

/// @brief Sets the thread's log context for its lifetime; the previous one comes back after.
class ScopedLogContext {
 public:
  explicit ScopedLogContext(LogContext ctx);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogContext saved_;
};

/// @brief Formats a line as text or JSON, with a `<N>` syslog priority first for the journal.
class LineFormatter : public spdlog::formatter {
 public:
  LineFormatter(config::LogFormat format, bool journal);
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  config::LogFormat format_;
  bool journal_;
  std::unique_ptr<spdlog::formatter> text_;
};

}  // namespace ingestd
