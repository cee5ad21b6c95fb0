// One document's batch: owner, duplicate check, store copy, row, and the batch's end, in one
// transaction (a dry run does it all, rolls back, and records only its answer).
#include "handlers/engine/documents.hpp"

#include <filesystem>

#include "handlers/engine/merge/sql_builder.hpp"
#include "handlers/file_arrival/documents.hpp"

namespace ingestd::file_arrival {

namespace {

std::string text_of(const nlohmann::json& p, const char* key) {
  return p.contains(key) && p[key].is_string() ? p[key].get<std::string>() : "";
}

/// The row the document would become, before its owner and stored path are known.
engine::DocumentRow document_row(const nlohmann::json& p, const DocumentFile& f, const std::string& batch_id) {
  engine::DocumentRow row;
  row.sha256 = f.sha256;
  row.size_bytes = int64_t(f.size);
  row.uri = p["uri"].get<std::string>();
  row.original_name = text_of(p, "original_name");
  if (row.original_name.empty()) row.original_name = std::filesystem::path(f.path).filename().string();
  row.media_type = media_type(f.file.fd());
  row.batch_id = batch_id;
  return row;
}

/// Stores the row (and the file, unless a dry run) or finds the owner's row of the same content.
/// Fills `out` with the answer: completed (inserted) or duplicate (unchanged).
void store_document(pqxx::transaction_base& tx, Services& svc, const config::DocumentsSpec& d, const DocumentFile& f,
                    engine::DocumentRow& row, bool dry_run, Outcome& out) {
  std::optional<std::string> earlier = engine::existing_document(tx, d, row);
  if (!earlier) {
    if (!d.store_dir.empty())
      row.path = dry_run ? store_path(d.store_dir, row.sha256) : store_copy(f.file.fd(), d.store_dir, row.sha256);
    const engine::StoredDocument stored = engine::insert_document(tx, d, row, svc.cfg.postgres.bookkeeping_schema);
    if (!stored.inserted)
      earlier = stored.id;
    else
      out.extra["document_id"] = stored.id;
  }
  EntityCounts& c = out.counts["document"];
  if (earlier) {
    c.unchanged = 1;
    out.status = engine::ResultStatus::Duplicate;
    out.extra["document_id"] = *earlier;
    out.extra["reason"] = "the owner " + row.owner_id + " already has this file (sha256 " + row.sha256 + ") as " +
                          d.table + " " + d.id_column + " " + *earlier;
  } else {
    c.inserted = 1;
    out.status = engine::ResultStatus::Completed;
  }
  if (!row.path.empty()) out.extra["stored_path"] = row.path;
  if (dry_run) out.status = engine::ResultStatus::DryRun;
}

/// The batch's end, the inbox row and the offset, in the document's transaction.
void finish_document(pqxx::transaction_base& tx, Services& svc, EventCommit& commit, const std::string& batch_id,
                     Outcome& out) {
  const engine::Bookkeeping books(svc.cfg.postgres.bookkeeping_schema);
  const EntityCounts& c = out.counts["document"];
  engine::BatchCheckpoint cp;
  cp.last_row = 1;
  cp.inserted = c.inserted;
  cp.unchanged = c.unchanged;
  cp.stats = {{"counts", {{"document", c.to_json()}}}, {"rows_read", 1}};
  books.checkpoint(tx, batch_id, cp);
  engine::BatchFinish fin;
  fin.status =
      out.status == engine::ResultStatus::DryRun ? engine::BatchStatus::DryRun : engine::BatchStatus::Completed;
  fin.rows_total = 1;
  fin.stats = out.extra;
  books.finish(tx, batch_id, fin);
  commit.write(tx, out);
  out.committed = true;
}

}  // namespace

Outcome load_document(const Event& ev, Services& svc, EventCommit& commit, const DocumentFile& f,
                      const std::string& batch_id) {
  const auto& p = ev.payload;
  const config::Dataset& ds = svc.cfg.datasets.at(p["dataset"].get<std::string>());
  const config::DocumentsSpec& d = *ds.documents;
  const bool dry_run = p.value("dry_run", false);
  const nlohmann::json metadata =
      p.contains("metadata") && p["metadata"].is_object() ? p["metadata"] : nlohmann::json::object();
  Outcome out;
  out.batch_id = batch_id;
  out.entity_order = {"document"};
  out.extra["rows"] = 1;
  auto tx = std::make_unique<pqxx::work>(svc.db);
  std::vector<std::string> problems = engine::documents_schema_problems(*tx, ds);
  if (const auto idx = engine::documents_index(*tx, ds); problems.empty() && idx.index.empty())
    problems.push_back(engine::missing_index_problem(idx));
  if (!problems.empty()) throw engine::BatchError(engine::sql::join(problems, "; "));
  const engine::DocumentOwner owner = engine::find_owner(*tx, svc.cfg, d, metadata, batch_id, &svc.metrics);
  if (owner.id.empty()) throw engine::BatchError(owner.error);
  engine::DocumentRow row = document_row(p, f, batch_id);
  row.owner_id = owner.id;
  out.extra["owner"] = {{"table", engine::owner_entity(svc.cfg, d).table}, {"id", owner.id}, {"tier", owner.tier}};
  store_document(*tx, svc, d, f, row, dry_run, out);
  if (const std::string changed = f.file.changed_since_open(); !changed.empty())
    throw engine::BatchError(changed + "; the document was not stored");
  if (dry_run) {  // the real run, rolled back: only the answer stays
    tx->abort();
    tx = std::make_unique<pqxx::work>(svc.db);
  }
  finish_document(*tx, svc, commit, batch_id, out);
  tx->commit();
  return out;
}

}  // namespace ingestd::file_arrival
