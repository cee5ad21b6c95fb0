#include "daemon/operator_commands.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include <librdkafka/rdkafkacpp.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/kafka.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/identity/keys.hpp"
#include "handlers/engine/normalize.hpp"
#include "handlers/engine/catalog.hpp"

namespace ingestd {

using nlohmann::json;

namespace {

/// Prints rows as an aligned table (UTF-8 aware enough for names: counts code points).
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  auto width = [](const std::string& s) {
    size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = width(head[i]);
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < head.size(); ++i) {
      std::string v = i < r.size() ? r[i] : "";
      std::cout << v << std::string(w[i] - width(v) + 2, ' ');
    }
    std::cout << "\n";
  };
  line(head);
  for (auto& r : rows) line(r);
}

std::string text(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f %s", b, u[i]);
  return buf;
}

}  // namespace

int cmd_status(const config::Config& cfg, const std::string& batch, bool as_json) {
  pqxx::connection c(cfg.postgres.url);
  migrate_schema(c, cfg.postgres.bookkeeping_schema);
  pqxx::read_transaction tx(c);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  const std::string cols =
      "id::text, kind, dataset_or_job, status, rows_done, rows_total, bytes_done, size_bytes, inserted, updated, "
      "unchanged, rejected, review, owner, started_at::text, finished_at::text, "
      "extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8, reject_file, stats::text, uri, "
      "error_summary::text, dry_run";
  auto to_json = [](const pqxx::row& r) {
    json j = {{"batch_id", text(r[0])}, {"kind", text(r[1])}, {"target", text(r[2])}, {"status", text(r[3])},
              {"rows_done", r[4].as<int64_t>()}, {"inserted", r[8].as<int64_t>()}, {"updated", r[9].as<int64_t>()},
              {"unchanged", r[10].as<int64_t>()}, {"rejected", r[11].as<int64_t>()}, {"review", r[12].as<int64_t>()},
              {"owner", text(r[13])}, {"started_at", text(r[14])}, {"finished_at", text(r[15])},
              {"seconds", r[16].as<double>()}, {"dry_run", r[21].as<bool>()}};
    if (!r[5].is_null()) j["rows_total"] = r[5].as<int64_t>();
    if (!r[7].is_null()) {
      j["size_bytes"] = r[7].as<int64_t>();
      j["bytes_done"] = r[6].as<int64_t>();
    }
    double secs = r[16].as<double>();
    if (secs > 0) j["rows_per_second"] = std::round(double(r[4].as<int64_t>()) / secs);
    if (text(r[3]) == "running" && !r[7].is_null() && r[6].as<int64_t>() > 0 && secs > 0) {
      double rate = double(r[6].as<int64_t>()) / secs;
      j["eta_seconds"] = std::round(double(r[7].as<int64_t>() - r[6].as<int64_t>()) / rate);
    }
    if (!r[17].is_null()) j["reject_file"] = text(r[17]);
    if (!r[19].is_null()) j["uri"] = text(r[19]);
    if (!r[18].is_null()) j["stats"] = json::parse(text(r[18]));
    if (!r[20].is_null()) j["errors"] = json::parse(text(r[20]));
    return j;
  };
  if (!batch.empty()) {
    auto r = tx.exec_params("SELECT " + cols + " FROM " + bk + ".batches WHERE id::text = $1", batch);
    if (r.empty()) {
      std::cerr << "ingestd status: no batch " << batch << "\n";
      return 1;
    }
    json j = to_json(r[0]);
    if (as_json) {
      std::cout << j.dump(2) << std::endl;
      return 0;
    }
    for (auto& [k, v] : j.items())
      if (k != "stats") std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
    if (j.contains("stats") && j["stats"].contains("counts")) {
      std::vector<std::vector<std::string>> rows;
      for (auto& [e, cnt] : j["stats"]["counts"].items())
        rows.push_back({e, std::to_string(cnt.value("inserted", 0)), std::to_string(cnt.value("updated", 0)),
                        std::to_string(cnt.value("unchanged", 0)), std::to_string(cnt.value("rejected", 0)),
                        std::to_string(cnt.value("review", 0))});
      std::cout << "\n";
      print_table({"ENTITY", "INSERTED", "UPDATED", "UNCHANGED", "REJECTED", "REVIEW"}, rows);
    }
    if (j.contains("stats") && j["stats"].contains("first_errors") && !j["stats"]["first_errors"].empty()) {
      std::cout << "\nfirst errors:\n";
      for (auto& e : j["stats"]["first_errors"]) std::cout << "  " << e.get<std::string>() << "\n";
    }
    return 0;
  }
  auto running = tx.exec("SELECT " + cols + " FROM " + bk + ".batches WHERE status = 'running' ORDER BY started_at");
  auto recent = tx.exec("SELECT " + cols + " FROM " + bk +
                        ".batches WHERE status <> 'running' ORDER BY coalesce(finished_at, started_at) DESC LIMIT 15");
  auto open_review = tx.exec("SELECT count(*) FROM " + bk + ".review_queue WHERE status = 'open'")[0][0].as<int64_t>();
  auto deferred = tx.exec("SELECT count(*) FROM " + bk + ".deferred_refs")[0][0].as<int64_t>();
  if (as_json) {
    json j = {{"running", json::array()}, {"recent", json::array()}, {"review_open", open_review},
              {"deferred_refs_open", deferred}};
    for (const auto& r : running) j["running"].push_back(to_json(r));
    for (const auto& r : recent) j["recent"].push_back(to_json(r));
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : running) {
    json j = to_json(r);
    std::string progress = std::to_string(j["rows_done"].get<int64_t>()) + " rows";
    if (j.contains("size_bytes") && j["size_bytes"].get<int64_t>() > 0)
      progress += " (" + std::to_string(int(100.0 * double(j["bytes_done"].get<int64_t>()) /
                                            double(j["size_bytes"].get<int64_t>()))) + "% of " +
                  human_bytes(double(j["size_bytes"].get<int64_t>())) + ")";
    rows.push_back({j["batch_id"], j["target"], progress,
                    j.contains("rows_per_second") ? std::to_string(int64_t(j["rows_per_second"].get<double>())) : "",
                    j.contains("eta_seconds") ? std::to_string(int64_t(j["eta_seconds"].get<double>())) + "s" : "",
                    j["owner"]});
  }
  std::cout << "RUNNING\n";
  if (rows.empty()) std::cout << "  (none)\n";
  else print_table({"BATCH", "TARGET", "PROGRESS", "ROWS/S", "ETA", "OWNER"}, rows);
  rows.clear();
  for (const auto& r : recent) {
    json j = to_json(r);
    rows.push_back({j["batch_id"], j["target"], j["status"], std::to_string(j["rows_done"].get<int64_t>()),
                    std::to_string(j["inserted"].get<int64_t>()), std::to_string(j["updated"].get<int64_t>()),
                    std::to_string(j["rejected"].get<int64_t>()), j["finished_at"]});
  }
  std::cout << "\nRECENT\n";
  if (rows.empty()) std::cout << "  (none)\n";
  else print_table({"BATCH", "TARGET", "STATUS", "ROWS", "INSERTED", "UPDATED", "REJECTED", "FINISHED"}, rows);
  std::cout << "\nreview queue open: " << open_review << "    deferred references open: " << deferred << "\n";
  return 0;
}

