#include "daemon/schema.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "handlers/engine/identity/compaction.hpp"
#include "handlers/engine/normalize.hpp"

namespace ingestd {
namespace {

std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  std::ostringstream o;
  for (unsigned i = 0; i < len; ++i) o << std::hex << std::setw(2) << std::setfill('0') << int(md[i]);
  return o.str();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

}  // namespace

void migrate_schema(pqxx::connection& conn, const std::string& schema) {
  auto log = spdlog::get("schema");
  pqxx::work tx(conn);
  // One lock id for all instances of the cluster: the second instance waits here until the
  // first has committed, then finds nothing left to apply.
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('ingestd:migrations'))");
  const std::string qs = tx.quote_name(schema);
  tx.exec("CREATE SCHEMA IF NOT EXISTS " + qs);
  tx.exec("CREATE TABLE IF NOT EXISTS " + qs +
          ".schema_migrations (version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now())");
  auto applied = tx.exec("SELECT version, name, checksum FROM " + qs + ".schema_migrations");
  for (const auto& m : schema_migrations()) {
    const std::string sum = sha256_hex(m.sql);
    bool done = false;
    for (const auto& row : applied) {
      if (row[0].as<int>() != m.version) continue;
      done = true;
      if (row[2].as<std::string>() != sum)
        throw std::runtime_error("schema migration " + std::to_string(m.version) + "_" + m.name +
                                 " was changed after it was applied to " + schema +
                                 " (checksum differs); restore the released file or migrate by hand");
    }
    if (done) continue;
    if (log) log->info("applying schema migration {:03d}_{}", m.version, m.name);
    std::string sql = replace_all(m.sql, "{{schema}}", qs);
    sql = replace_all(sql, "{{name_key_space}}", engine::name_key_space_class());
    sql = replace_all(sql, "{{name_key_marks}}", engine::name_key_marks_class());
    tx.exec(sql);
    tx.exec_params("INSERT INTO " + qs + ".schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                   m.version, m.name, sum);
  }
  tx.commit();
}

void prepare_bookkeeping(pqxx::connection& conn, const config::Config& cfg) {
  migrate_schema(conn, cfg.postgres.bookkeeping_schema);
  engine::compact_identity_memory(conn, cfg);
}

std::unique_ptr<pqxx::connection> connect_migrated(const config::Config& cfg) {
  auto c = std::make_unique<pqxx::connection>(cfg.postgres.url);
  migrate_schema(*c, cfg.postgres.bookkeeping_schema);
  return c;
}

SchemaVersion read_schema_version(pqxx::connection& conn, const std::string& schema) {
  SchemaVersion v;
  v.expected = schema_migrations().empty() ? 0 : schema_migrations().back().version;
  pqxx::read_transaction tx(conn);
  const std::string table = tx.quote_name(schema) + ".schema_migrations";
  if (tx.exec_params("SELECT to_regclass($1) IS NULL", table)[0][0].as<bool>()) return v;
  v.applied = tx.exec("SELECT coalesce(max(version), 0) FROM " + table)[0][0].as<int>();
  return v;
}

std::string schema_behind_message(const std::string& command, const std::string& schema, const SchemaVersion& v) {
  const std::string fix =
      "run `ingestd run` (it migrates at start) or `ingestd check --create-indexes` as the "
      "daemon's database role; this command never migrates";
  if (v.applied == 0)
    return "ingestd " + command + ": the bookkeeping schema " + schema +
           " does not exist yet (this binary expects version " + std::to_string(v.expected) + "): " + fix;
  return "ingestd " + command + ": the bookkeeping schema " + schema + " is at version " + std::to_string(v.applied) +
         ", this binary expects " + std::to_string(v.expected) + ": " + fix;
}

int run_read_only(const config::Config& cfg, const std::string& command,
                  const std::function<int(pqxx::connection&)>& body) {
  pqxx::connection conn(cfg.postgres.url);
  const SchemaVersion v = read_schema_version(conn, cfg.postgres.bookkeeping_schema);
  const std::string behind = v.behind() ? schema_behind_message(command, cfg.postgres.bookkeeping_schema, v) : "";
  if (v.applied == 0) {
    std::cerr << behind << "\n";
    return 2;
  }
  if (v.behind()) std::cerr << behind << " (showing what the older schema has)\n";
  try {
    return body(conn);
  } catch (const pqxx::sql_error& e) {
    // 42P01 undefined table, 42703 undefined column, 42883 undefined function
    if (!v.behind() || (e.sqlstate() != "42P01" && e.sqlstate() != "42703" && e.sqlstate() != "42883")) throw;
    std::cerr << behind << "\n  (it needs what the older schema lacks: " << e.what() << ")\n";
    return 2;
  }
}

}  // namespace ingestd
