#include "handlers/engine/loader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <numeric>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <pqxx/tablewriter>
#pragma GCC diagnostic pop

#include "handlers/engine/bookkeeping.hpp"
#include "handlers/engine/csv_reader.hpp"
#include "handlers/engine/identity.hpp"
#include "handlers/engine/normalize.hpp"
#include "handlers/engine/sql.hpp"

namespace ingestd::engine {
namespace {

using config::Entity;
using config::Field;
using config::MergePolicy;

/// One row of the chunk: its values per entity and field, already normalized and typed.
struct Row {
  int64_t number = 0;
  std::string raw;
  std::vector<std::vector<std::optional<std::string>>> values;  // [entity][field]
  std::vector<std::vector<std::optional<std::string>>> keys;    // [entity][field]
  std::vector<std::optional<std::string>> record_ids;           // [entity], after resolution
  std::vector<bool> in_review;                                  // [entity]
  std::vector<std::vector<std::optional<std::string>>> deferred;  // [entity][field] lookup key left for later
  std::vector<std::string> source;  // source columns a writeback needs, by WritebackPlan index
  bool rejected = false;
};

/// Where a source row's records are written back (jobs): column = id of an entity.
struct WritebackPlan {
  const config::Writeback* cfg = nullptr;
  std::vector<std::pair<std::string, size_t>> set;    // target column -> entity index
  std::vector<std::pair<std::string, size_t>> where;  // target column -> source value index
  TableInfo table;                                    // described once, when the load is planned
};

/// A stream of records: a CSV file or the rows of a query.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual bool next(CsvRecord& rec) = 0;
  virtual uint64_t bytes_read() const = 0;
};

class CsvSource : public RecordSource {
 public:
  CsvSource(const std::string& path, const config::CsvOptions& opts) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw BatchError("cannot open " + path);
    if (stat(path.c_str(), &st_) != 0) throw BatchError("cannot stat " + path);
    reader_ = std::make_unique<CsvReader>(in_, opts);
  }
  bool next(CsvRecord& rec) override {
    bool more = false;
    try {
      more = reader_->next(rec);
    } catch (const CsvError& e) {
      throw BatchError(std::string("line ") + std::to_string(e.line) + ": " + e.what());
    }
    // The hash was checked before reading; a file rewritten meanwhile is not the file that
    // was announced. Checked every few thousand records and at the end.
    if (!more || ++records_ % 4096 == 0) check_unchanged();
    return more;
  }
  void check_unchanged() const {
    struct stat now{};
    if (stat(path_.c_str(), &now) != 0 || now.st_size != st_.st_size || now.st_mtim.tv_sec != st_.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != st_.st_mtim.tv_nsec || now.st_ino != st_.st_ino)
      throw BatchError("file " + path_ + " changed while it was being read (size, time or inode); rows committed "
                       "so far stay in this batch, which can be rolled back");
  }
  uint64_t bytes_read() const override { return reader_->bytes_read(); }

 private:
  std::string path_;
  std::ifstream in_;
  struct stat st_{};
  int64_t records_ = 0;
  std::unique_ptr<CsvReader> reader_;
};

/// Reads a query through a server-side cursor in a REPEATABLE READ snapshot on its own
/// connection, so the writes of the load (writebacks) never change what is being read.
class QueryRecordSource : public RecordSource {
 public:
  QueryRecordSource(const QuerySource& q) : q_(q) {
    try {
      conn_ = std::make_unique<pqxx::connection>(q.url);
    } catch (const std::exception& e) {
      throw BatchError(std::string("cannot connect to the source database: ") + first_line(e.what()));
    }
    tx_ = std::make_unique<pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>>(*conn_);
    tx_->exec("SET LOCAL TIME ZONE 'UTC'");  // watermarks compare as text in one zone
    std::string sql = q.sql;
    bool has_param = false;
    for (size_t p = 0; (p = sql.find(":watermark", p)) != std::string::npos;) {
      sql.replace(p, 10, "$1");
      has_param = true;
    }
    try {
      if (has_param)
        tx_->exec_params("DECLARE ingestd_src NO SCROLL CURSOR FOR " + sql, q.watermark.value_or("-infinity"));
      else
        tx_->exec("DECLARE ingestd_src NO SCROLL CURSOR FOR " + sql);
      fetch();
    } catch (const pqxx::sql_error& e) {
      if (classify_db_error(e).retry()) throw;
      throw BatchError("source query failed: " + first_line(e.what()) + "; statement: " + q.sql);
    }
    header_.reserve(size_t(rows_.columns()));
    for (pqxx::row::size_type c = 0; c < rows_.columns(); ++c) {
      header_.push_back(rows_.column_name(c));
      if (header_.back() == q.watermark_column) wm_col_ = int(c);
    }
    if (!q.watermark_column.empty() && wm_col_ < 0)
      throw BatchError("source query has no column " + q.watermark_column + " (the job's watermark)");
  }
  const std::vector<std::string>& header() const { return header_; }
  bool next(CsvRecord& rec) override {
    if (pos_ >= rows_.size()) {
      if (rows_.size() < size_t(q_.fetch_rows)) return false;
      fetch();
      if (rows_.empty()) return false;
    }
    const auto row = rows_[pqxx::result::size_type(pos_++)];
    rec.fields.resize(header_.size());
    rec.raw.clear();
    for (size_t c = 0; c < header_.size(); ++c) {
      rec.fields[c] = row[int(c)].is_null() ? "" : row[int(c)].c_str();
      if (c) rec.raw += ',';
      rec.raw += csv_field(rec.fields[c]);
    }
    rec.invalid_utf8 = false;
    if (wm_col_ >= 0 && !row[wm_col_].is_null()) {
      std::string v = row[wm_col_].c_str();
      if (!max_ || later(v, *max_)) max_ = v;
    }
    bytes_ += rec.raw.size() + 1;
    return true;
  }
  uint64_t bytes_read() const override { return bytes_; }
  const std::optional<std::string>& max_watermark() const { return max_; }
  std::string header_raw() const {
    std::string h;
    for (size_t i = 0; i < header_.size(); ++i) h += (i ? "," : "") + csv_field(header_[i]);
    return h;
  }