namespace {

struct ReviewTarget {
  const config::Entity* entity = nullptr;
  engine::TableInfo table;
};

/// The entity a review item belongs to: the one of the batch's dataset writing its table.
ReviewTarget review_target(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                           const std::string& table) {
  std::string ds = cfg.jobs.count(dataset_or_job) ? cfg.jobs.at(dataset_or_job).dataset : dataset_or_job;
  ReviewTarget t;
  if (!cfg.datasets.count(ds)) return t;
  for (const auto& e : cfg.datasets.at(ds).entities) {
    auto info = engine::describe_table(tx, e.table);
    if (info.exists && info.canonical == table) {
      t.entity = &e;
      t.table = info;
      engine::describe_id(tx, t.table, e.id_column);
    }
  }
  return t;
}

}  // namespace

int cmd_review(const config::Config& cfg, const std::string& action, int64_t id, const std::string& into,
               const std::string& actor) {
  pqxx::connection c(cfg.postgres.url);
  migrate_schema(c, cfg.postgres.bookkeeping_schema);
  pqxx::work tx(c);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  if (action == "list") {
    auto r = tx.exec("SELECT q.id, q.batch_id::text, q.table_name, q.candidate::text, q.reasons FROM " + bk +
                     ".review_queue q WHERE q.status = 'open' ORDER BY q.id");
    std::vector<std::vector<std::string>> rows;
    for (const auto& x : r) rows.push_back({text(x[0]), text(x[1]), text(x[2]), text(x[3]), text(x[4])});
    if (rows.empty()) std::cout << "review queue is empty\n";
    else print_table({"ID", "BATCH", "TABLE", "CANDIDATE", "WHY"}, rows);
    return 0;
  }
  auto item = tx.exec_params("SELECT q.batch_id::text, q.table_name, q.candidate::text, q.status, b.dataset_or_job FROM " +
                                 bk + ".review_queue q LEFT JOIN " + bk + ".batches b ON b.id = q.batch_id WHERE q.id = $1 "
                                 "FOR UPDATE OF q",
                             id);
  if (item.empty()) {
    std::cerr << "ingestd review: no review item " << id << "\n";
    return 1;
  }
  if (text(item[0][3]) != "open") {
    std::cerr << "ingestd review: item " << id << " is already " << text(item[0][3]) << "\n";
    return 1;
  }
  const std::string batch = text(item[0][0]), table = text(item[0][1]);
  json cand = json::parse(text(item[0][2]));
  ReviewTarget t = review_target(tx, cfg, text(item[0][4]), table);
  if (!t.entity) {
    std::cerr << "ingestd review: the config no longer has the dataset entity that writes " << table << "\n";
    return 1;
  }
  const auto& fields = t.entity->fields;
  const std::string tq = t.table.quoted, idq = tx.quote_name(t.entity->id_column);
  std::string record = into;
  if (action == "distinct") {
    // a new record from the candidate's values
    std::string cols = idq, vals = "(" + t.table.id_default + ")";
    std::vector<std::optional<std::string>> params;
    for (const auto& f : fields) {
      if (!cand.contains(f.name) || cand[f.name].is_null()) continue;
      params.push_back(cand[f.name].is_string() ? cand[f.name].get<std::string>() : cand[f.name].dump());
      cols += ", " + tx.quote_name(f.column);
      vals += ", $" + std::to_string(params.size()) + "::" + t.table.column_types.at(f.column);
    }
    record = tx.exec_params("INSERT INTO " + tq + " (" + cols + ") VALUES (" + vals + ") RETURNING " + idq + "::text",
                            pqxx::prepare::make_dynamic_params(params))[0][0]
                 .as<std::string>();
  } else if (action == "merge") {
    if (into.empty()) {
      std::cerr << "ingestd review merge: --into RECORD names the record to merge into\n";
      return 2;
    }
    auto exists = tx.exec_params("SELECT 1 FROM " + tq + " WHERE " + idq + "::text = $1", into);
    if (exists.empty()) {
      std::cerr << "ingestd review merge: no record " << into << " in " << table << "\n";
      return 1;
    }
    for (const auto& f : fields) {
      if (!cand.contains(f.name) || cand[f.name].is_null()) continue;
      const std::string v = cand[f.name].is_string() ? cand[f.name].get<std::string>() : cand[f.name].dump();
      const std::string col = tx.quote_name(f.column), type = t.table.column_types.at(f.column);
      // fill what the record lacks, and remember what was filled so a rollback can undo it
      tx.exec_params("INSERT INTO " + bk + ".changes (batch_id, table_name, record_id, column_name, before, after) "
                     "SELECT $1::uuid, $2, $3, $4, NULL, $5 FROM " + tq + " WHERE " + idq + "::text = $3 AND " + col +
                         " IS NULL",
                     batch, table, into, f.column, v);
      tx.exec_params("UPDATE " + tq + " SET " + col + " = $2::" + type + " WHERE " + idq + "::text = $1 AND " + col +
                         " IS NULL",
                     into, v);
    }
  } else {
    std::cerr << "ingestd review: unknown action " << action << " (list, merge, distinct)\n";
    return 2;
  }
  // the decision's identity keys, so the next row with them finds this record
  std::vector<std::optional<std::string>> keys(fields.size());
  for (size_t k = 0; k < fields.size(); ++k) {
    if (!cand.contains(fields[k].name) || cand[fields[k].name].is_null()) continue;
    std::string v = cand[fields[k].name].is_string() ? cand[fields[k].name].get<std::string>() : cand[fields[k].name].dump();
    engine::Normalized n = engine::normalize(fields[k].normalize, v);
    keys[k] = n.key ? n.key : std::optional<std::string>(v);
  }
  std::vector<std::vector<int>> tiers;
  for (const auto& tier : t.entity->identity) {
    std::vector<int> ix;
    for (const auto& fname : tier)
      for (size_t k = 0; k < fields.size(); ++k)
        if (fields[k].name == fname) ix.push_back(int(k));
    tiers.push_back(ix);
  }
  auto composite = engine::composite_keys(keys, tiers);
  for (size_t ti = 0; ti < composite.size(); ++ti)
    if (composite[ti])
      tx.exec_params("INSERT INTO " + bk + ".identity_keys (table_name, tier, key, record_id, batch_id) SELECT "
                     "$1::text, $2::int, $3::text, $4::text, $5::uuid WHERE NOT EXISTS (SELECT 1 FROM " + bk +
                         ".identity_keys WHERE hashtextextended(key, tier) = hashtextextended($3::text, $2::int) AND "
                         "table_name = $1::text AND tier = $2::int AND key = $3::text AND record_id = $4::text)",
                     table, int(ti + 1), *composite[ti], record, batch);
  const std::string decided = action == "merge" ? "merged" : "distinct";
  tx.exec_params("UPDATE " + bk + ".review_queue SET status = $2, record_id = $3, decided_by = $4, decided_at = now() "
                 "WHERE id = $1",
                 id, decided, record, actor);
  if (cand.contains("row_number"))
    tx.exec_params("UPDATE " + bk + ".row_lineage SET record_id = $4, action = $5 WHERE batch_id = $1::uuid AND "
                   "row_number = $2 AND table_name = $3 AND action = 'review'",
                   batch, cand["row_number"].get<int64_t>(), table, record,
                   std::string(action == "merge" ? "updated" : "inserted"));
  tx.exec_params("INSERT INTO " + bk + ".audit (actor, action, batch_id, payload) VALUES ($1, $2, $3::uuid, $4::jsonb)",
                 actor, "review_" + action, batch, json({{"review_id", id}, {"record_id", record}}).dump());
  tx.commit();
  std::cout << json({{"review_id", id}, {"status", decided}, {"record_id", record}}).dump() << std::endl;
  return 0;
}

