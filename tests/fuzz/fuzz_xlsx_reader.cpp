// libFuzzer target: the xlsx reader on arbitrary bytes, fed as the whole zip or as one part
// (the sheet, the shared strings, the styles) of an otherwise valid workbook.
// Properties: no crash, no hang, bounded rows, and errors only as XlsxError.
#include <cstdint>

#include "handlers/engine/source/xlsx_reader.hpp"
#include "tests/unit/xlsx_fixture.hpp"

namespace {

std::string workbook_with(int part, std::string_view fuzz) {
  ingestd::test::WorkbookSpec spec;
  spec.sheets = {{"S", R"(<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" s="1"><v>32947.5</v></c></row>)"}};
  spec.shared_strings = "<si><t>a</t></si><si><r><t>b</t></r></si>";
  spec.num_fmts = R"(<numFmt numFmtId="164" formatCode="dd/mm/yyyy"/>)";
  spec.xf_formats = {0, 14, 164};
  auto parts = ingestd::test::workbook_parts(spec);
  const char* names[] = {"xl/worksheets/sheet1.xml", "xl/sharedStrings.xml", "xl/styles.xml"};
  for (auto& [name, data] : parts)
    if (name == names[part - 1]) data = std::string(fuzz);
  return ingestd::test::make_zip(parts, true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] % 4;  // '0' whole zip, '1' sheet, '2' shared strings, '3' styles
  std::string_view fuzz(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string bytes = mode == 0 ? std::string(fuzz) : workbook_with(mode, fuzz);
  ingestd::engine::XlsxLimits limits;
  limits.shared_strings_bytes = 1 << 20;
  limits.max_columns = 256;
  limits.max_cell_bytes = 4096;
  try {
    ingestd::engine::XlsxReader reader{std::string_view(bytes), ingestd::config::XlsxOptions{}, limits};
    ingestd::engine::SheetRow row;
    int64_t last = 0;
    while (reader.next(row)) {
      // rows ascend, hold a value (or an error), and never more columns than the limit
      if (row.number <= last || (row.cells.empty() && row.error.empty()) || row.cells.size() > 256) __builtin_trap();
      last = row.number;
    }
  } catch (const ingestd::engine::XlsxError&) {
  }
  return 0;
}