 private:
  static std::string csv_field(const std::string& v) {
    if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
    std::string o = "\"";
    for (char c : v) {
      if (c == '"') o += '"';
      o += c;
    }
    return o + "\"";
  }
  // Timestamps and dates in UTC text compare as text; integers by length first.
  static bool later(const std::string& a, const std::string& b) {
    auto digits = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; };
    if (digits(a) && digits(b) && a.size() != b.size()) return a.size() > b.size();
    return a > b;
  }
  void fetch() {
    rows_ = tx_->exec("FETCH " + std::to_string(q_.fetch_rows) + " FROM ingestd_src");
    pos_ = 0;
  }

  const QuerySource& q_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>> tx_;
  pqxx::result rows_;
  size_t pos_ = 0;
  std::vector<std::string> header_;
  int wm_col_ = -1;
  std::optional<std::string> max_;
  uint64_t bytes_ = 0;
};

struct RowError {
  int64_t row;
  std::string field, code, message, raw;
};

/// The rejects of one chunk, gathered where the chunk is read or merged.
struct RowErrors {
  std::vector<RowError> list;
  int64_t rows = 0;                // rows rejected (a row may have several errors)
  std::vector<std::string> first;  // the first few, for the result message
};

struct Chunk {
  std::vector<Row> rows;
  RowErrors errors;
  uint64_t bytes = 0;  // of the source, once the chunk was read
  bool last = false;
};

/// Reads and normalizes the next chunk on its own thread while the database merges the
/// previous one: at most two chunks exist at once (the one merging and the one being read).
class ChunkReader {
 public:
  using Fill = std::function<void(Chunk&, const std::atomic<bool>& cancel)>;
  explicit ChunkReader(Fill fill) : fill_(std::move(fill)), thread_([this] { loop(); }) {}
  ~ChunkReader() {
    {
      std::lock_guard lk(m_);
      cancel_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  /// The next chunk in file order; rethrows what the reader hit (a CSV error, a changed file).
  Chunk take() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return slot_.has_value() || error_; });
    if (error_) std::rethrow_exception(error_);
    Chunk c = std::move(*slot_);
    slot_.reset();
    cv_.notify_all();
    return c;
  }

 private:
  void loop() {
    for (;;) {
      Chunk c;
      std::exception_ptr err;
      try {
        fill_(c, cancel_);
      } catch (...) {
        err = std::current_exception();
      }
      std::unique_lock lk(m_);
      cv_.wait(lk, [&] { return !slot_.has_value() || cancel_; });
      if (cancel_) return;
      if (err) error_ = err;
      else slot_ = std::move(c);
      cv_.notify_all();
      if (err || slot_->last) return;
    }
  }

  Fill fill_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<bool> cancel_{false};
  std::optional<Chunk> slot_;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the rest is built
};

/// How one entity lands in its table: the config plus what the catalog says.
struct EntityPlan {
  const Entity* cfg = nullptr;
  size_t index = 0;
  TableInfo table;
  std::vector<int> source_index;   // [field] CSV column index, -1 = absent
  std::vector<int> ref_entity;     // [field] referenced entity index, -1 = none
  std::vector<TableInfo> lookup_tables;  // [field] the lookup's table (exists == false: no lookup)
  std::vector<std::vector<int>> tiers;  // field indexes per tier
  std::vector<bool> in_tier;            // [field] part of some identity tier: its key is kept
  bool has_deferred = false;            // some lookup waits for a later phase
  bool referenced_later = false;
};

std::string csv_quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

