// The xlsx reader (handlers/engine/source/xlsx_reader.hpp) and source: workbooks built in the
// test with libzip (tests/unit/xlsx_fixture.hpp), read back as a user would see the cells.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/record_source.hpp"
#include "handlers/engine/source/xlsx_reader.hpp"
#include "tests/unit/xlsx_fixture.hpp"

using ingestd::config::XlsxOptions;
using ingestd::engine::SheetRow;
using ingestd::engine::XlsxError;
using ingestd::engine::XlsxLimits;
using ingestd::engine::XlsxReader;
using ingestd::test::WorkbookSpec;

namespace {

std::vector<SheetRow> read_rows(const std::string& bytes, const XlsxOptions& opts = {}, XlsxLimits limits = {}) {
  XlsxReader reader(std::string_view(bytes), opts, limits);
  std::vector<SheetRow> rows;
  SheetRow r;
  while (reader.next(r)) rows.push_back(r);
  return rows;
}

std::vector<SheetRow> read_sheet(const std::string& sheet_data, WorkbookSpec spec = {}) {
  spec.sheets = {{"Data", sheet_data}};
  return read_rows(ingestd::test::make_workbook(spec));
}

std::string error_of(const std::string& bytes, const XlsxOptions& opts = {}, XlsxLimits limits = {}) {
  try {
    read_rows(bytes, opts, limits);
  } catch (const XlsxError& e) {
    return e.what();
  }
  return "";
}

using Cells = std::vector<std::string>;

}  // namespace