int cmd_dlq_replay(const config::Config& cfg, int64_t limit, bool dry_run) {
  const std::string brokers = resolve_brokers(cfg);
  auto conf = kafka_conf(cfg, brokers);
  std::string err;
  // a dry run reads with a group of its own, so it neither moves nor waits for the real one
  conf->set("group.id", cfg.kafka.group_id + (dry_run ? "-dlq-peek-" + std::to_string(getpid()) : "-dlq-replay"), err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("enable.partition.eof", "true", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) throw std::runtime_error("kafka consumer: " + err);
  c->subscribe({cfg.kafka.topics.dead_letter});
  std::unique_ptr<Producer> producer;
  if (!dry_run) producer = std::make_unique<Producer>(cfg, brokers);
  std::map<std::string, int64_t> replayed;
  std::set<int32_t> eof;
  size_t assigned = 0;
  int64_t n = 0;
  auto idle_since = std::chrono::steady_clock::now();
  while (n < limit) {
    std::unique_ptr<RdKafka::Message> m(c->consume(500));
    if (!m) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      eof.insert(m->partition());
      std::vector<RdKafka::TopicPartition*> parts;
      c->assignment(parts);
      assigned = parts.size();
      RdKafka::TopicPartition::destroy(parts);
      if (assigned && eof.size() >= assigned) break;
      continue;
    }
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      // joining the group can wait for a previous member's session to expire
      if (std::chrono::steady_clock::now() - idle_since > std::chrono::seconds(60)) break;
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    idle_since = std::chrono::steady_clock::now();
    std::string source;
    if (auto* h = m->headers()) {
      for (const auto& hd : h->get("source_topic")) source.assign(static_cast<const char*>(hd.value()), hd.value_size());
    }
    if (source.empty()) continue;
    std::string payload(static_cast<const char*>(m->payload()), m->len());
    std::string key = m->key() ? *m->key() : "";
    if (!dry_run) {
      producer->send(source, key, payload, {{"replayed_from", cfg.kafka.topics.dead_letter + "@" + std::to_string(m->offset())}});
      c->commitSync(m.get());
    }
    ++replayed[source];
    ++n;
  }
  c->close();
  json out = {{"replayed", n}, {"by_topic", replayed}, {"dry_run", dry_run}};
  std::cout << out.dump(2) << std::endl;
  return 0;
}

}  // namespace ingestd