class RejectWriter {
 public:
  RejectWriter(std::string path, char delim) : path_(std::move(path)), delim_(delim) {}
  void open(const std::string& header_raw, bool truncate) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    out_.open(path_, truncate ? std::ios::trunc : std::ios::app);
    if (!out_) throw BatchError("cannot write reject file " + path_);
    if (truncate) out_ << header_raw << delim_ << "_ingestd_row" << delim_ << "_ingestd_error\n";
  }
  void write(int64_t row, const std::string& raw, const std::string& reason) {
    out_ << raw << delim_ << row << delim_ << csv_quote(reason) << '\n';
  }
  void flush() { out_.flush(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  char delim_;
  std::ofstream out_;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}


EntityCounts counts_from_json(const nlohmann::json& j) {
  EntityCounts c;
  c.inserted = j.value("inserted", int64_t{0});
  c.updated = j.value("updated", int64_t{0});
  c.unchanged = j.value("unchanged", int64_t{0});
  c.rejected = j.value("rejected", int64_t{0});
  c.review = j.value("review", int64_t{0});
  if (j.contains("matched_by_tier"))
    for (auto& [k, v] : j["matched_by_tier"].items()) c.tier_matches[std::stoi(k)] = v.get<int64_t>();
  return c;
}

/// The load of one file: owns the reader, the plans and the running totals.
class CsvLoad {
 public:
  CsvLoad(pqxx::connection& conn, const LoadRequest& req, Services& svc)
      : conn_(conn), req_(req), svc_(svc), ds_(*req.dataset), rejects_(req.reject_path, req.csv.delimiter) {
    log_ = spdlog::get("engine");
    if (!log_) log_ = spdlog::default_logger();
  }

  LoadResult run(RecordSource& source, const std::vector<std::string>& header, const std::string& header_raw,
                 const FinalStep& final_step, const BeforeFinal& before_final);

 private:
  void plan(const std::vector<std::string>& header);
  void read_chunk(RecordSource& source, Chunk& c, int64_t& number, const std::atomic<bool>& cancel);
  void build_row(CsvRecord& rec, int64_t number, Chunk& chunk);
  void commit_chunk(pqxx::transaction_base& tx, Chunk& chunk);
  void process_rows(pqxx::transaction_base& tx, std::vector<Row*> rows, std::map<std::string, EntityCounts>& out,
                    RowErrors& errors);
  void run_entities(pqxx::transaction_base& tx, const std::vector<Row*>& rows,
                    std::map<std::string, EntityCounts>& out);
  void resolve_lookups(pqxx::transaction_base& tx, Chunk& chunk);
  void restore_progress(pqxx::transaction_base& tx);
  void plan_writeback(const std::vector<std::string>& header);
  void write_back(pqxx::transaction_base& tx, const std::vector<Row*>& rows);
  std::vector<WritebackPlan> writeback_;
  std::vector<int> writeback_source_;  // header index of each source value a writeback needs
  int64_t linked_ = 0, already_linked_ = 0;
  void regenerate_rejects(pqxx::transaction_base& tx, const std::string& header_raw);

  pqxx::connection& conn_;
  const LoadRequest& req_;
  Services& svc_;
  const config::Dataset& ds_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<EntityPlan> plans_;
  RejectWriter rejects_;
  LoadResult result_;
  int64_t last_row_ = 0;
  uint64_t bytes_ = 0;
  size_t header_width_ = 0;
};

void CsvLoad::plan(const std::vector<std::string>& header) {
  std::unordered_map<std::string, int> exact, folded;
  for (size_t i = 0; i < header.size(); ++i) {
    exact.emplace(trim(header[i]), int(i));
    folded.emplace(lower(trim(header[i])), int(i));
  }
  pqxx::read_transaction tx(conn_);
  std::vector<std::string> problems;
  for (size_t e = 0; e < ds_.entities.size(); ++e) {
    const Entity& ent = ds_.entities[e];
    EntityPlan p;
    p.cfg = &ent;
    p.index = e;
    p.table = describe_table(tx, ent.table);
    if (p.table.exists) describe_id(tx, p.table, ent.id_column);
    if (!p.table.exists) {
      problems.push_back("dataset " + ds_.name + ", entity " + ent.name + ": table " + ent.table + " does not exist");
      plans_.push_back(std::move(p));
      continue;
    }
    for (const Field& f : ent.fields) {
      p.lookup_tables.emplace_back();
      if (f.lookup) {
        TableInfo& lt = p.lookup_tables.back();
        lt = describe_table(tx, f.lookup->table);
        if (!lt.exists)
          problems.push_back("dataset " + ds_.name + ", field " + ent.name + "." + f.name + ": lookup table " +
                             f.lookup->table + " does not exist");
        else
          for (const auto& c : {f.lookup->key, f.lookup->returns})
            if (!lt.column_types.count(c))
              problems.push_back("dataset " + ds_.name + ", field " + ent.name + "." + f.name + ": lookup column " +
                                 f.lookup->table + "." + c + " does not exist");
      }
      int idx = -1, ref = -1;
      if (f.ref) {
        for (size_t k = 0; k < e; ++k)
          if (ds_.entities[k].name == *f.ref) ref = int(k);
      } else if (!f.from.empty() && f.from.front().size() > 1 && f.from.front()[0] == '$') {
        idx = -2;  // the value of an event variable ($program, $source_system, ...), same for every row
      } else {
        for (const auto& name : f.from) {
          if (auto it = exact.find(name); it != exact.end()) { idx = it->second; break; }
          if (auto it = folded.find(lower(name)); it != folded.end()) { idx = it->second; break; }
        }
        if (idx < 0 && f.required) {
          std::string looked;
          for (auto& n : f.from) looked += (looked.empty() ? "'" : ", '") + n + "'";
          throw BatchError("missing required column " + looked + " for field " + ent.name + "." + f.name +
                           " of dataset " + ds_.name);
        }
        if (idx < 0 && !f.from.empty())
          log_->warn("dataset {}: column '{}' for field {}.{} is not in the file; the field stays empty", ds_.name,
                     f.from.front(), ent.name, f.name);
      }
      if (!p.table.column_types.count(f.column))
        problems.push_back("dataset " + ds_.name + ", field " + ent.name + "." + f.name + ": column " + ent.table +
                           "." + f.column + " does not exist");
      p.source_index.push_back(idx);
      p.ref_entity.push_back(ref);
    }
    for (auto& [col, v] : ent.on_insert)
      if (!p.table.column_types.count(col))
        problems.push_back("dataset " + ds_.name + ", entity " + ent.name + ".on_insert: column " + ent.table + "." +
                           col + " does not exist");
    for (auto& [col, v] : ent.on_update)
      if (!p.table.column_types.count(col))
        problems.push_back("dataset " + ds_.name + ", entity " + ent.name + ".on_update: column " + ent.table + "." +
                           col + " does not exist");
    if (!p.table.column_types.count(ent.id_column))
      problems.push_back("dataset " + ds_.name + ", entity " + ent.name + ": id column " + ent.table + "." +
                         ent.id_column + " does not exist");
    else if (p.table.id_default.empty())
      problems.push_back("dataset " + ds_.name + ", entity " + ent.name + ": id column " + ent.table + "." +
                         ent.id_column + " has no default or sequence to fill it");
    for (const auto& tier : ent.identity) {
      std::vector<int> t;
      for (const auto& fname : tier)
        for (size_t k = 0; k < ent.fields.size(); ++k)
          if (ent.fields[k].name == fname) t.push_back(int(k));
      p.tiers.push_back(t);
    }
    p.in_tier.assign(ent.fields.size(), false);
    for (const auto& t : p.tiers)
      for (int k : t) p.in_tier[size_t(k)] = true;
    for (const Field& f : ent.fields)
      if (f.lookup && f.on_missing == config::OnMissing::Defer) p.has_deferred = true;
    for (size_t k = 0; k < e; ++k)
      for (const Field& f : ent.fields)
        if (f.ref && *f.ref == ds_.entities[k].name) plans_[k].referenced_later = true;
    plans_.push_back(std::move(p));
  }
  if (!problems.empty()) {
    std::string msg;
    for (auto& s : problems) msg += (msg.empty() ? "" : "; ") + s;
    throw BatchError(msg);
  }
  result_.entity_order.clear();
  for (auto& e : ds_.entities) {
    result_.entity_order.push_back(e.name);
    result_.counts.emplace(e.name, EntityCounts{});
  }
}

/// Invalid UTF-8 replaced by U+FFFD: row_errors is text, and one bad byte must not sink the file.
std::string scrub_utf8(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size() && !(n == 1 && c == 0);
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n == 2 && c < 0xC2) ok = false;
    if (ok) {
      o.append(s, i, n);
      i += n;
    } else {
      o += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return o;
}

void reject(RowErrors& errors, Row& row, const std::string& field, const std::string& code,
            const std::string& message) {
  if (!row.rejected) ++errors.rows;
  row.rejected = true;
  errors.list.push_back({row.number, scrub_utf8(field), code, scrub_utf8(message), scrub_utf8(row.raw)});
  if (errors.first.size() < 10)
    errors.first.push_back("row " + std::to_string(row.number) + (field.empty() ? "" : ", " + field) + ": " +
                                   message);
}

void CsvLoad::read_chunk(RecordSource& source, Chunk& c, int64_t& number, const std::atomic<bool>& cancel) {
  CsvRecord rec;
  c.rows.reserve(size_t(std::min<int64_t>(req_.chunk_rows, 1 << 20)));
  while (!cancel && source.next(rec)) {
    ++number;
    if (number <= req_.resume_after_row) continue;
    build_row(rec, number, c);
    if (int64_t(c.rows.size()) >= req_.chunk_rows) {
      c.bytes = source.bytes_read();
      return;
    }
  }
  c.bytes = source.bytes_read();
  c.last = true;
}

void CsvLoad::build_row(CsvRecord& rec, int64_t number, Chunk& chunk) {
  auto reject = [&](Row& r, const std::string& field, const std::string& code, const std::string& message) {
    engine::reject(chunk.errors, r, field, code, message);
  };
  Row& row = chunk.rows.emplace_back();
  row.number = number;
  row.raw = std::move(rec.raw);
  if (rec.invalid_utf8) {
    reject(row, "", "invalid_encoding", "row is not valid UTF-8 (set csv.encoding or options.encoding)");
    return;
  }
  if (rec.fields.size() != header_width_) {
    reject(row, "", "ragged_row",
           "row has " + std::to_string(rec.fields.size()) + " fields, the header has " + std::to_string(header_width_));
    return;
  }
  row.values.resize(plans_.size());
  row.keys.resize(plans_.size());
  row.record_ids.resize(plans_.size());
  row.in_review.assign(plans_.size(), false);
  row.deferred.resize(plans_.size());
  row.source.reserve(writeback_source_.size());
  for (int idx : writeback_source_) row.source.push_back(rec.fields[size_t(idx)]);
  for (size_t e = 0; e < plans_.size(); ++e) {
    const EntityPlan& p = plans_[e];
    const auto& fields = p.cfg->fields;
    row.values[e].resize(fields.size());
    row.keys[e].resize(fields.size());
    if (p.has_deferred) row.deferred[e].resize(fields.size());
    for (size_t k = 0; k < fields.size(); ++k) {
      const Field& f = fields[k];
      if (p.ref_entity[k] >= 0) continue;  // filled after the referenced entity resolves
      int idx = p.source_index[k];
      std::string var_value;
      if (idx == -2) {
        auto it = req_.vars.find(f.from.front().substr(1));
        var_value = it == req_.vars.end() ? "" : it->second;
      }
      if (idx == -1) {
        if (f.required) reject(row, f.name, "required", "required field " + p.cfg->name + "." + f.name + " is missing");
        continue;
      }
      const std::string& raw = idx == -2 ? var_value : rec.fields[size_t(idx)];
      Normalized n = normalize(f.normalize, raw);
      std::string col = f.from.empty() ? f.name : f.from.front();
      if (!n.error.empty()) {
        reject(row, col, "invalid_value", n.error + ": \"" + raw + "\"");
        continue;
      }
      Parsed parsed = parse_typed(f.type, f.formats, n.value);
      if (!parsed.error.empty()) {
        reject(row, col, "invalid_value", parsed.error);
        continue;
      }
      if (f.required && !parsed.value) {
        reject(row, col, "required", "required field " + p.cfg->name + "." + f.name + " (column " + col + ") is empty");
        continue;
      }
      row.values[e][k] = std::move(parsed.value);
      // typed values key on their parsed form: 19/10/1996 and 1996-10-19 are one birth date
      if (row.values[e][k] && p.in_tier[k])
        row.keys[e][k] = f.type == config::FieldType::Text && n.key ? n.key : row.values[e][k];
    }
  }
  if (row.rejected) {
    row.values.clear();
    row.keys.clear();
  }
}

void CsvLoad::run_entities(pqxx::transaction_base& tx, const std::vector<Row*>& rows,
                           std::map<std::string, EntityCounts>& out) {
  for (EntityPlan& p : plans_) {
    const size_t e = p.index;
    const auto& fields = p.cfg->fields;
    std::vector<Row*> part;
    std::vector<Row*> blocked;  // its referenced record is in review: it waits with it
    for (Row* r : rows) {
      bool any = false, ref_review = false;
      for (size_t k = 0; k < fields.size(); ++k) {
        if (p.ref_entity[k] >= 0) {
          size_t re = size_t(p.ref_entity[k]);
          if (r->in_review[re]) ref_review = true;
          r->values[e][k] = r->record_ids[re];
          r->keys[e][k] = r->record_ids[re];
        } else if (r->values[e][k]) {
          any = true;
        }
      }
      if (!any) continue;
      if (ref_review) {
        blocked.push_back(r);
        continue;
      }
      part.push_back(r);
    }
    EntityCounts& c = out[p.cfg->name];
    c.review += int64_t(blocked.size());
    for (Row* r : blocked) r->in_review[e] = true;
    if (part.empty()) continue;

    // Rows of this chunk that are the same record become one group before the database
    // sees them (rule 6 inside a chunk); the database then matches groups, not rows.
    std::vector<std::vector<std::optional<std::string>>> tier_keys(part.size());
    for (size_t i = 0; i < part.size(); ++i) tier_keys[i] = composite_keys(part[i]->keys[e], p.tiers);
    Grouping g = group_rows(tier_keys, p.tiers.size());

    EntitySql sql(tx, p.table, *p.cfg, req_.bookkeeping_schema, req_.batch_id, req_.vars);
    // Matching and inserting hold a per-table lock until commit, so instances racing on the
    // same new person still create one record (rule 6).
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "ingestd:table:" + p.table.canonical);
    sql.create_staging();
    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      auto cols = sql.staging_columns();
      pqxx::tablewriter w(tx, sql.staging_table(), cols.begin(), cols.end());
      std::string line;
      // the first row of each group: a new record's lineage says "inserted" there only
      std::vector<bool> seen_group;
      for (size_t i = 0; i < part.size(); ++i) {
        const auto grp = size_t(g.group[i]);
        if (grp >= seen_group.size()) seen_group.resize(grp + 1, false);
        const bool first = !seen_group[grp];
        seen_group[grp] = true;
        line.clear();
        line += std::to_string(part[i]->number);
        line += '\t';
        line += std::to_string(g.group[i]);
        line += '\t';
        if (g.join_tier[i] > 0) line += std::to_string(g.join_tier[i]); else line += "\\N";
        line += first ? "\tt" : "\tf";
        for (size_t k = 0; k < fields.size(); ++k) {
          line += '\t';
          append_copy_value(line, part[i]->values[e][k]);
        }
        for (size_t k : sql.deferred_fields()) {
          line += '\t';
          append_copy_value(line, part[i]->deferred[e][k]);
        }
        w.write_raw_line(line);
      }
      w.complete();
      // The keys each group holds, once per (group, tier, key): the probes' input. Made here,
      // where the keys already are, rather than by the server from a key column per tier.
      // Duplicates are looked for among each group's own rows (usually one or two), not in a
      // set of every key of the chunk.
      const std::vector<std::string> gk_cols{"grp", "tier", "key"};
      pqxx::tablewriter gk(tx, sql.group_keys_table(), gk_cols.begin(), gk_cols.end());
      std::vector<std::vector<size_t>> members(seen_group.size());
      for (size_t i = 0; i < part.size(); ++i) members[size_t(g.group[i])].push_back(i);
      std::set<std::string_view> in_group;
      for (size_t grp = 0; grp < members.size(); ++grp)
        for (size_t t = 0; t < p.tiers.size(); ++t) {
          in_group.clear();
          for (size_t i : members[grp]) {
            const auto& key = tier_keys[i][t];
            if (!key || (members[grp].size() > 1 && !in_group.insert(*key).second)) continue;
            line.clear();
            line += std::to_string(grp);
            line += '\t';
            line += std::to_string(t + 1);
            line += '\t';
            append_copy_value(line, key);
            gk.write_raw_line(line);
          }
        }
      gk.complete();
#pragma GCC diagnostic pop
    }
    EntityCounts ec = sql.resolve_and_merge(part.size());
    c += ec;
    if (p.referenced_later) {
      std::unordered_map<int64_t, Row*> by_number;
      for (Row* r : part) by_number[r->number] = r;
      for (const auto& [num, rid, review] : sql.row_records()) {
        Row* r = by_number[num];
        if (review) r->in_review[e] = true;
        else r->record_ids[e] = rid;
      }
    }
    sql.clear_staging(part.size());
  }
}