TEST_SUITE("xlsx") {
  TEST_CASE("shared strings, inline strings, formula strings, booleans and formulas' cached values") {
    WorkbookSpec spec;
    spec.shared_strings =
        "<si><t>José</t></si><si><r><t>Gar</t></r><r><rPr/><t>cía</t></r><rPh><t>ガ</t></rPh></si>"
        "<si><t xml:space=\"preserve\"> a &amp; b </t></si>";
    auto rows = read_sheet(
        R"(<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>)"
        R"(<row r="2"><c r="A2" t="inlineStr"><is><t>inline, "quoted"</t></is></c><c r="B2" t="str"><f>A1&amp;"x"</f><v>Joséx</v></c>)"
        R"(<c r="C2" t="b"><v>1</v></c><c r="D2" t="b"><v>0</v></c><c r="E2"><f>1+1</f><v>2</v></c></row>)",
        spec);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].cells == Cells{"José", "García", " a & b "});
    CHECK(rows[1].cells == Cells{"inline, \"quoted\"", "Joséx", "true", "false", "2"});
  }

  TEST_CASE("the shared string table's memory is reported, for the chunks' budget to pay") {
    WorkbookSpec spec;
    for (int i = 0; i < 3000; ++i) spec.shared_strings += "<si><t>" + std::string(1000, char('a' + i % 26)) + "</t></si>";
    spec.sheets = {{"Data", R"(<row r="1"><c r="A1" t="s"><v>2999</v></c></row>)"}};
    const std::string bytes = ingestd::test::make_workbook(spec);
    XlsxReader reader(std::string_view(bytes), {});
    CHECK(reader.shared_strings_bytes() >= 3000 * 1000);  // the text, in whole 1 MiB blocks
    CHECK(reader.shared_strings_bytes() <= 3000 * 1000 + (size_t(2) << 20) + 3000 * 24);
    SheetRow r;
    REQUIRE(reader.next(r));
    CHECK(r.cells == Cells{std::string(1000, char('a' + 2999 % 26))});
  }

  TEST_CASE("numbers keep their written value without float noise") {
    auto rows =
        read_sheet(R"(<row r="1"><c r="A1"><v>52987654</v></c><c r="B1"><v>0.1</v></c>)"
                   R"(<c r="C1"><v>5.2987654E7</v></c><c r="D1"><v>0.30000000000000004</v></c>)"
                   R"(<c r="E1"><v>1E-3</v></c><c r="F1"><v>-2.5</v></c><c r="G1"><v>12345678901234567890</v></c>)"
                   R"(<c r="H1"><v>1.5E+20</v></c></row>)");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].cells == Cells{"52987654", "0.1", "52987654", "0.3", "0.001", "-2.5", "12345678901234567890",
                                 "150000000000000000000"});
    CHECK(ingestd::engine::xlsx_number("-1.23456789012345678E-5") == "-0.0000123456789012346");
  }

  TEST_CASE("date cells by built-in and custom formats, in the 1900 and 1904 systems") {
    WorkbookSpec spec;
    spec.num_fmts =
        R"(<numFmt numFmtId="164" formatCode="dd/mm/yyyy\ hh:mm"/><numFmt numFmtId="165" formatCode="&quot;day &quot;0"/>)"
        R"(<numFmt numFmtId="166" formatCode="[Red]0.00;[Blue]\-0.00"/>)";
    spec.xf_formats = {0, 14, 164, 165, 166, 22};
    auto rows = read_sheet(
        R"(<row r="1"><c r="A1" s="1"><v>32947</v></c><c r="B1" s="2"><v>32947.5</v></c>)"
        R"(<c r="C1" s="3"><v>32947</v></c><c r="D1" s="4"><v>32947</v></c><c r="E1" s="5"><v>45351.25</v></c>)"
        R"(<c r="F1" s="0"><v>32947</v></c><c r="G1" s="1"><v>-1</v></c><c r="H1" s="1"><v>59</v></c></row>)",
        spec);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].cells == Cells{"1990-03-15", "1990-03-15 12:00:00", "32947", "32947", "2024-02-29 06:00:00", "32947",
                                 "-1", "1900-02-28"});
    spec.date1904 = true;
    rows = read_sheet(R"(<row r="1"><c r="A1" s="1"><v>31485</v></c></row>)", spec);
    CHECK(rows[0].cells == Cells{"1990-03-15"});
    CHECK(ingestd::engine::is_date_format("yyyy-mm-dd"));
    CHECK(ingestd::engine::is_date_format("[$-409]h:mm AM/PM"));
    CHECK_FALSE(ingestd::engine::is_date_format("General"));
    CHECK_FALSE(ingestd::engine::is_date_format("0.00E+00"));
    CHECK_FALSE(ingestd::engine::is_date_format("\\d0"));
  }

  TEST_CASE("cells land by reference: sparse rows, empty rows skipped, sheet row numbers kept") {
    auto rows = read_sheet(
        R"(<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c><c r="C1"><v>3</v></c></row>)"
        R"(<row r="2" s="1" customFormat="1"/><row r="3"><c r="A3" s="0"/><c r="B3" t="inlineStr"><is><t></t></is></c></row>)"
        R"(<row r="7"><c r="B7"><v>7</v></c></row><row><c><v>1</v></c><c><v>2</v></c></row>)");
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].number == 1);
    CHECK(rows[0].cells == Cells{"a", "", "3"});
    CHECK(rows[1].number == 7);
    CHECK(rows[1].cells == Cells{"", "7"});
    CHECK(rows[2].number == 8);  // no r: the next row, cells in order
    CHECK(rows[2].cells == Cells{"1", "2"});
  }

  TEST_CASE("an Excel error cell marks its row") {
    auto rows = read_sheet(R"(<row r="4"><c r="A4"><v>1</v></c><c r="B4" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>)");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].error == "cell B4 holds the Excel error #DIV/0!");
  }

  TEST_CASE("a million empty styled rows stream through") {
    std::string data;
    data.reserve(40u << 20);
    for (int r = 1; r <= 1000000; ++r) data += "<row r=\"" + std::to_string(r) + "\" s=\"1\" customFormat=\"1\"/>";
    data += R"(<row r="1000001"><c r="A1000001"><v>42</v></c></row>)";
    auto rows = read_sheet(data);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].number == 1000001);
  }

  TEST_CASE("the sheet by name or 1-based index; a missing one lists the sheets") {
    WorkbookSpec spec;
    spec.sheets = {{"Notes", R"(<row r="1"><c r="A1"><v>1</v></c></row>)"},
                   {"People", R"(<row r="1"><c r="A1"><v>2</v></c></row>)"}};
    const std::string wb = ingestd::test::make_workbook(spec);
    CHECK(read_rows(wb)[0].cells == Cells{"1"});
    XlsxOptions by_name;
    by_name.sheet_name = "People";
    CHECK(read_rows(wb, by_name)[0].cells == Cells{"2"});
    XlsxOptions by_index;
    by_index.sheet_index = 2;
    CHECK(read_rows(wb, by_index)[0].cells == Cells{"2"});
    by_name.sheet_name = "Peeple";
    CHECK(error_of(wb, by_name) == "the workbook has no sheet 'Peeple'; its sheets: 1 'Notes', 2 'People'");
    by_index.sheet_index = 3;
    CHECK(error_of(wb, by_index) == "the workbook has no sheet 3 (it has 2: 1 'Notes', 2 'People')");
  }

  TEST_CASE("what is not an xlsx workbook is refused with its cause") {
    CHECK(error_of("Cedula,Nombre\n1,Ana\n").find("not an .xlsx workbook") == 0);
    CHECK(error_of(std::string("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8) + std::string(512, '\0')) ==
          "encrypted workbook or .xls: save as .xlsx without a password");
    CHECK(error_of(ingestd::test::make_zip({{"word/document.xml", "<w/>"}})) ==
          "workbook is a zip but not an Excel workbook (no xl/workbook.xml)");
    CHECK(error_of(ingestd::test::make_zip({{"xl/workbook.bin", "x"}})) ==
          "workbook is an .xlsb (binary) workbook: save it as .xlsx");
    WorkbookSpec one;
    one.sheets = {{"S", ""}};
    auto parts = ingestd::test::workbook_parts(one);
    parts[1].second = "<worksheet><sheetData><row r=\"1\"><c r=\"A1\"><v>1</c></row>";  // sheet1.xml
    CHECK(error_of(ingestd::test::make_zip(parts))
              .find("xl/worksheets/sheet1.xml in the workbook is malformed: line 1") == 0);
    parts[1].second = "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><worksheet><sheetData/></worksheet>";
    CHECK(error_of(ingestd::test::make_zip(parts)).find("a DTD or entity reference") != std::string::npos);
  }

  TEST_CASE("bad cells and budgets are errors naming the cell") {
    WorkbookSpec spec;
    spec.shared_strings = "<si><t>only</t></si>";
    spec.sheets = {{"S", R"(<row r="2"><c r="B2" t="s"><v>5</v></c></row>)"}};
    CHECK(error_of(ingestd::test::make_workbook(spec)) ==
          "sheet 'S' cell B2: shared string 5 does not exist (the table has 1)");
    spec.sheets = {{"S", R"(<row r="2"><c r="XFE2"><v>5</v></c></row>)"}};
    CHECK(error_of(ingestd::test::make_workbook(spec)) == "sheet 'S' cell XFE2: beyond the limit of 16384 columns");
    spec.shared_strings = std::string("<si><t>") + std::string(2000, 'x') + "</t></si>";
    XlsxLimits small;
    small.shared_strings_bytes = 1024;
    CHECK(error_of(ingestd::test::make_workbook(spec), {}, small).find("shared string table is larger than") !=
          std::string::npos);
    spec.sheets = {{"S", R"(<row r="3"/><row r="2"><c r="A2"><v>1</v></c></row>)"}};
    CHECK(error_of(ingestd::test::make_workbook(spec)).find("row 2 comes after row 3") != std::string::npos);
    // found by fuzz_xlsx_reader: a row inside a cell of another used to end that cell at column -1
    spec.sheets = {{"S", R"(<row r="1"><c r="B1"><v>1<row r="3"/>2</v></c></row>)"}};
    CHECK(error_of(ingestd::test::make_workbook(spec)).find("a row starts inside row 1") != std::string::npos);
  }

  TEST_CASE("the record source: header at header_row, records numbered by sheet row, CSV raw text") {
    WorkbookSpec spec;
    spec.sheets = {
        {"People",
         R"(<row r="1"><c r="A1" t="inlineStr"><is><t>Export of 2025-11</t></is></c></row>)"
         R"(<row r="2"><c r="A2" t="inlineStr"><is><t>Cedula</t></is></c><c r="B2" t="inlineStr"><is><t>Nombre</t></is></c></row>)"
         R"(<row r="4"><c r="A4"><v>1023456789</v></c><c r="B4" t="inlineStr"><is><t>García, José</t></is></c></row>)"
         R"(<row r="5"><c r="B5" t="inlineStr"><is><t>Ana</t></is></c><c r="D5"><v>9</v></c></row>)"
         R"(<row r="6"><c r="A6" t="e"><v>#N/A</v></c></row>)"}};
    const auto path = std::filesystem::temp_directory_path() / ("test_xlsx_" + std::to_string(getpid()) + ".xlsx");
    std::ofstream(path, std::ios::binary) << ingestd::test::make_workbook(spec);
    ingestd::engine::FileSourceOptions opts;
    opts.format = ingestd::config::Format::Xlsx;
    opts.xlsx.header_row = 2;
    auto src = ingestd::engine::open_file_source(path.string(), opts);
    CHECK(src->header() == Cells{"Cedula", "Nombre"});
    CHECK(src->header_raw() == "Cedula,Nombre");
    ingestd::engine::Record rec;
    REQUIRE(src->next(rec));
    CHECK(rec.number == 4);
    CHECK(rec.fields == Cells{"1023456789", "García, José"});
    CHECK(rec.raw == "1023456789,\"García, José\"");
    CHECK(rec.error.empty());
    REQUIRE(src->next(rec));
    CHECK(rec.number == 5);
    CHECK(rec.fields == Cells{"", "Ana"});
    CHECK(rec.error == "cell D5 ('9') is right of the header's last column B");
    REQUIRE(src->next(rec));
    CHECK(rec.error == "cell A6 holds the Excel error #N/A");
    CHECK_FALSE(src->next(rec));
    opts.xlsx.header_row = 3;
    CHECK_THROWS_WITH_AS(ingestd::engine::open_file_source(path.string(), opts),
                         doctest::Contains("sheet 'People' has no header: row 3 (header_row) is empty"),
                         ingestd::engine::BatchError);
    std::filesystem::remove(path);
  }

  TEST_CASE("config: xlsx options load strictly with key paths") {
    const std::string csv_ds =
        "postgres: {url: postgresql://h/x}\ndatasets:\n  d:\n    xlsx: {sheet: A}\n"
        "    entities: {e: {table: t, fields: {a: {from: A}}}}\n";
    CHECK_THROWS_WITH(
        ingestd::config::load_config_text(csv_ds, "i.yaml"),
        "i.yaml:4: datasets.d.xlsx: xlsx options apply to format xlsx; this dataset's format is csv");
    const std::string base = "postgres: {url: postgresql://h/x}\ndatasets:\n  d:\n    format: xlsx\n";
    const std::string ents = "    entities: {e: {table: t, fields: {a: {from: A}}}}\n";
    auto cfg = ingestd::config::load_config_text(base + "    xlsx: {sheet: People, header_row: 3}\n" + ents, "i.yaml");
    const auto& d = cfg.datasets.at("d");
    CHECK(d.format == ingestd::config::Format::Xlsx);
    CHECK(d.xlsx.sheet_name == "People");
    CHECK(d.xlsx.header_row == 3);
    cfg = ingestd::config::load_config_text(base + "    xlsx: {sheet: 2}\n" + ents, "i.yaml");
    CHECK(cfg.datasets.at("d").xlsx.sheet_index == 2);
    CHECK(cfg.datasets.at("d").xlsx.sheet_name.empty());
    cfg = ingestd::config::load_config_text(base + "    xlsx: {sheet: \"2024\"}\n" + ents, "i.yaml");
    CHECK(cfg.datasets.at("d").xlsx.sheet_name == "2024");
    auto problems = [&](const std::string& x) {
      try {
        ingestd::config::load_config_text(base + x + ents, "i.yaml");
      } catch (const ingestd::config::ConfigError& e) {
        return std::string(e.what());
      }
      return std::string();
    };
    CHECK(problems("    xlsx: {sheet: 0}\n") ==
          "i.yaml:5: datasets.d.xlsx.sheet: expected a sheet name or a 1-based sheet index, got '0'");
    CHECK(problems("    xlsx: {header_row: 0}\n") ==
          "i.yaml:5: datasets.d.xlsx.header_row: expected an integer >= 1, got '0'");
    CHECK(ingestd::config::load_config_text(base + ents, "i.yaml").datasets.at("d").xlsx.header_row == 1);
    CHECK(problems("    xlsx: {shet: A}\n")
              .find("i.yaml:5: datasets.d.xlsx.shet: unknown key; allowed: sheet, header_row") == 0);
  }
}
