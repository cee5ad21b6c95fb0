#include "handlers/file_arrival/file_arrival.hpp"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "handlers/engine/loader.hpp"

namespace ingestd::file_arrival {

namespace fs = std::filesystem;

namespace {

std::string percent_decode(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      o += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      o += s[i];
    }
  }
  return o;
}

bool inside(const std::string& path, const std::string& root) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          (root.back() == '/' || path[root.size()] == '/'));
}

}  // namespace

std::string resolve_path(const std::string& uri, const std::vector<std::string>& roots, std::string& error) {
  std::string p = uri;
  if (p.rfind("file://", 0) == 0) {
    p = p.substr(7);
    if (!p.empty() && p[0] != '/') {  // file://host/path: only the local host is ours
      auto slash = p.find('/');
      std::string host = p.substr(0, slash);
      if (host != "localhost") {
        error = "uri " + uri + " names host " + host + "; only local files can be read";
        return "";
      }
      p = slash == std::string::npos ? "/" : p.substr(slash);
    }
    p = percent_decode(p);
  } else if (p.find("://") != std::string::npos) {
    error = "uri " + uri + ": only file:// URIs are supported";
    return "";
  }
  if (p.empty() || p[0] != '/') {
    error = "uri " + uri + " is not an absolute path";
    return "";
  }
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) {
    error = "file " + p + " does not exist or cannot be resolved: " + std::strerror(errno);
    return "";
  }
  std::string real = buf;
  bool ok = false;
  for (const auto& r : roots) {
    char rb[PATH_MAX];
    std::string root = realpath(r.c_str(), rb) ? std::string(rb) : r;
    if (inside(real, root)) ok = true;
  }
  if (!ok) {
    error = "file " + p + (real != p ? " (resolves to " + real + ")" : "") + " is outside files.allowed_roots";
    return "";
  }
  struct stat st{};
  if (stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "file " + p + " is not a regular file";
    return "";
  }
  return real;
}