void CsvLoad::process_rows(pqxx::transaction_base& tx, std::vector<Row*> rows,
                           std::map<std::string, EntityCounts>& out, RowErrors& errors) {
  if (rows.empty()) return;
  std::map<std::string, EntityCounts> local;
  bool refused = false;
  try {
    pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_chunk");
    run_entities(sub, rows, local);
    sub.commit();
  } catch (const pqxx::sql_error& e) {
    if (classify_db_error(e).kind != DbFailure::Row) throw;
    refused = true;
  }
  if (!refused) {
    for (auto& [k, v] : local) out[k] += v;
    return;
  }
  // A value the database refuses (a constraint, a too-long string) must sink only its own
  // row: split until the culprit is alone, then reject it with the database's message.
  if (rows.size() == 1) {
    Row& r = *rows[0];
    std::string msg;
    try {
      pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_row");
      std::map<std::string, EntityCounts> tmp;
      run_entities(sub, rows, tmp);
      sub.commit();
      for (auto& [k, v] : tmp) out[k] += v;
      return;
    } catch (const pqxx::sql_error& ex) {
      const DbError err = classify_db_error(ex);
      if (err.kind != DbFailure::Row) throw;
      msg = err.message;
    }
    for (auto& s : r.record_ids) s.reset();
    reject(errors, r, "", "database", msg);
    return;
  }
  for (Row* r : rows) {
    for (auto& s : r->record_ids) s.reset();
    std::fill(r->in_review.begin(), r->in_review.end(), false);
  }
  size_t half = rows.size() / 2;
  process_rows(tx, std::vector<Row*>(rows.begin(), rows.begin() + long(half)), out, errors);
  process_rows(tx, std::vector<Row*>(rows.begin() + long(half), rows.end()), out, errors);
}

