// Exact matching: a tier's key is its fields' keys joined. Records are found through the
// target's own indexes on the tier's columns (so rows written by anyone are found), and through
// identity memory for the keys a record no longer holds in its columns.
#include <algorithm>
#include <set>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/keys.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/normalize.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

std::vector<IdentityTier> identity_tiers(const config::Entity& entity) {
  std::vector<IdentityTier> tiers;
  for (const auto& tier : entity.identity) {
    IdentityTier t;
    t.number = int(tiers.size()) + 1;
    for (const auto& fname : tier)
      for (size_t k = 0; k < entity.fields.size(); ++k)
        if (entity.fields[k].name == fname) t.fields.push_back(int(k));
    tiers.push_back(std::move(t));
  }
  return tiers;
}

Matcher::Matcher(std::vector<IdentityTier> tiers, MatchTarget target)
    : tiers_(std::move(tiers)), target_(std::move(target)) {}

ProbeKey probe_key(const Matcher& m, size_t t, const std::string& key, const FieldKeys& field_keys) {
  return ProbeKey{m.tiers()[t].number, key, &field_keys};
}

std::vector<std::vector<std::string>> stored_keys(const Matcher& m, const FieldKeys& own,
                                                  const std::vector<std::vector<std::string>>& memory) {
  auto keys = memory;
  keys.resize(m.tiers().size());
  const auto made = m.keys(own);
  for (size_t t = 0; t < made.size() && t < keys.size(); ++t)
    if (made[t]) keys[t].push_back(*made[t]);
  return keys;
}

KnownRecord known_record(const Matcher& m, const FoundRecord& f) {
  return {f.id, stored_keys(m, f.own, f.memory), f.by_blocks};
}

OneRowMatch match_one_row(StepSql& sql, const Matcher& m, const FieldKeys& field_keys) {
  OneRowMatch out;
  const TierKeys keys = m.keys(field_keys);
  std::vector<ProbeKey> probes;
  for (size_t i = 0; i < keys.size(); ++i)
    if (keys[i]) probes.push_back(probe_key(m, i, *keys[i], field_keys));
  out.keyed = !probes.empty();
  if (!out.keyed) return out;
  std::vector<KnownRecord> known;
  for (const auto& f : m.find(sql, probes)) known.push_back(known_record(m, f));
  const Resolution res = resolve_rows({keys}, known, keys.size());
  const RowDecision& dec = res.rows.front();
  auto id_of = [&](int record) { return known[size_t(res.records[size_t(record)].known)].id; };
  if (dec.kind == RowDecision::Kind::Match) {
    out.id = id_of(dec.record);
    out.tier = dec.tier;
  } else if (dec.kind == RowDecision::Kind::Review) {
    for (const auto& [record, tier] : dec.candidates) out.claimants.push_back(id_of(record));
  }
  return out;
}

namespace {

/// A key lookup may meet a key many records hold (a family phone): past this many the row is
/// ambiguous anyway, and fetching every holder would only cost time.
constexpr int kMaxHoldersPerKey = 64;

class ExactMatcher : public Matcher {
 public:
  /// `extra`: fields a record is also fetched with (the fuzzy tier's).
  ExactMatcher(std::vector<IdentityTier> tiers, MatchTarget target, std::vector<TierSql> sql, size_t fields,
               std::shared_ptr<const FuzzyMatcher> fuzzy, std::vector<TierFieldSql> extra)
      : Matcher(std::move(tiers), std::move(target)), sql_(std::move(sql)), fields_(fields), extra_(std::move(extra)) {
    fuzzy_ = std::move(fuzzy);
    for (const auto& t : tiers_) {
      tier_fields_.push_back(t.fields);
      width_ = std::max(width_, t.fields.size());
      for (int f : t.fields) identity_fields_.insert(f);
    }
    for (const auto& f : extra_) identity_fields_.insert(f.field);
    name_field_.assign(fields_, 0);
    for (int f : identity_fields_)
      if (const TierFieldSql* fs = field_sql_of(f); fs && fs->name) name_field_[size_t(f)] = 1;
  }

