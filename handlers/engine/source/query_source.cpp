// The rows of a SQL query as a record source (migration jobs).
#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/record_source.hpp"

#include <pqxx/pqxx>

namespace ingestd::engine {

namespace {

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string o = "\"";
  for (char c : v) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

// Timestamps and dates in UTC text compare as text; integers by length first.
bool later(const std::string& a, const std::string& b) {
  auto digits = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; };
  if (digits(a) && digits(b) && a.size() != b.size()) return a.size() > b.size();
  return a > b;
}

using ReadOnlySnapshot = pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>;

/// Reads a query through a server-side cursor in a REPEATABLE READ snapshot on its own
/// connection, so the writes of the load (writebacks) never change what is being read.
class CursorSource : public QueryRecordSource {
 public:
  explicit CursorSource(const QuerySource& q) : q_(q) {
    try {
      conn_ = std::make_unique<pqxx::connection>(q.url);
    } catch (const std::exception& e) {
      throw BatchError(std::string("cannot connect to the source database: ") + first_line(e.what()));
    }
    tx_ = std::make_unique<ReadOnlySnapshot>(*conn_);
    tx_->exec("SET LOCAL TIME ZONE 'UTC'");  // watermarks compare as text in one zone
    declare();
    header_.reserve(size_t(rows_.columns()));
    for (pqxx::row::size_type c = 0; c < rows_.columns(); ++c) {
      header_.push_back(rows_.column_name(c));
      if (header_.back() == q.watermark_column) wm_col_ = int(c);
    }
    if (!q.watermark_column.empty() && wm_col_ < 0)
      throw BatchError("source query has no column " + q.watermark_column + " (the job's watermark)");
  }
  const std::vector<std::string>& header() const override { return header_; }
  std::string header_raw() const override {
    std::string h;
    for (size_t i = 0; i < header_.size(); ++i) h += (i ? "," : "") + csv_field(header_[i]);
    return h;
  }
  bool next(Record& rec) override {
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
  const std::optional<std::string>& max_watermark() const override { return max_; }

 private:
  void declare() {
    bool has_param = false;
    const std::string sql = watermark_as_parameter(q_.sql, has_param);
    try {
      if (has_param)
        tx_->exec_params("DECLARE ingestd_src NO SCROLL CURSOR FOR " + sql, q_.watermark.value_or("-infinity"));
      else
        tx_->exec("DECLARE ingestd_src NO SCROLL CURSOR FOR " + sql);
      fetch();
    } catch (const pqxx::sql_error& e) {
      if (classify_db_error(e).retry()) throw;
      throw BatchError("source query failed: " + first_line(e.what()) + "; statement: " + q_.sql);
    }
  }
  void fetch() {
    rows_ = tx_->exec("FETCH " + std::to_string(q_.fetch_rows) + " FROM ingestd_src");
    pos_ = 0;
  }

  const QuerySource& q_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<ReadOnlySnapshot> tx_;
  pqxx::result rows_;
  size_t pos_ = 0;
  std::vector<std::string> header_;
  int wm_col_ = -1;
  std::optional<std::string> max_;
  uint64_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<QueryRecordSource> open_query_source(const QuerySource& q) { return std::make_unique<CursorSource>(q); }

std::string watermark_as_parameter(const std::string& sql, bool& has_param) {
  std::string out = sql;
  has_param = false;
  for (size_t p = 0; (p = out.find(":watermark", p)) != std::string::npos;) {
    out.replace(p, 10, "$1");
    has_param = true;
  }
  return out;
}

}  // namespace ingestd::engine