namespace {
std::string pg_text_array(const std::set<std::string>& values) {
  std::string a = "{";
  for (const auto& v : values) {
    if (a.size() > 1) a += ',';
    a += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') a += '\\';
      a += c;
    }
    a += '"';
  }
  return a + "}";
}
}  // namespace

void CsvLoad::resolve_lookups(pqxx::transaction_base& tx, Chunk& chunk) {
  // One query per lookup field and chunk: the distinct keys go as one array parameter.
  for (EntityPlan& p : plans_) {
    const auto& fields = p.cfg->fields;
    for (size_t k = 0; k < fields.size(); ++k) {
      const Field& f = fields[k];
      if (!f.lookup) continue;
      std::set<std::string> wanted;
      for (Row& r : chunk.rows)
        if (!r.rejected && r.values[p.index][k]) wanted.insert(*r.values[p.index][k]);
      if (wanted.empty()) continue;
      const TableInfo& lt = p.lookup_tables[k];
      auto res = tx.exec_params("SELECT l." + tx.quote_name(f.lookup->key) + "::text, l." +
                                    tx.quote_name(f.lookup->returns) + "::text FROM " + lt.quoted + " l WHERE l." +
                                    tx.quote_name(f.lookup->key) + "::text = ANY($1::text[])",
                                pg_text_array(wanted));
      std::unordered_map<std::string, std::string> found;
      for (const auto& row : res)
        if (!row[1].is_null()) found.emplace(row[0].as<std::string>(), row[1].as<std::string>());
      const std::string col = f.from.empty() ? f.name : f.from.front();
      for (Row& r : chunk.rows) {
        if (r.rejected || !r.values[p.index][k]) continue;
        auto& v = r.values[p.index][k];
        if (auto it = found.find(*v); it != found.end()) {
          v = it->second;
          r.keys[p.index][k] = it->second;
          continue;
        }
        const std::string missing = "no " + f.lookup->table + " row with " + f.lookup->key + " = \"" + *v + "\"";
        if (f.on_missing == config::OnMissing::Reject) {
          reject(chunk.errors, r, col, "lookup_missing", missing);
        } else {
          if (f.on_missing == config::OnMissing::Defer) r.deferred[p.index][k] = v;
          v.reset();
          r.keys[p.index][k].reset();
        }
      }
    }
  }
}

