// Internal to jsonl_reader.cpp: picks the wanted paths' values out of one JSON object as the
// parser reports it (nlohmann's SAX events), without building a document, so numbers keep the
// text they were written with.
#pragma once

#include <climits>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ingestd::engine::detail {

/// @brief Fills `fields` (one per record column) from the events of one JSON line.
class PathCapture {
 public:
  struct Target {
    size_t column;
    int rank;  // position among the column's paths: a lower rank wins
  };
  using Paths = std::unordered_map<std::string, std::vector<Target>>;
  static constexpr size_t kMaxDepth = 256;

  PathCapture(const Paths& paths, size_t columns) : paths_(paths), columns_(columns) {}

  /// Parses one line into `fields`; false with `error()` set when it is not a JSON object.
  bool parse(const char* begin, const char* end, std::vector<std::string>& fields);
  const std::string& error() const { return error_; }
  /// "invalid_json" or "not_an_object".
  const char* error_code() const { return code_; }

  // nlohmann::json SAX interface.
  bool null();
  bool boolean(bool v);
  bool number_integer(int64_t v);
  bool number_unsigned(uint64_t v);
  bool number_float(double, const std::string& literal);
  bool string(std::string& v);
  bool binary(nlohmann::json::binary_t&);
  bool start_object(size_t);
  bool key(std::string& k);
  bool end_object();
  bool start_array(size_t);
  bool end_array();
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& ex);

 private:
  struct Frame {
    bool array;
    bool first = true;  // no member written yet (for the commas of captured JSON text)
    bool pathless;      // inside an array: paths do not reach here
    std::string path;   // dotted path of this object
  };
  struct Capture {
    size_t column;
    int rank;
    size_t start;  // offset of the container's text in text_
    size_t depth;  // frames_.size() while it is open
  };

  bool scalar(std::string field_text, const char* kind, bool is_null);
  void keep(std::string_view json_text);
  bool open(bool array);
  bool close(char bracket);
  void separate();
  void assign(size_t column, int rank, std::string value, bool is_null);
  bool fail(const char* code, std::string message);

  const Paths& paths_;
  size_t columns_;
  std::vector<std::string>* fields_ = nullptr;
  std::vector<int> rank_;  // [column] rank of the path that filled it, INT_MAX: none
  std::vector<Frame> frames_;
  const std::vector<Target>* pending_ = nullptr;  // the targets the next value fills
  std::string key_path_;                          // dotted path of the last key
  std::vector<Capture> captures_;                 // nested containers being kept as JSON text
  std::string text_;                              // their text, from the outermost one
  std::string error_;
  const char* code_ = "";
};

}  // namespace ingestd::engine::detail
