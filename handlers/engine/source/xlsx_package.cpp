#include "handlers/engine/source/xlsx_package.hpp"

#include <libxml/xmlreader.h>
#include <zip.h>

#include <cstring>
#include <fstream>
#include <mutex>

namespace ingestd::engine::xlsx {

namespace {

constexpr unsigned char kOleMagic[] = {0xd0, 0xcf, 0x11, 0xe0};

/// Password-protected workbooks are not zips at all: Excel wraps them, like an .xls, in an OLE
/// compound file.
void refuse_ole(std::string_view head) {
  if (head.size() >= 4 && std::memcmp(head.data(), kOleMagic, 4) == 0)
    throw XlsxError("encrypted workbook or .xls: save as .xlsx without a password");
}

std::string zip_message(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string m = zip_error_strerror(&e);
  zip_error_fini(&e);
  return m;
}

/// libxml2's parser globals are set up once, before any reader thread uses them.
void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

}  // namespace

Package::Package(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw XlsxError("cannot open " + path);
  char head[8] = {};
  in.read(head, sizeof head);
  refuse_ole(std::string_view(head, size_t(in.gcount())));
  int err = 0;
  zip_ = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!zip_) throw XlsxError("not an .xlsx workbook (" + zip_message(err) + "): save it from Excel as .xlsx");
  open_checked(path);
}

Package::Package(std::string_view bytes) {
  refuse_ole(bytes);
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
  if (src) zip_ = zip_open_from_source(src, ZIP_RDONLY, &err);
  if (!zip_) {
    if (src) zip_source_free(src);
    std::string m = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw XlsxError("not an .xlsx workbook (" + m + "): save it from Excel as .xlsx");
  }
  zip_error_fini(&err);
  open_checked("workbook");
}

Package::~Package() {
  if (zip_) zip_discard(zip_);
}

void Package::open_checked(const std::string& label) {
  try {
    if (has("xl/workbook.bin")) throw XlsxError(label + " is an .xlsb (binary) workbook: save it as .xlsx");
    find_workbook();
    if (!has(workbook_)) throw XlsxError(label + " is a zip but not an Excel workbook (no " + workbook_ + ")");
  } catch (...) {
    zip_discard(zip_);
    zip_ = nullptr;
    throw;
  }
}

bool Package::has(const std::string& name) const { return zip_name_locate(zip_, name.c_str(), 0) >= 0; }

void Package::find_workbook() {
  workbook_ = "xl/workbook.xml";
  if (!has("_rels/.rels")) return;
  XmlPart rels(*this, "_rels/.rels");
  while (rels.read()) {
    if (!rels.is_start() || rels.local_name() != "Relationship") continue;
    const auto type = rels.attr("Type");
    const auto target = rels.attr("Target");
    if (!type || !target || !type->ends_with("/officeDocument")) continue;
    workbook_ = target->starts_with("/") ? target->substr(1) : *target;
    return;
  }
}

XmlPart::XmlPart(const Package& pkg, const std::string& name) : name_(name) {
  init_libxml();
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(pkg.zip(), name.c_str(), 0, &st) != 0) throw XlsxError("the workbook has no part " + name);
  size_ = (st.valid & ZIP_STAT_SIZE) ? st.size : 0;
  comp_size_ = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : 0;
  file_ = zip_fopen(pkg.zip(), name.c_str(), 0);
  if (!file_) {
    const int code = zip_error_code_zip(zip_get_error(pkg.zip()));
    if (code == ZIP_ER_NOPASSWD || code == ZIP_ER_WRONGPASSWD)
      throw XlsxError("encrypted workbook or .xls: save as .xlsx without a password");
    throw XlsxError("cannot read " + name + " in the workbook: " + zip_message(code));
  }
  // No network, no entity expansion (entities are refused below), no DTD loading.
  reader_ =
      xmlReaderForIO(&XmlPart::on_read, nullptr, this, name.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOCDATA);
  if (!reader_) {
    zip_fclose(file_);
    throw XlsxError("cannot parse " + name);
  }
  xmlTextReaderSetStructuredErrorHandler(
      reader_,
      [](void* self, xmlErrorPtr e) {
        auto* part = static_cast<XmlPart*>(self);
        if (part->error_.empty() && e && e->message)
          part->error_ = "line " + std::to_string(e->line) + ": " + e->message;
      },
      this);
}

XmlPart::~XmlPart() {
  if (reader_) xmlFreeTextReader(reader_);
  if (file_) zip_fclose(file_);
}

int XmlPart::on_read(void* self, char* buf, int len) {
  auto* part = static_cast<XmlPart*>(self);
  const zip_int64_t n = zip_fread(part->file_, buf, zip_uint64_t(len));
  if (n < 0) {
    part->error_ = std::string("the zip entry is damaged: ") + zip_file_strerror(part->file_);
    return -1;
  }
  part->read_ += uint64_t(n);
  return int(n);
}

bool XmlPart::read() {
  const int r = xmlTextReaderRead(reader_);
  if (r < 0) fail(error_.empty() ? "malformed XML" : error_);
  if (r == 0) return false;
  type_ = xmlTextReaderNodeType(reader_);
  // A workbook part never needs a DTD; refusing it rules out entity expansion bombs.
  if (type_ == XML_READER_TYPE_DOCUMENT_TYPE || type_ == XML_READER_TYPE_ENTITY_REFERENCE)
    fail("a DTD or entity reference, which no workbook part has");
  return true;
}

bool XmlPart::is_start() const { return type_ == XML_READER_TYPE_ELEMENT; }
bool XmlPart::is_end() const { return type_ == XML_READER_TYPE_END_ELEMENT; }
bool XmlPart::is_text() const {
  return type_ == XML_READER_TYPE_TEXT || type_ == XML_READER_TYPE_CDATA || type_ == XML_READER_TYPE_WHITESPACE ||
         type_ == XML_READER_TYPE_SIGNIFICANT_WHITESPACE;
}
bool XmlPart::is_empty_element() const { return xmlTextReaderIsEmptyElement(reader_) == 1; }

std::string_view XmlPart::local_name() const {
  const xmlChar* n = xmlTextReaderConstLocalName(reader_);
  return n ? std::string_view(reinterpret_cast<const char*>(n)) : std::string_view();
}

std::string_view XmlPart::value() const {
  const xmlChar* v = xmlTextReaderConstValue(reader_);
  return v ? std::string_view(reinterpret_cast<const char*>(v)) : std::string_view();
}

std::optional<std::string> XmlPart::attr(const char* local) const {
  std::optional<std::string> out;
  if (xmlTextReaderHasAttributes(reader_) != 1) return out;
  // Attributes are matched by local name so that r:id and prefixed (strict OOXML) names work.
  for (int ok = xmlTextReaderMoveToFirstAttribute(reader_); ok == 1; ok = xmlTextReaderMoveToNextAttribute(reader_)) {
    const xmlChar* n = xmlTextReaderConstLocalName(reader_);
    if (n && std::strcmp(reinterpret_cast<const char*>(n), local) == 0) {
      const xmlChar* v = xmlTextReaderConstValue(reader_);
      out = v ? reinterpret_cast<const char*>(v) : "";
      break;
    }
  }
  xmlTextReaderMoveToElement(reader_);
  return out;
}

uint64_t XmlPart::compressed_read() const {
  if (size_ == 0) return read_;
  return uint64_t(double(read_) * double(comp_size_) / double(size_));
}

void XmlPart::fail(const std::string& why) const { throw XlsxError(name_ + " in the workbook is malformed: " + why); }

}  // namespace ingestd::engine::xlsx
