// The workbook's small parts (workbook, its relationships, styles, shared strings) are read
// once when the reader opens; the sheet is then streamed row by row.
#include "handlers/engine/source/xlsx_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include "handlers/engine/source/xlsx_package.hpp"

namespace ingestd::engine {

namespace {

struct SheetEntry {
  std::string name, rel_id;
};

/// Shared strings in an arena of 1 MiB blocks: a table of a million short strings costs their
/// text plus 12 bytes each, not a std::string apiece, and growing it never copies the text
/// (one contiguous buffer would double, and hold old and new while it does).
class SharedStrings {
 public:
  void add(const std::string& s, size_t budget) {
    if (text_bytes_ + s.size() + sizeof(Span) * (spans_.size() + 1) > budget)
      throw XlsxError("the workbook's shared string table is larger than " + std::to_string(budget >> 20) +
                      " MiB; split the workbook or save the sheet as CSV");
    if (blocks_.empty() || blocks_.back().capacity() - blocks_.back().size() < s.size()) {
      blocks_.emplace_back();
      blocks_.back().reserve(std::max(kBlock, s.size()));
    }
    std::string& block = blocks_.back();
    spans_.push_back({uint32_t(blocks_.size() - 1), uint32_t(block.size()), uint32_t(s.size())});
    block += s;  // within the reserved capacity: earlier views stay valid
    text_bytes_ += s.size();
  }
  size_t size() const { return spans_.size(); }
  size_t held_bytes() const { return blocks_.size() * kBlock + spans_.capacity() * sizeof(Span); }
  std::string_view at(size_t i) const {
    const Span& sp = spans_[i];
    return std::string_view(blocks_[sp.block]).substr(sp.offset, sp.length);
  }

 private:
  static constexpr size_t kBlock = size_t(1) << 20;
  struct Span {
    uint32_t block, offset, length;
  };
  std::vector<std::string> blocks_;
  std::vector<Span> spans_;
  size_t text_bytes_ = 0;
};

bool builtin_date_format(int id) { return (id >= 14 && id <= 22) || (id >= 45 && id <= 47); }

int to_int(const std::optional<std::string>& s, int fallback) {
  if (!s) return fallback;
  int v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  return ec == std::errc() && p == s->data() + s->size() ? v : fallback;
}

/// The directory of a part, for resolving the relative targets of its relationships.
std::string part_dir(const std::string& part) {
  const size_t slash = part.rfind('/');
  return slash == std::string::npos ? "" : part.substr(0, slash + 1);
}

std::string rels_of(const std::string& part) {
  return part_dir(part) + "_rels/" + part.substr(part_dir(part).size()) + ".rels";
}

/// Resolves "worksheets/sheet1.xml", "/xl/worksheets/sheet1.xml" and "../x.xml" against `dir`.
std::string resolve(const std::string& dir, const std::string& target) {
  if (target.starts_with("/")) return target.substr(1);
  std::string base = dir, t = target;
  while (t.starts_with("../")) {
    t = t.substr(3);
    if (!base.empty()) base.pop_back();
    base = part_dir(base);
  }
  return base + t;
}

}  // namespace

/// A cell reference "C5": the 0-based column, or -1 when it is not one.
static int ref_column(std::string_view ref) {
  int col = 0;
  size_t i = 0;
  for (; i < ref.size() && ref[i] >= 'A' && ref[i] <= 'Z'; ++i) {
    col = col * 26 + (ref[i] - 'A' + 1);
    if (col > 1 << 20) return -1;
  }
  return i == 0 ? -1 : col - 1;
}

struct XlsxReader::Impl {
  Impl(std::unique_ptr<xlsx::Package> p, const config::XlsxOptions& opts, XlsxLimits l) : pkg(std::move(p)), limits(l) {
    read_workbook(opts);
    read_styles();
    read_shared_strings();
    sheet = std::make_unique<xlsx::XmlPart>(*pkg, sheet_part);
  }

