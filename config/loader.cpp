// Loads ingestd.yaml strictly (DESIGN §3, CONVENTIONS "Config"): every problem is collected
// with file:line and key path, and all of them are thrown together in one ConfigError, so an
// operator fixes a config in one pass instead of one error per `ingestd check` run.
//
// This file reads the top level and the small sections; yaml_reader.cpp has the reading layer,
// load_dataset.cpp the datasets and load_job.cpp the jobs.
#include "config/loader.hpp"

#include <grp.h>
#include <libpq-fe.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "config/load_sections.hpp"
#include "config/redact.hpp"
#include "config/yaml_reader.hpp"

namespace ingestd::config {

ConfigError::ConfigError(std::vector<std::string> p)
    : std::runtime_error(detail::join(p, "\n")), problems(std::move(p)) {}

namespace {

using detail::child;
using detail::join;
using detail::line_of;
using detail::MapView;
using detail::Reader;
using detail::Words;

void load_kafka(Reader& r, const YAML::Node& n, const std::string& path, Kafka& k) {
  MapView m(r, n, path,
            {"brokers", "group_id", "topics", "properties", "embedded_partitions",
             "embedded_address_file"});
  if (!m.ok()) return;
  m.read_name("brokers", k.brokers);
  m.read_name("group_id", k.group_id);
  if (auto v = m.get("topics")) {
    MapView t(r, *v, m.path("topics"), {"files", "jobs", "results", "dead_letter"});
    if (t.ok()) {
      t.read_name("files", k.topics.files);
      t.read_name("jobs", k.topics.jobs);
      t.read_name("results", k.topics.results);
      t.read_name("dead_letter", k.topics.dead_letter);
    }
  }
  if (auto v = m.get("properties"))
    for (auto& [key, value] : r.scalar_map(*v, m.path("properties"))) {
      if (secret_kafka_property(key)) remember_secret(value);
      k.properties[key] = value;
    }
  m.read_int("embedded_partitions", k.embedded_partitions, 1);
  if (auto v = m.get("embedded_address_file"))
    if (auto s = r.text(*v, m.path("embedded_address_file"))) k.embedded_address_file = *s;
}

/// A connection string (postgres.url, sources.*.url): its password is remembered for redaction,
/// and one libpq cannot read is reported here, by key path, with the password masked — not at
/// the first connection, where libpq's message quoted it back.
std::optional<std::string> read_conninfo(Reader& r, const MapView& m, const YAML::Node& at, std::string_view why) {
  auto url = m.require_name("url", at, why);
  if (!url) return url;
  remember_conninfo_secret(*url);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url->c_str(), &err);
  if (opts) PQconninfoFree(opts);
  if (err) {
    const std::string message(err);  // libpq's messages end in a newline
    r.problem(line_of(*m.get("url")), m.path("url"),
              "not a connection string libpq can read: " + redact(message.substr(0, message.find('\n'))) +
                  " (in a URI, percent-encode the password's reserved characters: / as %2F, @ as %40, : as %3A)");
    PQfreemem(err);
    return std::nullopt;
  }
  return url;
}

void load_postgres(Reader& r, const YAML::Node& n, const std::string& path, Postgres& pg) {
  MapView m(r, n, path, {"url", "pool_size", "bookkeeping_schema"});
  if (!m.ok()) return;
  if (auto s = read_conninfo(r, m, n, "the target database URL")) pg.url = *s;
  m.read_int("pool_size", pg.pool_size, 1);
  m.read_name("bookkeeping_schema", pg.bookkeeping_schema);
}

/// Reads a group name at `key` that must exist on this system (files and sockets are given to it).
void read_group(Reader& r, const MapView& m, std::string_view key, std::string& out, const std::string& otherwise) {
  const YAML::Node* v = m.get(key);
  if (!v) return;
  auto g = r.name_text(*v, m.path(key));
  if (g && !group_id(*g))
    r.problem(*v, m.path(key), "no group '" + *g + "' on this system (create it, e.g. groupadd " + *g +
                                   ", or leave the key out: " + otherwise + ")");
  else if (g)
    out = *g;
}

void load_http(Reader& r, const YAML::Node& n, const std::string& path, Http& h) {
  MapView m(r, n, path, {"listen", "status_socket", "status_socket_group"});
  m.read_name("listen", h.listen);
  m.read_name("status_socket", h.status_socket);
  read_group(r, m, "status_socket_group", h.status_socket_group, "the socket then stays the daemon's alone");
  if (!h.status_socket.empty() && (h.status_socket[0] != '/' || h.status_socket.size() > 107))
    r.problem(*m.get("status_socket"), m.path("status_socket"), "must be an absolute path of at most 107 bytes, got " + h.status_socket);
  if (!h.status_socket_group.empty() && h.status_socket.empty())
    r.problem(*m.get("status_socket_group"), m.path("status_socket_group"), "needs http.status_socket");
  if (h.listen.rfind("unix:", 0) == 0)
    r.problem(*m.get("listen"), m.path("listen"),
              "listen takes HOST:PORT or PORT; for a unix socket set http.status_socket");
}

void load_files(Reader& r, const YAML::Node& n, const std::string& path, Files& f) {
  MapView m(r, n, path, {"allowed_roots", "rejects_dir", "rejects_group"});
  if (!m.ok()) return;
  if (auto v = m.get("allowed_roots"))
    f.allowed_roots = r.string_list(*v, m.path("allowed_roots"));
  m.read_name("rejects_dir", f.rejects_dir);
  read_group(r, m, "rejects_group", f.rejects_group, "the reject files then stay the daemon's group");
}

void load_processing(Reader& r, const YAML::Node& n, const std::string& path, Processing& p) {
  MapView m(r, n, path, {"chunk_rows", "chunk_bytes", "max_attempts", "retry_base_seconds", "stall_limit_seconds", "event_jobs"});
  if (!m.ok()) return;
  if (auto v = m.get("event_jobs")) {
    p.event_jobs = r.string_list(*v, m.path("event_jobs"));
    p.event_jobs_line = line_of(*v);
  }
  m.read_int<int64_t>("chunk_rows", p.chunk_rows, 1);
  m.read_int<int64_t>("chunk_bytes", p.chunk_bytes, 1);
  m.read_int("max_attempts", p.max_attempts, 1);
  if (auto v = m.get("retry_base_seconds"))
    if (auto d = r.number(*v, m.path("retry_base_seconds"), 0.0)) p.retry_base_seconds = *d;
  if (auto v = m.get("stall_limit_seconds"))
    if (auto d = r.number(*v, m.path("stall_limit_seconds"), 1.0)) p.stall_limit_seconds = *d;
}

const Words<LogFormat> kLogFormatWords = {{"text", LogFormat::Text}, {"json", LogFormat::Json}};

void load_logging(Reader& r, const YAML::Node& n, const std::string& path, Logging& l) {
  MapView m(r, n, path, {"level", "format"});
  if (!m.ok()) return;
  if (auto v = m.get("level")) {
    Words<std::string> levels;
    for (const auto& name : kLogLevels) levels.emplace_back(name, name);
    if (auto level = r.choice(*v, m.path("level"), levels)) l.level = *level;
  }
  if (auto v = m.get("format"))
    if (auto f = r.choice(*v, m.path("format"), kLogFormatWords)) l.format = *f;
}

/// Check: every job processing.event_jobs names exists (a typo would refuse a job silently).
void check_event_jobs(Reader& r, const Config& c) {
  if (!c.processing.event_jobs) return;
  const auto& list = *c.processing.event_jobs;
  for (size_t i = 0; i < list.size(); ++i) {
    const bool builtin = std::find(kBuiltinJobs.begin(), kBuiltinJobs.end(), list[i]) != kBuiltinJobs.end();
    if (builtin || c.jobs.count(list[i])) continue;
    std::vector<std::string> known = kBuiltinJobs;
    for (const auto& [name, job] : c.jobs) known.push_back(name);
    r.problem(c.processing.event_jobs_line, "processing.event_jobs[" + std::to_string(i) + "]",
              "no job " + list[i] + "; the jobs: " + join(known, ", "));
  }
}

void load_sources(Reader& r, const YAML::Node& n, const std::string& path,
                  std::map<std::string, Source>& sources) {
  auto es = r.entries(n, path);
  if (!es) return;
  for (const auto& e : *es) {
    Source s;
    s.name = e.key;
    MapView m(r, e.value, child(path, e.key), {"url"});
    if (!m.ok()) continue;
    if (auto u = read_conninfo(r, m, e.key_node, "the source database URL")) s.url = *u;
    sources.emplace(e.key, std::move(s));
  }
}

/// The names of the datasets, nothing else of them (a publisher checks the name it sends).
void name_datasets(Reader& r, const YAML::Node& n, Config& c) {
  if (auto es = r.entries(n, "datasets"))
    for (const auto& e : *es) c.datasets[e.key].name = e.key;
}

Config load(Reader& r, const YAML::Node& root, Sections sections) {
  Config c;
  c.path = r.file();
  if (root.IsNull() && sections == Sections::Kafka) return c;  // the defaults: the embedded broker
  if (root.IsNull()) {
    r.problem(1, "", "the file is empty; at least postgres.url is required");
    return c;
  }
  MapView top(r, root, "",
              {"kafka", "postgres", "http", "files", "processing", "logging", "sources", "datasets", "jobs"});
  if (!top.ok()) return c;

  if (auto n = top.get("kafka")) load_kafka(r, *n, "kafka", c.kafka);
  if (sections == Sections::Kafka) {
    if (auto n = top.get("datasets")) name_datasets(r, *n, c);
    return c;
  }
  if (auto n = top.get("postgres"))
    load_postgres(r, *n, "postgres", c.postgres);
  else
    r.problem(root, "postgres.url", "required key is missing (the target database URL)");
  if (auto n = top.get("http")) load_http(r, *n, "http", c.http);
  if (auto n = top.get("files")) load_files(r, *n, "files", c.files);
  if (auto n = top.get("processing")) load_processing(r, *n, "processing", c.processing);
  if (auto n = top.get("logging")) load_logging(r, *n, "logging", c.logging);
  if (auto n = top.get("sources")) load_sources(r, *n, "sources", c.sources);

  if (auto n = top.get("datasets")) {
    if (auto es = r.entries(*n, "datasets"))
      for (const auto& e : *es)
        c.datasets.emplace(e.key, detail::load_dataset(r, e, child("datasets", e.key)));
  }

  detail::check_document_owners(r, c);

  // Jobs last: their checks look at the sources and datasets above, wherever they are in the file.
  if (auto n = top.get("jobs")) {
    if (auto es = r.entries(*n, "jobs"))
      for (const auto& e : *es)
        c.jobs.emplace(e.key, detail::load_job(r, e, child("jobs", e.key), c));
  }
  check_event_jobs(r, c);
  return c;
}

}  // namespace

std::optional<unsigned> group_id(const std::string& name) {
  struct group gr {};
  struct group* found = nullptr;
  std::vector<char> buf(16384);  // a group with many members needs a large buffer
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
  return unsigned(found->gr_gid);
}

Config load_config_text(const std::string& text, const std::string& path, Sections sections) {
  Reader reader(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    reader.problem(e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg);
    reader.finish();
  }
  Config c = load(reader, root, sections);
  reader.finish();
  return c;
}

Config load_config(const std::string& path, Sections sections) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  return load_config_text(buf.str(), path, sections);
}

}  // namespace ingestd::config
