#include "handlers/file_arrival/file_arrival.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "handlers/engine/loader.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/file_arrival/documents.hpp"

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

/// Whether a real path lies beneath one of `roots` (each resolved, when it resolves).
bool beneath_a_root(const std::string& real, const std::vector<std::string>& roots) {
  for (const auto& r : roots) {
    char rb[PATH_MAX];
    if (inside(real, realpath(r.c_str(), rb) ? std::string(rb) : r)) return true;
  }
  return false;
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
  if (!beneath_a_root(real, roots)) {
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
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw engine::BatchError("cannot open " + path + ": " + std::strerror(errno));
  try {
    auto d = fd_digest(fd);
    ::close(fd);
    return d;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::pair<std::string, uint64_t> fd_digest(int fd) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  uint64_t size = 0;
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw engine::BatchError(std::string("cannot read the file: ") + std::strerror(errno));
    if (n == 0) break;
    at += n;
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

OpenedFile::OpenedFile(const std::string& real, const std::vector<std::string>& roots, std::string& error)
    : path_(real) {
  // O_NONBLOCK: opening a FIFO with no writer returns at once (then fstat refuses it) instead
  // of waiting for good; O_NOFOLLOW: the last component was resolved already, a symlink put
  // there since is refused.
  fd_ = ::open(real.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd_ < 0) {
    error = "cannot open " + real + ": " + std::strerror(errno);
    return;
  }
  if (fstat(fd_, &st_) != 0 || !S_ISREG(st_.st_mode)) {
    error = "file " + real + " is not a regular file";
    return;
  }
  if (st_.st_nlink != 1) {
    error = "file " + real + " has " + std::to_string(st_.st_nlink) +
            " hard links; a file with more than one could be changed under another name";
    return;
  }
  // Where the descriptor really leads, whatever the path's directories became since realpath.
  char target[PATH_MAX];
  const ssize_t n = readlink(reopen_path().c_str(), target, sizeof target - 1);
  const std::string opened = n > 0 ? std::string(target, size_t(n)) : "";
  if (!beneath_a_root(opened, roots)) error = "file " + real + " (opened as " + opened + ") is outside files.allowed_roots";
}

OpenedFile::~OpenedFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string OpenedFile::changed_since_open() const {
  switch (engine::file_change(path_, st_)) {
    case engine::FileChange::None:
      return "";
    case engine::FileChange::Modified:
      return "file " + path_ + " changed after it was hashed (size or modification time)";
    case engine::FileChange::Replaced:
      break;
  }
  return "file " + path_ + " was replaced or removed after it was hashed";
}

namespace {

std::string database_error(const pqxx::sql_error& e) { return "database error: " + first_line(e.what()); }

std::string str(const nlohmann::json& p, const char* k) {
  return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : "";
}

Outcome busy(std::string why) {
  Outcome o;
  o.kind = Outcome::Kind::Retry;
  o.busy = true;
  o.reason = std::move(why);
  return o;
}

/// The announced file, found beneath an allowed root, opened once and checked against the event.
struct VerifiedFile {
  std::string path, sha256;
  uint64_t size = 0;
  std::string error;  // non-empty: the event fails with it
  std::unique_ptr<OpenedFile> file;
};

VerifiedFile verify_file(const nlohmann::json& p, const config::Config& cfg) {
  VerifiedFile f;
  f.path = resolve_path(p["uri"].get<std::string>(), cfg.files.allowed_roots, f.error);
  if (f.path.empty()) return f;
  f.file = std::make_unique<OpenedFile>(f.path, cfg.files.allowed_roots, f.error);
  if (!f.error.empty()) return f;
  if (p.contains("size_bytes") && p["size_bytes"].is_number_unsigned()) {
    struct stat st {};
    const auto actual = fstat(f.file->fd(), &st) == 0 ? uint64_t(st.st_size) : 0;
    if (actual != p["size_bytes"].get<uint64_t>()) {
      f.error = "size mismatch for " + f.path + ": event says " + std::to_string(p["size_bytes"].get<uint64_t>()) +
                " bytes, the file has " + std::to_string(actual);
      return f;
    }
  }
  std::tie(f.sha256, f.size) = fd_digest(f.file->fd());
  if (f.error = f.file->changed_since_open(); !f.error.empty()) return f;
  std::string claimed = str(p, "sha256");
  for (auto& c : claimed) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (!claimed.empty() && claimed != f.sha256)
    f.error = "sha256 mismatch for " + f.path + ": event says " + str(p, "sha256") + ", the file has " + f.sha256;
  return f;
}

/// Where the batch starts: a new one, one an earlier owner left running, or an answer instead.
struct BatchStart {
  std::string batch_id;
  int64_t resume_after = 0;
  bool locked = false;            // a new batch: its lock was taken with its creation
  std::string changed;            // a batch to resume whose file changed: it fails with this
  std::optional<Outcome> answer;  // duplicate content (committed) or busy
};

/// Rule 2: the same content for the same dataset loads once. Content being loaded right now
/// under another event id is waited for (then it is a duplicate), unless its owner is gone.
std::optional<Outcome> reimport_answer(pqxx::transaction_base& tx, const engine::Bookkeeping& books,
                                       const std::string& dataset, const std::string& sha, const Event& ev,
                                       EventCommit& commit) {
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "reimport:" + dataset + ":" + sha);
  const std::string batches = books.table(tx, "batches");
  auto prev = tx.exec_params("SELECT id::text FROM " + batches + " WHERE dataset_or_job = $1 AND sha256 = $2 AND NOT "
                             "dry_run AND status IN ('completed','completed_with_rejects') ORDER BY finished_at LIMIT 1",
                             dataset, sha);
  auto live = tx.exec_params("SELECT id::text FROM " + batches + " WHERE dataset_or_job = $1 AND sha256 = $2 AND NOT "
                             "dry_run AND status = 'running' AND event_id IS DISTINCT FROM $3",
                             dataset, sha, ev.event_id);
  for (const auto& row : live)
    if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", row[0].as<std::string>())[0].as<bool>())
      return busy("the same file is being loaded by batch " + row[0].as<std::string>());
  if (prev.empty()) return std::nullopt;
  Outcome o;
  o.status = engine::ResultStatus::Duplicate;
  o.batch_id = prev[0][0].as<std::string>();
  o.extra["reason"] = "file content " + sha + " was already loaded into dataset " + dataset + " by batch " + o.batch_id;
  commit.write(tx, o);
  o.committed = true;
  return o;
}

/// Creates the batch, or finds the one an earlier owner left unfinished (it resumes).
BatchStart open_batch(const Event& ev, Services& svc, EventCommit& commit, const VerifiedFile& f) {
  const auto& p = ev.payload;
  const std::string dataset = p["dataset"].get<std::string>();
  const bool dry_run = p.value("dry_run", false);
  const engine::Bookkeeping books(svc.cfg.postgres.bookkeeping_schema);
  BatchStart start;
  pqxx::work tx(svc.db);
  auto ex = tx.exec_params("SELECT e.batch_id::text, b.status, b.last_row_committed, b.sha256 FROM " + books.table(tx, "events") +
                               " e LEFT JOIN " + books.table(tx, "batches") + " b ON b.id = e.batch_id WHERE e.event_id = $1",
                           ev.event_id);
  if (!ex.empty() && !ex[0][0].is_null() && ex[0][1].as<std::string>() == "running") {
    start.batch_id = ex[0][0].as<std::string>();
    // Resuming after row N is only right for the very content rows 1..N came from.
    if (!ex[0][3].is_null() && ex[0][3].as<std::string>() != f.sha256) {
      start.changed = "the file's content changed since batch " + start.batch_id + " started (sha256 " +
                      ex[0][3].as<std::string>() + ", now " + f.sha256 + "): it is not resumed";
      return start;
    }
    start.resume_after = dry_run ? 0 : ex[0][2].as<int64_t>();
    return start;
  }
  // A document is unique per owner, not per dataset: the documents table's index decides.
  if (!dry_run && !svc.cfg.datasets.at(dataset).documents) {
    start.answer = reimport_answer(tx, books, dataset, f.sha256, ev, commit);
    if (start.answer) {
      if (start.answer->committed) tx.commit();
      return start;
    }
  }
  engine::NewBatch nb;
  nb.kind = engine::BatchKind::File;
  nb.target = dataset;
  nb.uri = p["uri"].get<std::string>();
  nb.sha256 = f.sha256;
  nb.size_bytes = int64_t(f.size);
  nb.source_system = str(p, "source_system");
  nb.program = str(p, "program");
  nb.submitted_by = str(p, "submitted_by");
  nb.event_id = ev.event_id;
  nb.owner = svc.instance_id;
  nb.dry_run = dry_run;
  start.batch_id = books.create(tx, nb);
  engine::lock_new_batch(tx, start.batch_id);
  start.locked = true;
  tx.commit();
  return start;
}

engine::LoadRequest load_request(const Event& ev, Services& svc, const VerifiedFile& f, const BatchStart& start) {
  const auto& p = ev.payload;
  const std::string dataset = p["dataset"].get<std::string>();
  const config::Dataset& ds = svc.cfg.datasets.at(dataset);
  engine::LoadRequest req;
  req.dataset = &ds;
  req.batch_id = start.batch_id;
  req.path = f.path;
  req.open_path = f.file->reopen_path();  // the file hashed, whatever is renamed over its name
  req.format = ds.format;
  req.csv = ds.csv;
  req.xlsx = ds.xlsx;
  if (p.contains("options") && p["options"].is_object()) {
    const auto& o = p["options"];
    if (o.contains("delimiter")) req.csv.delimiter = o["delimiter"].get<std::string>()[0];
    if (o.contains("encoding")) req.csv.encoding = o["encoding"].get<std::string>();
  }
  req.dry_run = p.value("dry_run", false);
  req.atomic = ds.atomic;
  req.resume_after_row = start.resume_after;
  req.chunk_rows = svc.cfg.processing.chunk_rows;
  req.chunk_bytes = svc.cfg.processing.chunk_bytes;
  req.bookkeeping_schema = svc.cfg.postgres.bookkeeping_schema;
  req.reject_path = (fs::path(svc.cfg.files.rejects_dir) / dataset / (start.batch_id + engine::reject_file_suffix(ds.format))).string();
  req.vars = {{"batch_id", start.batch_id},
              {"source_system", str(p, "source_system")},
              {"program", str(p, "program")},
              {"submitted_by", str(p, "submitted_by")}};
  return req;
}

}  // namespace

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  const VerifiedFile file = verify_file(ev.payload, svc.cfg);
  if (!file.error.empty()) return Outcome::failed(file.error);
  const BatchStart start = open_batch(ev, svc, commit, file);
  if (start.answer) return *start.answer;
  const engine::BatchOwnership own =
      start.locked ? engine::BatchOwnership(svc.db, start.batch_id, engine::BatchOwnership::Adopt{})
                   : engine::BatchOwnership(svc.db, start.batch_id);
  if (!own.held()) return busy("batch " + start.batch_id + " is being processed by another instance");

  if (svc.cfg.datasets.at(ev.payload["dataset"].get<std::string>()).documents)
    return run_batch(svc, commit, start.batch_id, [&] {
      if (!start.changed.empty()) throw engine::BatchError(start.changed);
      return load_document(ev, svc, commit, DocumentFile{*file.file, file.path, file.sha256, file.size}, start.batch_id);
    }, database_error);
  const engine::LoadRequest req = load_request(ev, svc, file, start);
  Outcome out;
  out.batch_id = start.batch_id;
  auto final_step = [&](pqxx::transaction_base& tx, const engine::LoadResult& r) {
    if (const std::string changed = file.file->changed_since_open(); !changed.empty())
      throw engine::BatchError(changed + "; rows committed so far stay in this batch, which can be rolled back");
    out.counts = r.counts;
    out.entity_order = r.entity_order;
    out.errors = r.first_errors;
    out.status = req.dry_run ? engine::ResultStatus::DryRun
                             : (r.rows_rejected > 0 ? engine::ResultStatus::CompletedWithRejects
                                                    : engine::ResultStatus::Completed);
    out.reject_file = r.rows_rejected > 0 ? req.reject_path : "";
    out.extra["rows"] = r.rows_read;
    engine::BatchFinish fin;
    fin.status = engine::batch_status_of(out.status);
    fin.rows_total = r.rows_read;
    if (!out.reject_file.empty()) fin.reject_file = out.reject_file;
    engine::Bookkeeping(req.bookkeeping_schema).finish(tx, start.batch_id, fin);
    commit.write(tx, out);
    out.committed = true;
  };
  return run_batch(svc, commit, start.batch_id, [&] {
    if (!start.changed.empty()) throw engine::BatchError(start.changed);
    if (const std::string changed = file.file->changed_since_open(); !changed.empty())
      throw engine::BatchError(changed + "; nothing of it was loaded");
    if (engine::load_file(svc.db, req, svc, final_step).interrupted) {
      Outcome o;
      o.kind = Outcome::Kind::Interrupted;
      o.batch_id = start.batch_id;
      return o;
    }
    return out;
  }, database_error);
}

}  // namespace ingestd::file_arrival
