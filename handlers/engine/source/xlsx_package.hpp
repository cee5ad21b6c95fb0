// The two layers under the xlsx reader: the zip package (libzip) and a streaming XML part in it
// (libxml2's xmlTextReader), each an RAII handle that turns failures into XlsxError.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "handlers/engine/source/xlsx_reader.hpp"

typedef struct zip zip_t;
typedef struct zip_file zip_file_t;
typedef struct _xmlTextReader xmlTextReader;

namespace ingestd::engine::xlsx {

/// @brief An opened workbook package. Refuses, with a message naming the cause, what is not an
/// .xlsx: an OLE file (encrypted workbook or .xls), an .xlsb, a zip without a workbook.
class Package {
 public:
  explicit Package(const std::string& path);
  explicit Package(std::string_view bytes);
  ~Package();
  Package(const Package&) = delete;
  Package& operator=(const Package&) = delete;

  bool has(const std::string& name) const;
  zip_t* zip() const { return zip_; }
  /// The path of the main workbook part (from _rels/.rels; xl/workbook.xml when absent).
  const std::string& workbook_part() const { return workbook_; }

 private:
  void open_checked(const std::string& label);
  void find_workbook();

  zip_t* zip_ = nullptr;
  std::string workbook_;
};

/// @brief One XML part read node by node; never a DOM.
class XmlPart {
 public:
  XmlPart(const Package& pkg, const std::string& name);
  ~XmlPart();
  XmlPart(const XmlPart&) = delete;
  XmlPart& operator=(const XmlPart&) = delete;

  /// Advances to the next node; false at the end. Throws XlsxError on malformed XML or a DTD.
  bool read();
  bool is_start() const;  // an element's start tag (or an empty element)
  bool is_end() const;    // an element's end tag
  bool is_text() const;   // text, CDATA or whitespace inside an element
  bool is_empty_element() const;
  std::string_view local_name() const;
  std::string_view value() const;
  /// The attribute's value by local name (any namespace), when present.
  std::optional<std::string> attr(const char* local) const;
  /// Compressed bytes consumed so far (estimated from the entry's compression ratio).
  uint64_t compressed_read() const;
  const std::string& name() const { return name_; }

 private:
  static int on_read(void* self, char* buf, int len);
  [[noreturn]] void fail(const std::string& why) const;

  std::string name_;
  zip_file_t* file_ = nullptr;
  xmlTextReader* reader_ = nullptr;
  uint64_t size_ = 0, comp_size_ = 0, read_ = 0;
  int type_ = 0;
  std::string error_;  // libxml2's last message, for the XlsxError
};

}  // namespace ingestd::engine::xlsx