void CsvLoad::commit_chunk(pqxx::transaction_base& tx, Chunk& chunk) {
  std::map<std::string, EntityCounts> delta;
  resolve_lookups(tx, chunk);
  std::vector<Row*> good;
  for (Row& r : chunk.rows)
    if (!r.rejected) good.push_back(&r);
  process_rows(tx, good, delta, chunk.errors);
  for (auto& [k, v] : delta) result_.counts[k] += v;
  if (!writeback_.empty()) {
    std::vector<Row*> ok;
    for (Row& r : chunk.rows)
      if (!r.rejected) ok.push_back(&r);
    write_back(tx, ok);
  }
  // Rejected rows count against every entity of the dataset: none of them got the row.
  const RowErrors& errs = chunk.errors;
  result_.rows_rejected += errs.rows;
  for (const auto& m : errs.first)
    if (result_.first_errors.size() < 10) result_.first_errors.push_back(m);
  for (auto& name : result_.entity_order) result_.counts[name].rejected += errs.rows;

  if (!errs.list.empty()) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    std::vector<std::string> cols{"batch_id", "row_number", "field", "code", "message", "raw"};
    pqxx::tablewriter w(tx, tx.quote_name(req_.bookkeeping_schema) + ".row_errors", cols.begin(), cols.end());
    std::string line;
    for (auto& e : errs.list) {
      line.clear();
      append_copy_value(line, req_.batch_id);
      line += '\t' + std::to_string(e.row) + '\t';
      append_copy_value(line, e.field.empty() ? std::nullopt : std::optional<std::string>(e.field));
      line += '\t';
      append_copy_value(line, e.code);
      line += '\t';
      append_copy_value(line, e.message);
      line += '\t';
      append_copy_value(line, e.raw);
      w.write_raw_line(line);
    }
    w.complete();
#pragma GCC diagnostic pop
  }
  if (!chunk.rows.empty()) last_row_ = chunk.rows.back().number;
  result_.rows_read = last_row_;
  nlohmann::json counts = nlohmann::json::object();
  EntityCounts total;
  for (auto& [k, v] : result_.counts) counts[k] = v.to_json();
  if (!result_.entity_order.empty()) total = result_.counts[result_.entity_order.front()];
  nlohmann::json stats = {{"counts", counts}, {"rows_rejected", result_.rows_rejected},
                          {"first_errors", result_.first_errors}};
  BatchCheckpoint cp;
  cp.last_row = last_row_;
  cp.bytes = int64_t(bytes_);
  cp.inserted = total.inserted;
  cp.updated = total.updated;
  cp.unchanged = total.unchanged;
  cp.rejected = result_.rows_rejected;
  cp.review = total.review;
  cp.stats = stats;
  Bookkeeping(req_.bookkeeping_schema).checkpoint(tx, req_.batch_id, cp);
}