  std::vector<std::optional<std::string>> keys(const FieldKeys& field_keys) const override {
    return composite_keys(field_keys, tier_fields_);
  }

  std::vector<FoundRecord> find(StepSql& sql, const std::vector<ProbeKey>& keys) const override {
    std::vector<FoundRecord> out;
    if (keys.empty() || tiers_.empty()) return out;
    stage(sql, keys);
    // Identity memory is small in most installations (the keys records do not hold in their
    // own columns: hundreds of rows after a 1M-row load). Fewer memory rows for the table than
    // keys looked for: one hash join over them beats an index probe per key. Counting stops
    // past the number of keys, so it never costs more than the probes it may save.
    const bool hashed = memory_rows(sql, keys.size()) <= keys.size();
    if (const std::string hits = hits_sql(!hashed); !hits.empty()) sql.probe(hits, "candidates");
    // (the table's memory rows are read once, through the index that leads with table_name)
    if (hashed)
      sql.hash_join("INSERT INTO pg_temp.ingestd_hits SELECT ik.record_id FROM " + probe_table() + " p JOIN " +
                        target_.bookkeeping + ".identity_keys ik ON ik.tier = p.tier AND ik.key = p.key WHERE "
                        "ik.table_name = :table",
                    "candidates");
    return fetch_hits(sql, hashed);
  }

  std::vector<FoundRecord> fetch(StepSql& sql, const std::vector<std::string>& ids) const override {
    std::vector<FoundRecord> out;
    if (ids.empty()) return out;
    stage(sql, {});
    {
      CopyIn copy(sql.tx(), "pg_temp.ingestd_hits", {"record_id"});
      std::string line;
      for (const auto& id : ids) {
        line.clear();
        append_copy_value(line, id);
        copy.line(line);
      }
      copy.complete();
    }
    // a fuzzy tier's blocks name tens of thousands of records a slice: memory by one hash
    // join, as find() reads it, rather than a probe per record, where memory is the smaller
    return fetch_hits(sql, memory_rows(sql, ids.size()) <= ids.size());
  }

  void remember(StepSql& sql, const std::vector<std::tuple<std::string, int, std::string>>& keys) const override {
    if (keys.empty()) return;
    CopyIn copy(sql.tx(), target_.bookkeeping + ".identity_keys", {"table_name", "tier", "key", "record_id", "batch_id"});
    std::string line;
    for (const auto& [record, tier, key] : keys) {
      line.clear();
      append_copy_value(line, sql.table());
      line += '\t' + std::to_string(tier) + '\t';
      append_copy_value(line, key);
      line += '\t';
      append_copy_value(line, record);
      line += '\t' + sql.batch();
      copy.line(line);
    }
    copy.complete();
  }

 private:
  std::string probe_table() const { return "pg_temp.ingestd_probe_" + std::to_string(width_); }

  void stage(StepSql& sql, const std::vector<ProbeKey>& keys) const {
    std::vector<std::string> cols{"tier", "key"};
    for (size_t i = 0; i < width_; ++i) cols.push_back("k" + std::to_string(i + 1));
    sql.exec("DO $ingestd$ BEGIN IF to_regclass('" + probe_table() + "') IS NULL THEN CREATE TEMP TABLE " +
                 probe_table().substr(8) + " (tier int, key text COLLATE \"C\", " +
                 sql::join_n(width_, ", ", [](size_t i) { return "k" + std::to_string(i + 1) + " text"; }) +
                 ") ON COMMIT DELETE ROWS; CREATE TEMP TABLE IF NOT EXISTS ingestd_hits (record_id text COLLATE "
                 "\"C\") ON COMMIT DELETE ROWS; END IF; END $ingestd$",
             "candidates");
    // Emptied for this probe: DELETE for a few keys; for many, TRUNCATE, since the slices of a big
    // part probe one after another in one transaction, and every statement after a DELETE
    // would scan all the rows the slices before left dead (as EntityMerge::clear does).
    sql.exec(keys.size() >= 1000 ? "TRUNCATE " + probe_table() + ", pg_temp.ingestd_hits"
                                 : "DELETE FROM " + probe_table() + "; DELETE FROM pg_temp.ingestd_hits",
             "candidates");
    CopyIn copy(sql.tx(), probe_table(), cols);
    std::string line;
    for (const auto& k : keys) {
      line = std::to_string(k.tier) + '\t';
      append_copy_value(line, k.key);
      const auto& parts = tier_fields_[size_t(k.tier - 1)];
      for (size_t i = 0; i < width_; ++i) {
        line += '\t';
        if (i < parts.size()) append_copy_value(line, (*k.fields)[size_t(parts[i])]);
        else line += "\\N";
      }
      copy.line(line);
    }
    copy.complete();
  }

