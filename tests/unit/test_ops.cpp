// Operations: the log line formats (text, JSON, journal), the batch summary of the end line,
// /proc/self/stat parsing for the process metrics, and the config's `logging:` section.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

#include "config/loader.hpp"
#include "daemon/logging.hpp"
#include "daemon/metrics.hpp"
#include "handlers/handler.hpp"

using namespace ingestd;

namespace {

std::string format_line(config::LogFormat f, bool journal, spdlog::level::level_enum level, const std::string& text) {
  LineFormatter formatter(f, journal);
  spdlog::details::log_msg msg("runtime", level, text);
  spdlog::memory_buf_t out;
  formatter.format(msg, out);
  return std::string(out.data(), out.size());
}

std::vector<std::string> problems_of(const std::string& text) {
  try {
    config::load_config_text("postgres: {url: postgresql://localhost/app}\n" + text, "ingestd.yaml");
  } catch (const config::ConfigError& e) {
    return e.problems;
  }
  return {};
}

}  // namespace

TEST_CASE("a JSON log line is one object with the thread's batch context") {
  LogContext c;
  c.event_id = "ev-1";
  c.batch_id = "b-1";
  c.target_kind = "dataset";
  c.target = "people";
  c.uri = "file:///in/a.csv";
  const ScopedLogContext scope(c);
  const std::string line = format_line(config::LogFormat::Json, false, spdlog::level::warn, "two\nlines \xff");
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warning");
  CHECK(j["component"] == "runtime");
  CHECK(j["message"] == "two\nlines \xef\xbf\xbd");  // invalid UTF-8 replaced, not thrown
  CHECK(j["event_id"] == "ev-1");
  CHECK(j["batch_id"] == "b-1");
  CHECK(j["dataset"] == "people");
  CHECK(j["uri"] == "file:///in/a.csv");
  CHECK(j["time"].get<std::string>().size() == 24);  // 2026-12-02T12:24:12.345Z
}

TEST_CASE("outside a batch a JSON line has no context fields; the scope restores the outer context") {
  {
    LogContext c;
    c.batch_id = "inner";
    const ScopedLogContext scope(c);
    CHECK(log_context().batch_id == "inner");
  }
  CHECK(log_context().batch_id.empty());
  const auto j = nlohmann::json::parse(format_line(config::LogFormat::Json, false, spdlog::level::info, "hello"));
  CHECK(j.size() == 4);
}

TEST_CASE("journal lines start with the syslog priority and carry no timestamp of their own") {
  CHECK(format_line(config::LogFormat::Text, true, spdlog::level::err, "boom") == "<3>[runtime] boom\n");
  CHECK(format_line(config::LogFormat::Text, true, spdlog::level::info, "ok") == "<6>[runtime] ok\n");
  CHECK(format_line(config::LogFormat::Text, true, spdlog::level::warn, "w").rfind("<4>", 0) == 0);
  const std::string json = format_line(config::LogFormat::Json, true, spdlog::level::critical, "c");
  REQUIRE(json.rfind("<2>{", 0) == 0);
  CHECK(nlohmann::json::parse(json.substr(3))["message"] == "c");
  const std::string terminal = format_line(config::LogFormat::Text, false, spdlog::level::info, "t");
  CHECK(terminal.find(" info [runtime] t") != std::string::npos);
  CHECK(terminal[4] == '-');  // starts with the date
}

TEST_CASE("the batch end line says the status, rows and each entity's counts") {
  Outcome o;
  o.status = engine::ResultStatus::CompletedWithRejects;
  o.extra["rows"] = 5;
  o.entity_order = {"person"};
  o.counts["person"].inserted = 3;
  o.counts["person"].rejected = 2;
  o.reject_file = "/r/x.csv";
  CHECK(batch_summary(o) ==
        "completed_with_rejects, 5 rows read; person: 3 inserted, 0 updated, 0 unchanged, 2 rejected, 0 to review; "
        "rejects in /r/x.csv");
  CHECK(batch_summary(Outcome::failed("no such file")) == "failed: no such file");
  Outcome i;
  i.kind = Outcome::Kind::Interrupted;
  CHECK(batch_summary(i).rfind("interrupted", 0) == 0);
}

TEST_CASE("/proc/self/stat parses around a command name with spaces and parentheses") {
  const std::string stat =
      "4242 (ingestd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 3 0 98765 1000000 500 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  const ProcStat p = parse_proc_stat(stat);
  REQUIRE(p.ok);
  CHECK(p.utime == 150);
  CHECK(p.stime == 25);
  CHECK(p.start == 98765);
  CHECK_FALSE(parse_proc_stat("garbage").ok);
  CHECK_FALSE(parse_proc_stat("1 (x) S 1 2").ok);
}

TEST_CASE("process metrics are read from /proc/self") {
  std::vector<std::string> names;
  for (const auto& f : process_metrics()) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"process_cpu_seconds_total", "process_start_time_seconds",
                                          "process_resident_memory_bytes", "process_open_fds", "process_max_fds"});
}

TEST_CASE("logging: level and format are checked with their key path") {
  const auto c = config::load_config_text("postgres: {url: postgresql://localhost/app}\nlogging: {level: debug, format: json}\n",
                                          "ingestd.yaml");
  CHECK(c.logging.level == "debug");
  CHECK(c.logging.format == config::LogFormat::Json);
  const auto p = problems_of("logging: {level: loud, format: xml, colour: red}\n");
  REQUIRE(p.size() == 3);
  CHECK(p[0] == "ingestd.yaml:2: logging.colour: unknown key; allowed: level, format");
  CHECK(p[1] == "ingestd.yaml:2: logging.level: expected one of trace, debug, info, warn, error, critical, off, got 'loud'");
  CHECK(p[2] == "ingestd.yaml:2: logging.format: expected one of text, json, got 'xml'");
}