  void read_workbook(const config::XlsxOptions& opts);
  std::string sheet_target(const std::string& rel_id) const;
  void read_styles();
  void read_shared_strings();
  std::string read_rich_text(xlsx::XmlPart& part, std::string_view end);
  bool next(SheetRow& row);
  void start_cell();
  void end_cell(SheetRow& row);
  std::string cell_value(const std::string& where);
  [[noreturn]] void cell_error(const std::string& where, const std::string& why) const {
    throw XlsxError("sheet '" + sheet_title + "' cell " + where + ": " + why);
  }

  std::unique_ptr<xlsx::Package> pkg;
  XlsxLimits limits;
  bool date1904 = false;
  std::string sheet_title, sheet_part;
  std::vector<bool> date_styles;  // [cellXfs index] the style shows a date
  SharedStrings strings;
  std::unique_ptr<xlsx::XmlPart> sheet;

  // where the sheet stream is
  int64_t row_number = 0;
  int column = -1;  // of the current (or last) cell in the row
  bool in_cell = false;
  std::string cell_type, cell_text;
  int cell_style = 0;
  bool in_value = false, in_inline = false, in_inline_text = false, in_phonetic = false;
};

void XlsxReader::Impl::read_workbook(const config::XlsxOptions& opts) {
  std::vector<SheetEntry> sheets;
  xlsx::XmlPart wb(*pkg, pkg->workbook_part());
  while (wb.read()) {
    if (!wb.is_start()) continue;
    if (wb.local_name() == "workbookPr") {
      const auto v = wb.attr("date1904");
      date1904 = v && (*v == "1" || *v == "true");
    } else if (wb.local_name() == "sheet") {
      sheets.push_back({wb.attr("name").value_or(""), wb.attr("id").value_or("")});
    }
  }
  std::string names;
  for (size_t i = 0; i < sheets.size(); ++i)
    names += (i ? ", " : "") + std::to_string(i + 1) + " '" + sheets[i].name + "'";
  const SheetEntry* chosen = nullptr;
  if (!opts.sheet_name.empty()) {
    for (const auto& s : sheets)
      if (s.name == opts.sheet_name) chosen = &s;
    if (!chosen) throw XlsxError("the workbook has no sheet '" + opts.sheet_name + "'; its sheets: " + names);
  } else {
    if (opts.sheet_index < 1 || size_t(opts.sheet_index) > sheets.size())
      throw XlsxError("the workbook has no sheet " + std::to_string(opts.sheet_index) + " (it has " +
                      std::to_string(sheets.size()) + (sheets.empty() ? "" : ": " + names) + ")");
    chosen = &sheets[size_t(opts.sheet_index - 1)];
  }
  sheet_title = chosen->name;
  sheet_part = sheet_target(chosen->rel_id);
}

std::string XlsxReader::Impl::sheet_target(const std::string& rel_id) const {
  const std::string wb = pkg->workbook_part();
  xlsx::XmlPart rels(*pkg, rels_of(wb));
  while (rels.read()) {
    if (!rels.is_start() || rels.local_name() != "Relationship" || rels.attr("Id") != rel_id) continue;
    const std::string type = rels.attr("Type").value_or("");
    if (!type.ends_with("/worksheet"))
      throw XlsxError("sheet '" + sheet_title + "' is not a worksheet (a chart or dialog sheet has no rows)");
    const std::string part = resolve(part_dir(wb), rels.attr("Target").value_or(""));
    if (!pkg->has(part)) throw XlsxError("sheet '" + sheet_title + "': the workbook has no part " + part);
    return part;
  }
  throw XlsxError("sheet '" + sheet_title + "' has no relationship " + rel_id + " in " + rels_of(wb));
}

void XlsxReader::Impl::read_styles() {
  const std::string part = part_dir(pkg->workbook_part()) + "styles.xml";
  if (!pkg->has(part)) return;  // no styles: nothing is a date
  std::vector<int> custom_dates;
  bool in_cell_xfs = false;
  xlsx::XmlPart st(*pkg, part);
  while (st.read()) {
    const auto name = st.local_name();
    if (st.is_end() && name == "cellXfs") in_cell_xfs = false;
    if (!st.is_start()) continue;
    if (name == "numFmt") {
      if (is_date_format(st.attr("formatCode").value_or(""))) custom_dates.push_back(to_int(st.attr("numFmtId"), -1));
    } else if (name == "cellXfs") {
      in_cell_xfs = !st.is_empty_element();
    } else if (name == "xf" && in_cell_xfs) {
      const int id = to_int(st.attr("numFmtId"), 0);
      bool date = builtin_date_format(id);
      for (int c : custom_dates) date |= c == id;
      date_styles.push_back(date);
    }
  }
}

std::string XlsxReader::Impl::read_rich_text(xlsx::XmlPart& part, std::string_view end) {
  // <si> and <is> hold <t>, or runs <r><t>; phonetic runs (<rPh>) are a reading aid, not text.
  std::string text;
  bool in_t = false, in_ph = false;
  while (part.read()) {
    const auto name = part.local_name();
    if (part.is_start() && !part.is_empty_element()) {
      if (name == "t")
        in_t = true;
      else if (name == "rPh")
        in_ph = true;
    } else if (part.is_end()) {
      if (name == end) return text;
      if (name == "t")
        in_t = false;
      else if (name == "rPh")
        in_ph = false;
    } else if (part.is_text() && in_t && !in_ph) {
      text += part.value();
      if (text.size() > limits.max_cell_bytes)
        throw XlsxError(part.name() + ": a text longer than " + std::to_string(limits.max_cell_bytes) + " bytes");
    }
  }
  throw XlsxError(part.name() + " in the workbook is malformed: <" + std::string(end) + "> is not closed");
}

void XlsxReader::Impl::read_shared_strings() {
  std::string part;
  // The table's part is named by a relationship; every writer seen so far calls it this.
  if (pkg->has(part_dir(pkg->workbook_part()) + "sharedStrings.xml"))
    part = part_dir(pkg->workbook_part()) + "sharedStrings.xml";
  if (part.empty()) return;
  xlsx::XmlPart sst(*pkg, part);
  while (sst.read()) {
    if (!sst.is_start() || sst.local_name() != "si") continue;
    strings.add(sst.is_empty_element() ? std::string() : read_rich_text(sst, "si"), limits.shared_strings_bytes);
  }
}

bool XlsxReader::Impl::next(SheetRow& row) {
  row.number = 0;
  row.cells.clear();
  row.error.clear();
  bool in_row = false;
  while (sheet->read()) {
    const auto name = sheet->local_name();
    if (sheet->is_start()) {
      if (name == "row") {
        // a row inside another (a cell of it left open) is no sheet Excel writes: the cell it
        // interrupts would end in the wrong row
        if (in_row)
          throw XlsxError("sheet '" + sheet_title + "': a row starts inside row " + std::to_string(row_number) +
                          "; the sheet is malformed");
        const int64_t r = to_int(sheet->attr("r"), int(row_number + 1));
        if (r <= row_number)
          throw XlsxError("sheet '" + sheet_title + "': row " + std::to_string(r) + " comes after row " +
                          std::to_string(row_number) + "; the sheet's rows are out of order");
        row_number = r;
        column = -1;
        in_row = !sheet->is_empty_element();  // a styled row with no cells costs nothing more
        row.number = r;
      } else if (name == "c" && in_row) {
        start_cell();
      } else if (name == "v" && in_cell) {
        in_value = !sheet->is_empty_element();
      } else if (name == "is" && in_cell && !sheet->is_empty_element()) {
        cell_text = read_rich_text(*sheet, "is");
      }
    } else if (sheet->is_end()) {
      if (name == "v") {
        in_value = false;
      } else if (name == "c" && in_cell) {
        in_cell = false;
        end_cell(row);
      } else if (name == "row") {
        in_row = false;
        if (!row.cells.empty() || !row.error.empty()) return true;
      }
    } else if (in_value && sheet->is_text()) {
      cell_text += sheet->value();
      if (cell_text.size() > limits.max_cell_bytes)
        cell_error(column_letters(column) + std::to_string(row_number),
                   "a value longer than " + std::to_string(limits.max_cell_bytes) + " bytes");
    }
  }
  return false;
}

void XlsxReader::Impl::start_cell() {
  const auto ref = sheet->attr("r");
  const int c = ref ? ref_column(*ref) : column + 1;
  if (c < 0) cell_error(*ref + " (row " + std::to_string(row_number) + ")", "not a cell reference");
  if (c >= limits.max_columns)
    cell_error(column_letters(c) + std::to_string(row_number),
               "beyond the limit of " + std::to_string(limits.max_columns) + " columns");
  cell_type = sheet->attr("t").value_or("n");
  cell_style = to_int(sheet->attr("s"), 0);
  cell_text.clear();
  in_value = false;
  column = c;
  // <c r="B5" s="3"/> is styled and empty: it has no end tag, and no value to keep.
  in_cell = !sheet->is_empty_element();
}

void XlsxReader::Impl::end_cell(SheetRow& row) {
  const std::string where = column_letters(column) + std::to_string(row_number);
  if (cell_type == "e") {
    // A formula error is no value: the row is refused rather than the cell read as empty.
    if (row.error.empty()) row.error = "cell " + where + " holds the Excel error " + cell_text;
    return;
  }
  std::string v = cell_value(where);
  if (v.empty()) return;
  if (row.cells.size() <= size_t(column)) row.cells.resize(size_t(column) + 1);
  row.cells[size_t(column)] = std::move(v);
}

std::string XlsxReader::Impl::cell_value(const std::string& where) {
  if (cell_type == "s") {
    if (cell_text.empty()) return "";
    size_t i = 0;
    auto [p, ec] = std::from_chars(cell_text.data(), cell_text.data() + cell_text.size(), i);
    if (ec != std::errc() || p != cell_text.data() + cell_text.size() || i >= strings.size())
      cell_error(where, "shared string " + cell_text + " does not exist (the table has " +
                            std::to_string(strings.size()) + ")");
    return std::string(strings.at(i));
  }
  if (cell_type == "inlineStr" || cell_type == "str" || cell_type == "d") return cell_text;
  if (cell_type == "b") {
    if (cell_text == "1") return "true";
    if (cell_text == "0") return "false";
    cell_error(where, "boolean cell holds '" + cell_text + "'");
  }
  if (cell_type != "n") cell_error(where, "unknown cell type '" + cell_type + "'");
  if (cell_text.empty()) return "";
  if (cell_style >= 0 && size_t(cell_style) < date_styles.size() && date_styles[size_t(cell_style)]) {
    std::string d = xlsx_date(cell_text, date1904);
    if (!d.empty()) return d;
  }
  return xlsx_number(cell_text);
}

XlsxReader::XlsxReader(const std::string& path, const config::XlsxOptions& opts, XlsxLimits limits)
    : impl_(std::make_unique<Impl>(std::make_unique<xlsx::Package>(path), opts, limits)) {}

XlsxReader::XlsxReader(std::string_view bytes, const config::XlsxOptions& opts, XlsxLimits limits)
    : impl_(std::make_unique<Impl>(std::make_unique<xlsx::Package>(bytes), opts, limits)) {}

XlsxReader::~XlsxReader() = default;

bool XlsxReader::next(SheetRow& row) { return impl_->next(row); }
const std::string& XlsxReader::sheet_name() const { return impl_->sheet_title; }
uint64_t XlsxReader::bytes_read() const { return impl_->sheet->compressed_read(); }

size_t XlsxReader::shared_strings_bytes() const { return impl_->strings.held_bytes(); }

}  // namespace ingestd::engine
