#include "handlers/engine/source/jsonl_capture.hpp"

namespace ingestd::engine::detail {

namespace {

constexpr size_t kMaxMessage = 300;

void append_json_string(std::string& out, const std::string& s) {
  out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool PathCapture::parse(const char* begin, const char* end, std::vector<std::string>& fields) {
  fields_ = &fields;
  fields.resize(columns_);
  for (auto& f : fields) f.clear();
  rank_.assign(columns_, INT_MAX);
  frames_.clear();
  captures_.clear();
  text_.clear();
  pending_ = nullptr;
  error_.clear();
  code_ = "";
  const bool ok = nlohmann::json::sax_parse(begin, end, this, nlohmann::json::input_format_t::json, true);
  if (!ok && error_.empty()) fail("invalid_json", "not valid JSON");
  return ok;
}

bool PathCapture::fail(const char* code, std::string message) {
  code_ = code;
  if (message.size() > kMaxMessage) message = message.substr(0, kMaxMessage) + "...";
  error_ = std::move(message);
  return false;
}

void PathCapture::separate() {
  Frame& f = frames_.back();
  if (!f.first) text_ += ',';
  f.first = false;
}

void PathCapture::assign(size_t column, int rank, std::string value, bool is_null) {
  // null is no value: a later alternative path may still fill the column
  if (is_null || rank >= rank_[column]) return;
  (*fields_)[column] = std::move(value);
  rank_[column] = rank;
}

bool PathCapture::scalar(std::string field_text, const char* kind, bool is_null) {
  if (frames_.empty()) return fail("not_an_object", std::string("the line is a JSON ") + kind + ", not an object");
  if (pending_) {
    for (const Target& t : *pending_) assign(t.column, t.rank, field_text, is_null);
    pending_ = nullptr;
  }
  return true;
}

/// Appends a scalar's JSON text to the containers being captured.
void PathCapture::keep(std::string_view json_text) {
  if (captures_.empty()) return;
  if (frames_.back().array) separate();
  text_ += json_text;
}

bool PathCapture::null() {
  keep("null");
  return scalar("", "null", true);
}

bool PathCapture::boolean(bool v) {
  const char* t = v ? "true" : "false";
  keep(t);
  return scalar(t, "boolean", false);
}

bool PathCapture::number_integer(int64_t v) {
  std::string t = std::to_string(v);
  keep(t);
  return scalar(std::move(t), "number", false);
}

bool PathCapture::number_unsigned(uint64_t v) {
  std::string t = std::to_string(v);
  keep(t);
  return scalar(std::move(t), "number", false);
}

bool PathCapture::number_float(double, const std::string& literal) {
  // the literal as written: 0.1 stays "0.1", 1e3 stays "1e3"; no round trip through a double
  keep(literal);
  return scalar(literal, "number", false);
}

bool PathCapture::string(std::string& v) {
  if (!captures_.empty() && !frames_.empty()) {
    if (frames_.back().array) separate();
    append_json_string(text_, v);
  }
  return scalar(std::move(v), "string", false);
}

bool PathCapture::binary(nlohmann::json::binary_t&) { return fail("invalid_json", "binary values are not JSON"); }

bool PathCapture::open(bool array) {
  if (frames_.empty()) {
    if (array) return fail("not_an_object", "the line is a JSON array, not an object");
    frames_.push_back(Frame{false, true, false, {}});
    return true;
  }
  if (frames_.size() >= kMaxDepth)
    return fail("invalid_json", "nested deeper than " + std::to_string(kMaxDepth) + " levels");
  if (!captures_.empty() && frames_.back().array) separate();
  if (pending_) {
    for (const Target& t : *pending_) captures_.push_back({t.column, t.rank, text_.size(), frames_.size() + 1});
    pending_ = nullptr;
  }
  if (!captures_.empty()) text_ += array ? '[' : '{';
  const bool pathless = array || frames_.back().pathless;
  frames_.push_back(Frame{array, true, pathless, pathless ? std::string() : key_path_});
  return true;
}

bool PathCapture::close(char bracket) {
  const size_t depth = frames_.size();
  if (!captures_.empty()) text_ += bracket;
  frames_.pop_back();
  while (!captures_.empty() && captures_.back().depth == depth) {
    const Capture c = captures_.back();
    captures_.pop_back();
    assign(c.column, c.rank, text_.substr(c.start), false);
  }
  if (captures_.empty()) text_.clear();
  return true;
}

bool PathCapture::start_object(size_t) { return open(false); }
bool PathCapture::start_array(size_t) { return open(true); }
bool PathCapture::end_object() { return close('}'); }
bool PathCapture::end_array() { return close(']'); }

bool PathCapture::key(std::string& k) {
  Frame& f = frames_.back();
  if (!captures_.empty()) {
    separate();
    append_json_string(text_, k);
    text_ += ':';
  }
  pending_ = nullptr;
  if (f.pathless) return true;
  if (f.path.empty()) {
    key_path_ = k;
  } else {
    key_path_ = f.path;
    key_path_ += '.';
    key_path_ += k;
  }
  if (auto it = paths_.find(key_path_); it != paths_.end()) pending_ = &it->second;
  return true;
}

bool PathCapture::parse_error(size_t, const std::string&, const nlohmann::detail::exception& ex) {
  // "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error …": the
  // line number is always 1 here (one line is parsed at a time); the reader names the line.
  std::string m = ex.what();
  for (const char* prefix : {"] parse error at line 1, ", "] parse error: ", "] "})
    if (auto p = m.find(prefix); p != std::string::npos) {
      m = m.substr(p + std::char_traits<char>::length(prefix));
      break;
    }
  return fail("invalid_json", "not valid JSON: " + m);
}

}  // namespace ingestd::engine::detail
