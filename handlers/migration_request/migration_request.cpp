#include "handlers/migration_request/migration_request.hpp"

#include "handlers/migration_request/job_support.hpp"

namespace ingestd::migration_request {

using nlohmann::json;

std::string str(const json& p, const char* k, const std::string& def) {
  return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : def;
}

const json& params_of(const Event& ev) {
  static const json empty = json::object();
  return ev.payload.contains("params") && ev.payload["params"].is_object() ? ev.payload["params"] : empty;
}

engine::Actor actor_of(const Event& ev, const config::Config& cfg) {
  const json claimed = ev.payload.contains("submitted_by") ? ev.payload["submitted_by"] : json(nullptr);
  if (ev.from_cli) {
    engine::Actor a = engine::os_user_actor();
    a.origin["claimed_by"] = claimed;
    return a;
  }
  const auto principal = cfg.kafka.properties.find("sasl.username");
  const std::string where = ev.topic + "/" + std::to_string(ev.partition) + "@" + std::to_string(ev.offset);
  return engine::Actor{"kafka:" + where,
                       {{"via", "kafka"},
                        {"topic", ev.topic},
                        {"partition", ev.partition},
                        {"offset", ev.offset},
                        {"event_id", ev.event_id},
                        {"consumer_principal", principal == cfg.kafka.properties.end() ? json(nullptr)
                                                                                        : json(principal->second)},
                        {"claimed_by", claimed}}};
}

std::string create_job_batch(Services& svc, const Event& ev, const std::string& job, bool dry_run) {
  pqxx::work tx(svc.db);
  engine::NewBatch nb;
  nb.kind = engine::BatchKind::Job;
  nb.target = job;
  nb.dry_run = dry_run;
  nb.submitted_by = str(ev.payload, "submitted_by");
  nb.event_id = ev.event_id;
  nb.owner = svc.instance_id;
  nb.source_system = "job:" + job;
  nb.program = str(params_of(ev), "program");
  const std::string id = engine::Bookkeeping(svc.cfg.postgres.bookkeeping_schema).create(tx, nb);
  engine::lock_new_batch(tx, id);
  tx.commit();
  return id;
}

namespace {

bool same_value(const std::string& actual, const std::string& expect) {
  if (actual == expect) return true;
  try {
    size_t a = 0, b = 0;
    double x = std::stod(actual, &a), y = std::stod(expect, &b);
    return a == actual.size() && b == expect.size() && x == y;
  } catch (...) {
    return false;
  }
}

}  // namespace

json run_checks(pqxx::transaction_base& tx, const config::Job& job, bool& all_passed) {
  json out = json::array();
  all_passed = true;
  for (const auto& c : job.checks) {
    json r = {{"name", c.name}, {"expected", c.expect}};
    try {
      pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_check");
      auto res = sub.exec(c.sql);
      sub.commit();
      std::string actual = res.empty() || res[0].empty() || res[0][0].is_null() ? "" : res[0][0].c_str();
      r["actual"] = actual;
      r["passed"] = same_value(actual, c.expect);
    } catch (const pqxx::sql_error& e) {
      if (engine::classify_db_error(e).retry()) throw;
      r["actual"] = nullptr;
      r["error"] = first_line(e.what());
      r["passed"] = false;
    }
    if (!r["passed"].get<bool>()) all_passed = false;
    out.push_back(r);
  }
  return out;
}

namespace {

/// The built-in jobs and who runs them: the one list (validation accepts exactly these).
const std::vector<std::pair<std::string, HandlerFn>>& builtins() {
  static const std::vector<std::pair<std::string, HandlerFn>> table{{"rollback", &rollback}, {"checks", &checks_only}};
  return table;
}

}  // namespace

const std::vector<std::string>& builtin_jobs() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, fn] : builtins()) n.push_back(name);
    return n;
  }();
  return names;
}

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  const std::string name = ev.payload.value("job", "");
  for (const auto& [builtin, fn] : builtins())
    if (name == builtin) return fn(ev, svc, commit);
  const config::Job& job = svc.cfg.jobs.at(name);  // validate_event refused unknown jobs
  switch (job.kind) {
    case config::JobKind::Migrate: return migrate(ev, svc, commit, job);
    case config::JobKind::ResolveRefs: return resolve_refs(ev, svc, commit, job);
  }
  return Outcome::failed("job " + name + ": unknown kind");
}

}  // namespace ingestd::migration_request