void CsvLoad::restore_progress(pqxx::transaction_base& tx) {
  const auto stats = Bookkeeping(req_.bookkeeping_schema).stats(tx, req_.batch_id);
  if (stats.contains("counts"))
    for (auto& [k, v] : stats["counts"].items()) result_.counts[k] = counts_from_json(v);
  result_.rows_rejected = stats.value("rows_rejected", int64_t{0});
  if (stats.contains("first_errors"))
    result_.first_errors = stats["first_errors"].get<std::vector<std::string>>();
}

void CsvLoad::regenerate_rejects(pqxx::transaction_base& tx, const std::string& header_raw) {
  // The reject file is rebuilt from row_errors on resume: lines written by a crashed owner
  // after its last commit would otherwise appear twice.
  rejects_.open(header_raw, true);
  auto r = tx.exec_params("SELECT row_number, string_agg(coalesce(field || ': ', '') || message, '; '), min(raw) FROM " +
                              tx.quote_name(req_.bookkeeping_schema) +
                              ".row_errors WHERE batch_id=$1 GROUP BY row_number ORDER BY row_number",
                          req_.batch_id);
  for (const auto& row : r) rejects_.write(row[0].as<int64_t>(), row[2].c_str(), row[1].c_str());
  rejects_.flush();
}

LoadResult CsvLoad::run(RecordSource& source, const std::vector<std::string>& header, const std::string& header_raw,
                        const FinalStep& final_step, const BeforeFinal& before_final) {
  header_width_ = header.size();
  plan(header);
  plan_writeback(header);

  const bool single_tx = req_.dry_run || req_.atomic;
  if (req_.resume_after_row > 0) {
    pqxx::work tx(conn_);
    restore_progress(tx);
    if (!req_.dry_run) regenerate_rejects(tx, header_raw);
    tx.commit();
    last_row_ = req_.resume_after_row;
    log_->info("batch {}: resuming after row {}", req_.batch_id, req_.resume_after_row);
  }
  if (req_.resume_after_row == 0 || req_.dry_run) rejects_.open(header_raw, true);

  std::unique_ptr<pqxx::work> outer;
  if (single_tx) outer = std::make_unique<pqxx::work>(conn_);

  int64_t number = 0;
  auto flush = [&](Chunk& chunk, bool final) {
    auto t0 = std::chrono::steady_clock::now();
    auto last_steps = [&](pqxx::transaction_base& tx) {
      if (!final) return;
      if (!writeback_.empty()) result_.extra["writeback"] = {{"linked", linked_}, {"already_linked", already_linked_}};
      if (before_final) before_final(tx, result_);
    };
    if (single_tx) {
      commit_chunk(*outer, chunk);
      last_steps(*outer);
      if (final && !req_.dry_run && final_step) final_step(*outer, result_);
    } else {
      pqxx::work tx(conn_);
      commit_chunk(tx, chunk);
      last_steps(tx);
      if (final && final_step) final_step(tx, result_);
      tx.commit();
    }
    svc_.metrics.observe_db("chunk", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (auto& e : chunk.errors.list)
      rejects_.write(e.row, e.raw, e.field.empty() ? e.message : e.field + ": " + e.message);
    rejects_.flush();
    if (svc_.keepalive) svc_.keepalive();
  };
  ChunkReader reader([&](Chunk& c, const std::atomic<bool>& cancel) { read_chunk(source, c, number, cancel); });
  for (;;) {
    Chunk chunk = reader.take();
    bytes_ = chunk.bytes;
    flush(chunk, chunk.last);
    if (chunk.last) break;
    if (svc_.stopping.load() && !single_tx) {
      result_.interrupted = true;
      return result_;
    }
  }
  if (single_tx) {
    if (req_.dry_run) {
      outer->abort();
      outer.reset();
      pqxx::work tx(conn_);
      if (final_step) final_step(tx, result_);
      tx.commit();
    } else {
      outer->commit();
    }
  }
  return result_;
}

void CsvLoad::plan_writeback(const std::vector<std::string>& header) {
  if (!req_.writeback || req_.writeback->empty()) return;
  pqxx::read_transaction tx(conn_);
  for (const auto& wb : *req_.writeback) {
    WritebackPlan p;
    p.cfg = &wb;
    p.table = describe_table(tx, wb.table);
    const TableInfo& t = p.table;
    if (!t.exists) throw BatchError("writeback table " + wb.table + " does not exist");
    for (auto& [c, e] : wb.set)
      if (!t.column_types.count(c)) throw BatchError("writeback column " + wb.table + "." + c + " does not exist");
    for (auto& [c, src] : wb.where)
      if (!t.column_types.count(c)) throw BatchError("writeback column " + wb.table + "." + c + " does not exist");
    if (t.pk.empty()) throw BatchError("writeback table " + wb.table + " needs a single-column primary key");
    for (const auto& [col, entity] : wb.set) {
      size_t e = 0;
      while (e < ds_.entities.size() && ds_.entities[e].name != entity) ++e;
      if (e == ds_.entities.size()) throw BatchError("writeback to " + wb.table + ": no entity " + entity + " in dataset " + ds_.name);
      p.set.emplace_back(col, e);
      plans_[e].referenced_later = true;  // its record ids are needed after resolution
    }
    for (const auto& [col, src] : wb.where) {
      auto it = std::find(header.begin(), header.end(), src);
      if (it == header.end())
        throw BatchError("writeback to " + wb.table + ": the source has no column " + src + " (where " + col + ")");
      writeback_source_.push_back(int(it - header.begin()));
      p.where.emplace_back(col, writeback_source_.size() - 1);
    }
    writeback_.push_back(std::move(p));
  }
}

void CsvLoad::write_back(pqxx::transaction_base& tx, const std::vector<Row*>& rows) {
  const std::string bk = tx.quote_name(req_.bookkeeping_schema);
  for (size_t w = 0; w < writeback_.size(); ++w) {
    const WritebackPlan& p = writeback_[w];
    const TableInfo& t = p.table;
    std::string create = "CREATE TEMP TABLE ingestd_wb (";
    std::vector<std::string> cols;
    for (size_t i = 0; i < p.set.size(); ++i) cols.push_back("s" + std::to_string(i));
    for (size_t i = 0; i < p.where.size(); ++i) cols.push_back("w" + std::to_string(i));
    for (size_t i = 0; i < cols.size(); ++i) create += (i ? ", " : "") + cols[i] + " text";
    tx.exec("DROP TABLE IF EXISTS pg_temp.ingestd_wb");
    tx.exec(create + ")");
    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      pqxx::tablewriter wr(tx, "pg_temp.ingestd_wb", cols.begin(), cols.end());
      std::string line;
      for (Row* r : rows) {
        bool complete = true;
        for (auto& [c, e] : p.set)
          if (!r->record_ids[e]) complete = false;
        if (!complete) continue;
        line.clear();
        for (size_t i = 0; i < p.set.size(); ++i) {
          if (i) line += '\t';
          append_copy_value(line, r->record_ids[p.set[i].second]);
        }
        for (auto& [c, idx] : p.where) {
          line += '\t';
          append_copy_value(line, r->source[idx]);
        }
        wr.write_raw_line(line);
      }
      wr.complete();
#pragma GCC diagnostic pop
    }
    std::string join = "", differs = "", set = "", vals = "";
    for (size_t i = 0; i < p.where.size(); ++i)
      join += (i ? " AND " : "") + std::string("t.") + tx.quote_name(p.where[i].first) + " = w.w" + std::to_string(i) +
              "::" + t.column_types.at(p.where[i].first);
    for (size_t i = 0; i < p.set.size(); ++i) {
      const std::string c = tx.quote_name(p.set[i].first), v = "w.s" + std::to_string(i) + "::" + t.column_types.at(p.set[i].first);
      differs += (i ? " OR " : "") + std::string("t.") + c + " IS DISTINCT FROM " + v;
      set += (i ? ", " : "") + c + " = " + v;
      vals += (i ? ", " : "") + std::string("(") + tx.quote(p.set[i].first) + ", t." + c + "::text, w.s" + std::to_string(i) +
              ", t." + c + " IS DISTINCT FROM " + v + ")";
    }
    // what the writeback overwrites goes to changes, so a rollback undoes it
    tx.exec_params("INSERT INTO " + bk + ".changes (batch_id, table_name, record_id, column_name, before, after) "
                   "SELECT $1::uuid, $2, t." + tx.quote_name(t.pk) + "::text, v.col, v.before, v.after FROM " + t.quoted +
                   " t JOIN pg_temp.ingestd_wb w ON " + join + " CROSS JOIN LATERAL (VALUES " + vals +
                   ") v(col, before, after, chg) WHERE v.chg",
                   req_.batch_id, t.canonical);
    auto up = tx.exec("UPDATE " + t.quoted + " t SET " + set + " FROM pg_temp.ingestd_wb w WHERE " + join + " AND (" +
                      differs + ")");
    auto all = tx.exec("SELECT count(*) FROM " + t.quoted + " t JOIN pg_temp.ingestd_wb w ON " + join);
    linked_ += int64_t(up.affected_rows());
    already_linked_ += all[0][0].as<int64_t>() - int64_t(up.affected_rows());
    tx.exec("DROP TABLE pg_temp.ingestd_wb");
  }
}

}  // namespace

