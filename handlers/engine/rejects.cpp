#include "handlers/engine/rejects.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "config/loader.hpp"
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

/// Gives `path` to `group` (files.rejects_group); "" leaves it the process's group.
void give_to_group(int fd, const std::string& path, const std::string& group) {
  if (group.empty()) return;
  const auto gid = config::group_id(group);
  if (!gid) throw BatchError("files.rejects_group: no group '" + group + "' on this system");
  if (fchown(fd, uid_t(-1), gid_t(*gid)) != 0)
    throw BatchError("cannot give " + path + " to group " + group + " (files.rejects_group): " + std::strerror(errno) +
                     "; the daemon's user must be a member of it");
}

/// Creates the reject file (or opens it) with mode 0640 whatever the umask, given to `group`,
/// and its dataset directory to the same group: reject files hold the refused rows'
/// personal data, for their readers' group only (issue 16 item 6).
void prepare(const std::string& path, const std::string& group) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::filesystem::create_directories(dir);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0 || dfd < 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    if (dfd >= 0) ::close(dfd);
    throw BatchError("cannot write reject file " + path + ": " + why);
  }
  try {
    if (fchmod(fd, 0640) != 0) throw BatchError("cannot set the mode of " + path + ": " + std::strerror(errno));
    give_to_group(fd, path, group);
    if (!group.empty()) give_to_group(dfd, dir.string(), group);
  } catch (...) {
    ::close(fd);
    ::close(dfd);
    throw;
  }
  ::close(fd);
  ::close(dfd);
}

}  // namespace

void RejectWriter::open(const std::string& header_raw, bool truncate) {
  prepare(path_, group_);
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
  // a page of rows at a time, in row order through (batch_id, row_number): a batch may have
  // rejected millions of rows, and memory stays bounded whatever it holds
  constexpr int kPage = 1000;
  std::string after = std::to_string(std::numeric_limits<int64_t>::min());
  for (;;) {
    auto r = tx.exec_params("SELECT row_number, string_agg(coalesce(field || ': ', '') || message, '; '), min(raw) FROM " +
                                row_errors_table + " WHERE batch_id = $1 AND row_number > $2::bigint AND code <> "
                                "'invalid_value_nulled' GROUP BY row_number ORDER BY row_number LIMIT " +
                                std::to_string(kPage),
                            batch_id, after);
    for (const auto& row : r) write(row[0].as<int64_t>(), row[2].c_str(), row[1].c_str());
    if (r.size() < size_t(kPage)) break;
    after = r[r.size() - 1][0].c_str();
  }
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