std::pair<std::string, uint64_t> file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw engine::BatchError("cannot open " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  uint64_t size = 0;
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    auto n = in.gcount();
    if (n <= 0) break;
    size += uint64_t(n);
    EVP_DigestUpdate(ctx.get(), buf.data(), size_t(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::ostringstream o;
  for (unsigned i = 0; i < len; ++i) o << std::hex << std::setw(2) << std::setfill('0') << int(md[i]);
  return {o.str(), size};
}

namespace {

std::string str(const nlohmann::json& p, const char* k) {
  return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : "";
}

Outcome failed(const std::string& why, const std::string& batch_id = "") { return Outcome::failed(why, batch_id); }

/// Session lock held on the worker connection while it owns the batch (rule 4).
class BatchOwnership {
 public:
  BatchOwnership(pqxx::connection& c, const std::string& id) : c_(c), id_(id) {
    pqxx::nontransaction tx(c_);
    held_ = tx.exec_params1("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", id_)[0].as<bool>();
  }
  ~BatchOwnership() {
    if (!held_) return;
    try {
      pqxx::nontransaction tx(c_);
      tx.exec_params("SELECT pg_advisory_unlock(hashtextextended($1, 0))", id_);
    } catch (...) {
      // a broken connection released the lock with the session
    }
  }
  bool held() const { return held_; }

 private:
  pqxx::connection& c_;
  std::string id_;
  bool held_ = false;
};

}  // namespace

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  auto log = spdlog::get("file_arrival");
  const auto& p = ev.payload;
  const std::string dataset = p["dataset"].get<std::string>();
  const config::Dataset& ds = svc.cfg.datasets.at(dataset);
  const std::string uri = p["uri"].get<std::string>();
  const bool dry_run = p.value("dry_run", false);
  const std::string qs = svc.db.quote_name(svc.cfg.postgres.bookkeeping_schema);

  std::string error;
  const std::string path = resolve_path(uri, svc.cfg.files.allowed_roots, error);
  if (path.empty()) return failed(error);

  if (p.contains("size_bytes") && p["size_bytes"].is_number_unsigned()) {
    std::error_code ec;
    auto actual = fs::file_size(path, ec);
    if (!ec && actual != p["size_bytes"].get<uint64_t>())
      return failed("size mismatch for " + path + ": event says " + std::to_string(p["size_bytes"].get<uint64_t>()) +
                    " bytes, the file has " + std::to_string(actual));
  }
  auto [sha, size] = file_digest(path);
  const std::string claimed = str(p, "sha256");
  if (!claimed.empty()) {
    std::string lc = claimed;
    for (auto& c : lc) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (lc != sha) return failed("sha256 mismatch for " + path + ": event says " + claimed + ", the file has " + sha);
  }

  // Create the batch, or find the one an earlier owner left unfinished.
  std::string batch_id;
  int64_t resume_after = 0;
  {
    pqxx::work tx(svc.db);
    auto ex = tx.exec_params("SELECT e.batch_id::text, b.status, b.last_row_committed FROM " + qs + ".events e LEFT JOIN " +
                                 qs + ".batches b ON b.id = e.batch_id WHERE e.event_id = $1",
                             ev.event_id);
    if (!ex.empty() && !ex[0][0].is_null() && ex[0][1].as<std::string>() == "running") {
      batch_id = ex[0][0].as<std::string>();
      resume_after = dry_run ? 0 : ex[0][2].as<int64_t>();
    } else {
      if (!dry_run) {
        // Rule 2: the same content for the same dataset loads once.
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "reimport:" + dataset + ":" + sha);
        auto prev = tx.exec_params("SELECT id::text, status FROM " + qs +
                                       ".batches WHERE dataset_or_job = $1 AND sha256 = $2 AND NOT dry_run AND status IN "
                                       "('completed','completed_with_rejects') ORDER BY finished_at LIMIT 1",
                                   dataset, sha);
        // The same content being loaded right now under another event id: wait for it
        // (then it is a duplicate), unless its owner is gone (its lock is free).
        auto live = tx.exec_params("SELECT id::text FROM " + qs + ".batches WHERE dataset_or_job = $1 AND sha256 = $2 AND "
                                   "NOT dry_run AND status = 'running' AND event_id IS DISTINCT FROM $3",
                                   dataset, sha, ev.event_id);
        for (const auto& row : live) {
          auto free = tx.exec_params1("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", row[0].as<std::string>());
          if (!free[0].as<bool>()) {
            Outcome o;
            o.kind = Outcome::Kind::Retry;
            o.busy = true;
            o.reason = "the same file is being loaded by batch " + row[0].as<std::string>();
            return o;
          }
        }
        if (!prev.empty()) {
          Outcome o;
          o.status = "duplicate";
          o.batch_id = prev[0][0].as<std::string>();
          o.extra["reason"] = "file content " + sha + " was already loaded into dataset " + dataset + " by batch " +
                              o.batch_id;
          commit.write(tx, o);
          tx.commit();
          o.committed = true;
          return o;
        }
      }
      batch_id = tx.exec_params1(
          "INSERT INTO " + qs + ".batches (id, kind, dataset_or_job, uri, sha256, size_bytes, source_system, program, "
          "dry_run, status, submitted_by, event_id, owner, heartbeat_at) VALUES (gen_random_uuid(), 'file', $1, $2, $3, "
          "$4, $5, $6, $7, 'running', $8, $9, $10, now()) RETURNING id::text",
          dataset, uri, sha, int64_t(size), str(p, "source_system"), str(p, "program"), dry_run, str(p, "submitted_by"),
          ev.event_id, svc.instance_id)[0]
                     .as<std::string>();
      tx.exec_params("UPDATE " + qs + ".events SET batch_id = $2::uuid WHERE event_id = $1", ev.event_id, batch_id);
      tx.commit();
    }
  }

  BatchOwnership own(svc.db, batch_id);
  if (!own.held()) {
    Outcome o;
    o.kind = Outcome::Kind::Retry;
    o.busy = true;
    o.reason = "batch " + batch_id + " is being processed by another instance";
    return o;
  }

  engine::LoadRequest req;
  req.dataset = &ds;
  req.batch_id = batch_id;
  req.path = path;
  req.csv = ds.csv;
  if (p.contains("options") && p["options"].is_object()) {
    const auto& o = p["options"];
    if (o.contains("delimiter")) req.csv.delimiter = o["delimiter"].get<std::string>()[0];
    if (o.contains("encoding")) req.csv.encoding = o["encoding"].get<std::string>();
  }
  req.dry_run = dry_run;
  req.atomic = ds.atomic;
  req.resume_after_row = resume_after;
  req.chunk_rows = svc.cfg.processing.chunk_rows;
  req.bookkeeping_schema = svc.cfg.postgres.bookkeeping_schema;
  req.reject_path = (fs::path(svc.cfg.files.rejects_dir) / dataset / (batch_id + ".rejects.csv")).string();
  req.vars = {{"batch_id", batch_id},
              {"source_system", str(p, "source_system")},
              {"program", str(p, "program")},
              {"submitted_by", str(p, "submitted_by")}};

  Outcome out;
  out.batch_id = batch_id;
  auto final_step = [&](pqxx::transaction_base& tx, const engine::LoadResult& r) {
    out.counts = r.counts;
    out.entity_order = r.entity_order;
    out.errors = r.first_errors;
    out.status = dry_run ? "dry_run" : (r.rows_rejected > 0 ? "completed_with_rejects" : "completed");
    out.reject_file = r.rows_rejected > 0 ? req.reject_path : "";
    out.extra["rows"] = r.rows_read;
    tx.exec_params("UPDATE " + qs + ".batches SET status = $2, rows_total = $3, reject_file = $4, finished_at = now() "
                   "WHERE id = $1::uuid",
                   batch_id, out.status, r.rows_read, out.reject_file.empty() ? std::nullopt : std::optional(out.reject_file));
    commit.write(tx, out);
    out.committed = true;
  };
  try {
    auto r = engine::load_csv(svc.db, req, svc, final_step);
    if (r.interrupted) {
      Outcome o;
      o.kind = Outcome::Kind::Interrupted;
      o.batch_id = batch_id;
      return o;
    }
  } catch (const pqxx::broken_connection&) {
    throw;  // transient: the runtime retries and the batch resumes from its checkpoint
  } catch (const pqxx::transaction_rollback&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    const std::string msg = first_line(e.what());
    if (log) log->error("batch {} ({}): database refused the load: {}", batch_id, dataset, msg);
    return fail_batch(svc, commit, batch_id, "database error: " + msg);
  } catch (const engine::BatchError& e) {
    if (log) log->warn("batch {} ({}): {}", batch_id, dataset, e.what());
    return fail_batch(svc, commit, batch_id, e.what());
  }
  return out;
}

}  // namespace ingestd::file_arrival
