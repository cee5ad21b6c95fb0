// Small .xlsx workbooks built in memory with libzip, for the xlsx reader's unit tests and its
// fuzz target: each part is given as the XML a writer would put there.
#pragma once

#include <zip.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ingestd::test {

using Parts = std::vector<std::pair<std::string, std::string>>;

/// A zip holding `parts` (deflated, or stored as is for speed), as bytes.
inline std::string make_zip(const Parts& parts, bool store = false) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(nullptr, 0, 0, &err);
  if (!src) throw std::runtime_error("zip_source_buffer_create");
  zip_source_keep(src);
  zip_t* z = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  if (!z) throw std::runtime_error("zip_open_from_source");
  for (const auto& [name, data] : parts) {
    zip_source_t* s = zip_source_buffer(z, data.data(), data.size(), 0);
    const zip_int64_t idx = s ? zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) throw std::runtime_error("zip_file_add " + name);
    if (store) zip_set_file_compression(z, zip_uint64_t(idx), ZIP_CM_STORE, 0);
  }
  if (zip_close(z) != 0) throw std::runtime_error("zip_close");
  std::string out;
  if (zip_source_open(src) != 0) throw std::runtime_error("zip_source_open");
  char buf[65536];
  for (zip_int64_t n; (n = zip_source_read(src, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  zip_source_close(src);
  zip_source_free(src);
  zip_error_fini(&err);
  return out;
}

/// @brief The parts of a workbook that tests vary; the rest is the boilerplate Excel writes.
struct WorkbookSpec {
  std::vector<std::pair<std::string, std::string>> sheets;  // name -> <sheetData> content
  std::string shared_strings;                               // <si> elements; empty: no sharedStrings.xml
  std::string num_fmts;                                     // <numFmt> elements
  std::vector<int> xf_formats{0};                           // numFmtId of each cellXfs entry (style index = position)
  bool date1904 = false;
};

inline std::string sheet_xml(const std::string& sheet_data) {
  return R"(<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>)" +
         sheet_data + "</sheetData></worksheet>";
}

inline Parts workbook_parts(const WorkbookSpec& spec) {
  const std::string ns = R"(xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main")";
  const std::string rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
  Parts p;
  p.emplace_back(
      "_rels/.rels",
      R"(<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type=")" +
          rel + R"(/officeDocument" Target="xl/workbook.xml"/></Relationships>)");
  std::string wb = "<workbook " + ns + " xmlns:r=\"" + rel + "\">" +
                   (spec.date1904 ? "<workbookPr date1904=\"1\"/>" : "<workbookPr/>") + "<sheets>";
  std::string rels = R"(<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">)";
  for (size_t i = 0; i < spec.sheets.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    wb += "<sheet name=\"" + spec.sheets[i].first + "\" sheetId=\"" + n + "\" r:id=\"rId" + n + "\"/>";
    rels +=
        "<Relationship Id=\"rId" + n + "\" Type=\"" + rel + "/worksheet\" Target=\"worksheets/sheet" + n + ".xml\"/>";
    p.emplace_back("xl/worksheets/sheet" + n + ".xml", sheet_xml(spec.sheets[i].second));
  }
  p.emplace_back("xl/workbook.xml", wb + "</sheets></workbook>");
  p.emplace_back("xl/_rels/workbook.xml.rels", rels + "</Relationships>");
  std::string styles = "<styleSheet " + ns + "><numFmts>" + spec.num_fmts + "</numFmts>" +
                       "<cellStyleXfs count=\"1\"><xf numFmtId=\"14\"/></cellStyleXfs><cellXfs>";
  for (int id : spec.xf_formats) styles += "<xf numFmtId=\"" + std::to_string(id) + "\" xfId=\"0\"/>";
  p.emplace_back("xl/styles.xml", styles + "</cellXfs></styleSheet>");
  if (!spec.shared_strings.empty())
    p.emplace_back("xl/sharedStrings.xml", "<sst " + ns + ">" + spec.shared_strings + "</sst>");
  return p;
}

inline std::string make_workbook(const WorkbookSpec& spec) { return make_zip(workbook_parts(spec)); }

}  // namespace ingestd::test