LoadResult load_csv(pqxx::connection& conn, const LoadRequest& req, Services& svc, const FinalStep& final_step,
                    const BeforeFinal& before_final) {
  CsvSource source(req.path, req.csv);
  CsvRecord rec;
  if (!source.next(rec)) throw BatchError("file is empty: no header row");
  CsvLoad load(conn, req, svc);
  return load.run(source, rec.fields, rec.raw, final_step, before_final);
}

LoadResult load_query(pqxx::connection& conn, const LoadRequest& req, const QuerySource& q, Services& svc,
                      const FinalStep& final_step, const BeforeFinal& before_final) {
  QueryRecordSource source(q);
  CsvLoad load(conn, req, svc);
  auto with_watermark = [&](pqxx::transaction_base& tx, LoadResult& r) {
    r.max_watermark = source.max_watermark();
    if (before_final) before_final(tx, r);
  };
  return load.run(source, source.header(), source.header_raw(), final_step, with_watermark);
}

std::vector<std::string> check_dataset_schema(pqxx::connection& conn, const config::Dataset& ds) {
  std::vector<std::string> problems;
  pqxx::read_transaction tx(conn);
  for (const auto& ent : ds.entities) {
    TableInfo t = describe_table(tx, ent.table);
    std::string where = "datasets." + ds.name + ".entities." + ent.name;
    if (!t.exists) {
      problems.push_back(where + ".table: table " + ent.table + " does not exist");
      continue;
    }
    if (!t.column_types.count(ent.id_column)) problems.push_back(where + ".id: column " + ent.id_column + " does not exist");
    for (const auto& f : ent.fields)
      if (!t.column_types.count(f.column))
        problems.push_back(where + ".fields." + f.name + ".column: column " + ent.table + "." + f.column +
                           " does not exist");
    for (const auto& [c, v] : ent.on_insert)
      if (!t.column_types.count(c)) problems.push_back(where + ".on_insert." + c + ": column does not exist");
    for (const auto& [c, v] : ent.on_update)
      if (!t.column_types.count(c)) problems.push_back(where + ".on_update." + c + ": column does not exist");
  }
  return problems;
}

}  // namespace ingestd::engine
