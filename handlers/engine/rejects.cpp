#include "handlers/engine/rejects.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

namespace {

std::string csv_quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

}  // namespace

void RejectWriter::open(const std::string& header_raw, bool truncate) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  out_.open(path_, truncate ? std::ios::trunc : std::ios::app);
  if (!out_) throw BatchError("cannot write reject file " + path_);
  if (truncate && layout_ == RejectLayout::Delimited)
    out_ << header_raw << delim_ << "_ingestd_row" << delim_ << "_ingestd_error\n";
}

void RejectWriter::write(int64_t row, const std::string& raw, const std::string& reason) {
  if (layout_ == RejectLayout::JsonLines) {
    const nlohmann::ordered_json line = {{"_ingestd_row", row}, {"_ingestd_error", reason}, {"_ingestd_line", raw}};
    out_ << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    return;
  }
  out_ << raw << delim_ << row << delim_ << csv_quote(reason) << '\n';
}

void RejectWriter::write(const RowErrors& errors) {
  for (const auto& e : errors.list)
    if (!e.warning) write(e.row, e.raw, e.field.empty() ? e.message : e.field + ": " + e.message);
  flush();
}

void RejectWriter::rebuild(pqxx::transaction_base& tx, const std::string& row_errors_table, const std::string& batch_id,
                           const std::string& header_raw) {
  open(header_raw, true);
  auto r = tx.exec_params("SELECT row_number, string_agg(coalesce(field || ': ', '') || message, '; '), min(raw) FROM " +
                              row_errors_table + " WHERE batch_id=$1 AND code <> 'invalid_value_nulled' GROUP BY row_number ORDER BY row_number",
                          batch_id);
  for (const auto& row : r) write(row[0].as<int64_t>(), row[2].c_str(), row[1].c_str());
  flush();
}

void store_row_errors(pqxx::transaction_base& tx, const std::string& row_errors_table, const std::string& batch_id,
                      const RowErrors& errors) {
  if (errors.list.empty()) return;
  CopyIn w(tx, row_errors_table, {"batch_id", "row_number", "field", "code", "message", "raw"});
  std::string line;
  for (const auto& e : errors.list) {
    line.clear();
    append_copy_value(line, batch_id);
    line += '\t' + std::to_string(e.row) + '\t';
    append_copy_value(line, e.field.empty() ? std::nullopt : std::optional<std::string>(e.field));
    for (const std::string* v : {&e.code, &e.message}) {
      line += '\t';
      append_copy_value(line, *v);
    }
    line += '\t';
    append_copy_value(line, excerpt(e.raw, kMaxStoredRowBytes));  // a 5 MB row is no 5 MB table row
    w.line(line);
  }
  w.complete();
}

}  // namespace ingestd::engine