  /// The table's identity-memory rows, counted up to `limit` + 1 (through the index that
  /// leads with table_name).
  size_t memory_rows(StepSql& sql, size_t limit) const {
    return sql.probe("SELECT count(*) FROM (SELECT FROM " + target_.bookkeeping +
                         ".identity_keys WHERE table_name = :table LIMIT " + std::to_string(limit + 1) + ") m",
                     "candidates")[0][0]
        .as<size_t>();
  }

  /// Every key one probe of the index that serves its tier (LATERAL … OFFSET 0 keeps each a
  /// probe, whatever the planner thinks of the table's size); then, with `memory`, identity
  /// memory, in hash order so neighbouring probes share index pages. A hash collision is one
  /// more row read.
  std::string hits_sql(bool memory) const {
    const std::string lim = " LIMIT " + std::to_string(kMaxHoldersPerKey) + ") x";
    std::string q = "INSERT INTO pg_temp.ingestd_hits ";
    for (const auto& t : sql_) {
      if (&t != &sql_.front()) q += " UNION ALL ";
      q += "SELECT x.rid FROM " + probe_table() + " p CROSS JOIN LATERAL (SELECT t." + target_.id + "::text AS rid FROM " +
           target_.table + " t WHERE " + t.condition([](size_t i) { return "p.k" + std::to_string(i + 1); }) + lim +
           " WHERE p.tier = " + std::to_string(t.tier.number);
    }
    if (!memory) return sql_.empty() ? std::string() : q;
    return q + (sql_.empty() ? "" : " UNION ALL ") + "SELECT x.rid FROM (SELECT *, hashtextextended(key, tier) AS h FROM " + probe_table() +
           " ORDER BY h) p CROSS JOIN LATERAL (SELECT ik.record_id AS rid FROM " + target_.bookkeeping +
           ".identity_keys ik WHERE hashtextextended(ik.key, ik.tier) = p.h AND ik.table_name = :table AND ik.tier = "
           "p.tier AND ik.key = p.key" + lim;
  }

  static std::string memory_array() { return "array_agg(ik.tier::text || ':' || ik.key)"; }

  /// The records pg_temp.ingestd_hits names, in id order, with their memory: by a probe per
  /// record, or (`hashed`) by one hash join over the table's memory rows.
  std::vector<FoundRecord> fetch_hits(StepSql& sql, bool hashed) const {
    std::vector<FoundRecord> out;
    auto rows = sql.probe(fetch_sql(!hashed), "candidates");
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(found(row, !hashed));
    rows.clear();  // the result's text is held by libpq until then
    if (!hashed) return out;
    const auto memory = sql.hash_join(
        "SELECT ik.record_id, " + memory_array() + " FROM " + target_.bookkeeping + ".identity_keys ik WHERE "
        "ik.table_name = :table AND ik.record_id IN (SELECT record_id FROM pg_temp.ingestd_hits) GROUP BY ik.record_id",
        "candidates");
    for (const auto& row : memory) {
      const std::string id = row[0].as<std::string>();
      auto it = std::lower_bound(out.begin(), out.end(), id,
                                 [](const FoundRecord& f, const std::string& v) { return f.id < v; });
      if (it != out.end() && it->id == id) add_memory(row[1], *it);
    }
    return out;
  }

  /// The records hit, with the stored keys of their identity fields (a name's stored value,
  /// whose key the engine makes: found()) and, with `memory`, their memory.
  std::string fetch_sql(bool memory) const {
    std::string cols;
    for (int f : identity_fields_) {
      const TierFieldSql* fs = field_sql_of(f);
      cols += ", " + (!fs ? "NULL::text" : fs->name ? fs->column_text : fs->key_text);
    }
    return "SELECT c.rid" + cols + (memory ? ", m.keys" : "") + " FROM (SELECT DISTINCT record_id AS rid FROM "
           "pg_temp.ingestd_hits) c CROSS JOIN LATERAL (SELECT * FROM " + target_.table + " t WHERE t." + target_.id +
           " = c.rid::" + target_.id_type + " OFFSET 0) t" +
           (memory ? " LEFT JOIN LATERAL (SELECT " + memory_array() + " AS keys FROM " + target_.bookkeeping +
                         ".identity_keys ik WHERE ik.table_name = :table AND ik.record_id = c.rid) m ON true"
                   : "") +
           " ORDER BY c.rid";
  }

  const TierFieldSql* field_sql_of(int field) const {
    for (const auto& t : sql_)
      for (const auto& f : t.fields)
        if (f.field == field) return &f;
    for (const auto& f : extra_)
      if (f.field == field) return &f;
    return nullptr;
  }

  FoundRecord found(const pqxx::row& row, bool memory) const {
    // one field walked along the row: a field made for each column would copy the result's
    // handle (a reference count) each time, tens of millions of times over a big load
    FoundRecord r;
    auto c = row.begin();
    r.id.assign(c->c_str(), c->size());
    r.own.resize(fields_);
    for (int f : identity_fields_) {
      ++c;
      if (c->is_null()) continue;
      const std::string_view v(c->c_str(), c->size());
      r.own[size_t(f)] = name_field_[size_t(f)] ? name_key(v) : std::string(v);
    }
    if (memory) add_memory(*++c, r);
    return r;
  }

  /// An array of memory keys ("tier:key") into the record's memory.
  void add_memory(const pqxx::field& keys, FoundRecord& r) const {
    if (keys.is_null()) return;
    auto parser = keys.as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next()) {
      if (item.first != pqxx::array_parser::string_value) continue;
      const auto colon = item.second.find(':');
      const size_t tier = size_t(std::stoi(item.second.substr(0, colon)));
      if (tier < 1 || tier > tiers_.size()) continue;
      r.memory.resize(tiers_.size());  // most records have none: no room made for them
      r.memory[tier - 1].push_back(item.second.substr(colon + 1));
    }
  }

  std::vector<TierSql> sql_;
  size_t fields_;
  std::vector<TierFieldSql> extra_;
  std::vector<std::vector<int>> tier_fields_;
  size_t width_ = 1;
  std::set<int> identity_fields_;
  std::vector<char> name_field_;  // [field] its key is a name's: made here of the fetched value
};

}  // namespace

std::unique_ptr<Matcher> make_matcher(const config::Entity& entity, MatchTarget target, std::vector<TierSql> tiers) {
  return std::make_unique<ExactMatcher>(identity_tiers(entity), std::move(target), std::move(tiers), entity.fields.size(),
                                        nullptr, std::vector<TierFieldSql>{});
}

std::unique_ptr<Matcher> make_matcher(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                      MatchTarget target) {
  std::shared_ptr<const FuzzyMatcher> fuzzy;
  std::vector<TierFieldSql> extra;
  if (entity.fuzzy) {
    std::vector<std::string> missing;  // the loader refused a missing function already
    fuzzy = std::make_shared<FuzzyMatcher>(entity, target, blocking_sql(tx, entity, table, target.bookkeeping, missing),
                                           never_sql(tx, entity, table, target.bookkeeping),
                                           entity.fuzzy->trained_rows > 0 ? table_records(tx, target.table) : -1);
    for (int f : fuzzy->fields()) extra.push_back(field_sql(tx, entity, f, table, target.bookkeeping));
  }
  return std::make_unique<ExactMatcher>(identity_tiers(entity), target, tier_sql(tx, entity, table, target.bookkeeping),
                                        entity.fields.size(), std::move(fuzzy), std::move(extra));
}

}  // namespace ingestd::engine
