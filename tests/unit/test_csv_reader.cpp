// Unit tests for the streaming CSV reader (handlers/engine/source/csv_reader.hpp).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/csv_reader.hpp"
#include "handlers/engine/source/record_source.hpp"

using ingestd::config::CsvOptions;
using ingestd::engine::CsvError;
using ingestd::engine::CsvReader;
using ingestd::engine::CsvRecord;

namespace {

using Rows = std::vector<std::vector<std::string>>;

CsvOptions opts(char delimiter = ',', const std::string& encoding = "utf-8", int64_t max_row_bytes = 64 << 20) {
  CsvOptions o;
  o.delimiter = delimiter;
  o.encoding = encoding;
  o.max_row_bytes = max_row_bytes;
  return o;
}

std::vector<CsvRecord> read_all(const std::string& text, const CsvOptions& o = opts(),
                                size_t max_fields = ingestd::engine::kMaxCsvFields) {
  std::istringstream in(text);
  CsvReader reader(in, o, max_fields);
  std::vector<CsvRecord> out;
  CsvRecord rec;
  while (reader.next(rec)) out.push_back(rec);
  return out;
}

Rows fields_of(const std::vector<CsvRecord>& recs) {
  Rows rows;
  for (const auto& r : recs) rows.push_back(r.fields);
  return rows;
}

}  // namespace

TEST_CASE("csv: plain records with LF") {
  auto recs = read_all("a,b,c\n1,2,3\n");
  CHECK(fields_of(recs) == Rows{{"a", "b", "c"}, {"1", "2", "3"}});
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].raw == "a,b,c");
  CHECK(recs[1].raw == "1,2,3");
  CHECK(recs[0].line == 1);
  CHECK(recs[1].line == 2);
  CHECK_FALSE(recs[1].invalid_utf8);
}

TEST_CASE("csv: CRLF terminators are not part of fields or raw") {
  auto recs = read_all("a,b\r\n1,2\r\n3,4\r\n");
  CHECK(fields_of(recs) == Rows{{"a", "b"}, {"1", "2"}, {"3", "4"}});
  REQUIRE(recs.size() == 3);
  CHECK(recs[1].raw == "1,2");
  CHECK(recs[2].line == 3);
}

TEST_CASE("csv: last line without terminator") {
  CHECK(fields_of(read_all("a,b\n1,2")) == Rows{{"a", "b"}, {"1", "2"}});
  CHECK(fields_of(read_all("a,b\r\n1,2")) == Rows{{"a", "b"}, {"1", "2"}});
  CHECK(fields_of(read_all("x")) == Rows{{"x"}});
}

TEST_CASE("csv: empty input and blank lines") {
  CHECK(read_all("").empty());
  CHECK(read_all("\n\r\n\n").empty());
  auto recs = read_all("a\n\n\r\nb\n\n");
  CHECK(fields_of(recs) == Rows{{"a"}, {"b"}});
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].line == 4);
}

TEST_CASE("csv: empty fields are kept") {
  CHECK(fields_of(read_all(",\na,,b\n\"\",x,\n")) ==
        Rows{{"", ""}, {"a", "", "b"}, {"", "x", ""}});
}

TEST_CASE("csv: quoted field with the delimiter") {
  auto recs = read_all("name,city\n\"Garcia, Jose\",Bogota\n");
  CHECK(fields_of(recs) == Rows{{"name", "city"}, {"Garcia, Jose", "Bogota"}});
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].raw == "\"Garcia, Jose\",Bogota");
}

TEST_CASE("csv: doubled quotes inside a quoted field") {
  auto recs = read_all("\"he said \"\"hi\"\"\",\"\"\"\"\n");
  CHECK(fields_of(recs) == Rows{{"he said \"hi\"", "\""}});
}

TEST_CASE("csv: newlines inside quoted fields and line numbers") {
  auto recs = read_all("id,note\n1,\"line one\nline two\r\nline three\"\n2,plain\n");
  CHECK(fields_of(recs) ==
        Rows{{"id", "note"}, {"1", "line one\nline two\r\nline three"}, {"2", "plain"}});
  REQUIRE(recs.size() == 3);
  CHECK(recs[1].line == 2);
  CHECK(recs[1].raw == "1,\"line one\nline two\r\nline three\"");
  CHECK(recs[2].line == 5);
}

TEST_CASE("csv: stray quotes in unquoted fields are literal") {
  CHECK(fields_of(read_all("ab\"c,d\n")) == Rows{{"ab\"c", "d"}});
  CHECK(fields_of(read_all("\"ab\"c,d\n")) == Rows{{"abc", "d"}});
}

TEST_CASE("csv: UTF-8 BOM is skipped") {
  auto recs = read_all("\xEF\xBB\xBFname,age\nAna,30\n");
  CHECK(fields_of(recs) == Rows{{"name", "age"}, {"Ana", "30"}});
  REQUIRE(!recs.empty());
  CHECK(recs[0].raw == "name,age");
  CHECK(recs[0].line == 1);
}

TEST_CASE("csv: semicolon delimiter") {
  auto recs = read_all("a;b;c\n\"x;y\";1,5;z\n", opts(';'));
  CHECK(fields_of(recs) == Rows{{"a", "b", "c"}, {"x;y", "1,5", "z"}});
}

TEST_CASE("csv: configurable quote character") {
  CsvOptions o = opts(';');
  o.quote = '\'';
  CHECK(fields_of(read_all("'a;b';'it''s';\"x\"\n", o)) == Rows{{"a;b", "it's", "\"x\""}});
}

TEST_CASE("csv: tab delimiter") {
  CHECK(fields_of(read_all("a\tb\n1\t2\n", opts('\t'))) == Rows{{"a", "b"}, {"1", "2"}});
}

TEST_CASE("csv: unterminated quote at EOF is a CsvError naming the line") {
  std::istringstream in("a,b\n1,\"never closed\n2,3\n");
  CsvReader reader(in, opts());
  CsvRecord rec;
  REQUIRE(reader.next(rec));
  CHECK(rec.fields == std::vector<std::string>{"a", "b"});
  try {
    reader.next(rec);
    FAIL("expected CsvError");
  } catch (const CsvError& e) {
    CHECK(e.line == 2);
    CHECK(std::string(e.what()).find("line 2") != std::string::npos);
    CHECK(std::string(e.what()).find("unterminated") != std::string::npos);
  }
}

TEST_CASE("csv: invalid UTF-8 is flagged per record and reading continues") {
  auto recs = read_all("ok,1\nbad \xE9,2\nok \xC3\xA9,3\n\xC0\xAF,4\n\xED\xA0\x80,5\n");
  REQUIRE(recs.size() == 5);
  CHECK_FALSE(recs[0].invalid_utf8);
  CHECK(recs[1].invalid_utf8);
  CHECK(recs[1].fields[0] == "bad \xE9");
  CHECK_FALSE(recs[2].invalid_utf8);
  CHECK(recs[3].invalid_utf8);  // overlong encoding
  CHECK(recs[4].invalid_utf8);  // surrogate
  CHECK(recs[4].fields[1] == "5");
}

TEST_CASE("csv: latin1 is transcoded to UTF-8") {
  auto recs = read_all("nombre,ciudad\nJos\xE9,Medell\xEDn\n", opts(',', "latin1"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].fields == std::vector<std::string>{"Jos\xC3\xA9", "Medell\xC3\xADn"});
  CHECK(recs[1].raw == "Jos\xC3\xA9,Medell\xC3\xADn");
  CHECK_FALSE(recs[1].invalid_utf8);
}

TEST_CASE("csv: windows-1252 is transcoded") {
  // 0x80 is the euro sign and 0x93/0x94 are curly quotes in windows-1252, not in latin1.
  auto recs = read_all("\x80" "5,\x93hola\x94\n", opts(',', "windows-1252"));
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].fields ==
        std::vector<std::string>{"\xE2\x82\xAC" "5", "\xE2\x80\x9Chola\xE2\x80\x9D"});
  CHECK_FALSE(recs[0].invalid_utf8);
}

TEST_CASE("csv: undecodable bytes become U+FFFD and flag only their record") {
  auto recs = read_all("ok,1\nx\xE9,2\nok,3\n", opts(',', "US-ASCII"));
  REQUIRE(recs.size() == 3);
  CHECK_FALSE(recs[0].invalid_utf8);
  CHECK(recs[1].fields == std::vector<std::string>{"x\xEF\xBF\xBD", "2"});
  CHECK(recs[1].invalid_utf8);
  CHECK_FALSE(recs[2].invalid_utf8);
}

TEST_CASE("csv: encoding names are case-insensitive, UTF8 aliases need no converter") {
  CHECK(fields_of(read_all("\xC3\xA9\n", opts(',', "UTF8"))) == Rows{{"\xC3\xA9"}});
  CHECK(fields_of(read_all("\xE9\n", opts(',', "ISO-8859-1"))) == Rows{{"\xC3\xA9"}});
}

TEST_CASE("csv: unknown encoding is a CsvError") {
  std::istringstream in("a\n");
  CHECK_THROWS_AS(CsvReader(in, opts(',', "klingon-42")), CsvError);
}

TEST_CASE("csv: a row longer than max_row_bytes is a row error naming its line and the limit") {
  const std::string big(100, 'x');
  auto recs = read_all("a,b\n" + big + ",y\n1,2\n", opts(',', "utf-8", 50));
  REQUIRE(recs.size() == 3);
  CHECK(recs[1].error_code == "row_too_long");
  CHECK(recs[1].error == "line 2: 102 bytes, longer than the limit of 50 (csv.max_row_bytes)");
  CHECK(recs[1].fields.empty());
  CHECK(recs[2].fields == std::vector<std::string>{"1", "2"});
  CHECK(recs[2].error.empty());
  CHECK(recs[2].line == 3);
}

TEST_CASE("csv: an over-long row is skipped to its end minding quotes, without being held") {
  // 3 MB of quoted text holding delimiters and newlines, over blocks: the row ends at the
  // newline after the closing quote, and the lines inside it are still counted.
  std::string field;
  for (int i = 0; i < 100000; ++i) field += "a,b\n\"\"cd ef gh ij kl\n";
  auto recs = read_all("h1,h2\n1,\"" + field + "\"\n2,ok\n", opts(',', "utf-8", 1 << 20));
  REQUIRE(recs.size() == 3);
  CHECK(recs[1].error_code == "row_too_long");
  CHECK(recs[1].raw.size() == 1024 + 3);  // the first KiB and "..."
  CHECK(recs[1].raw.starts_with("1,\"a,b"));
  CHECK(recs[2].fields == std::vector<std::string>{"2", "ok"});
  CHECK(recs[2].line == 2 + 200000 + 1);
}

TEST_CASE("csv: unterminated quote in a big file is a CsvError at the end, not a held record") {
  std::string text = "a\n\"" + std::string(300000, 'x');
  std::istringstream in(text);
  CsvReader reader(in, opts(',', "utf-8", 100000));
  CsvRecord rec;
  REQUIRE(reader.next(rec));
  CHECK_THROWS_WITH_AS(reader.next(rec), doctest::Contains("unterminated quoted field"), CsvError);
}

TEST_CASE("csv: a row with more fields than the cap is a row error and builds no vector of them") {
  std::string commas(200000, ',');
  auto recs = read_all("a,b\n" + commas + "\n1,2\n", opts(), 1000);
  REQUIRE(recs.size() == 3);
  CHECK(recs[1].error_code == "too_many_fields");
  CHECK(recs[1].error == "line 2: 200001 fields, more than the limit of 1000");
  CHECK(recs[1].fields.capacity() <= 1000);
  CHECK(recs[1].raw.size() == commas.size());  // under the byte limit: kept for the reject file
  CHECK(recs[2].fields == std::vector<std::string>{"1", "2"});
  // exactly the cap is fine
  auto ok = read_all(std::string(999, ',') + "\n", opts(), 1000);
  REQUIRE(ok.size() == 1);
  CHECK(ok[0].error.empty());
  CHECK(ok[0].fields.size() == 1000);
}

TEST_CASE("csv: a file source fails the batch on a header over the byte limit or the column cap") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ingestd_csv_header_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ingestd::engine::FileSourceOptions o;
  o.csv.max_row_bytes = 1000;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  };
  CHECK_THROWS_WITH_AS(ingestd::engine::open_file_source(write("long.csv", std::string(5000, 'h') + "\n1\n"), o),
                       "header line 1: 5000 bytes, longer than the limit of 1000 (csv.max_row_bytes)",
                       ingestd::engine::BatchError);
  o.csv.max_row_bytes = 1 << 20;
  CHECK_THROWS_WITH_AS(ingestd::engine::open_file_source(write("wide.csv", std::string(20000, ',') + "\n1\n"), o),
                       "header line 1: 20001 fields, more than the limit of 16384",
                       ingestd::engine::BatchError);
  fs::remove_all(dir);
}

TEST_CASE("csv: a file bigger than the buffer, records spanning block boundaries") {
  // ~1.6 MB with CRLF, quoted fields holding delimiters, quotes and newlines, so that every
  // kind of token lands on a 64 KiB block boundary somewhere.
  std::string text = "\xEF\xBB\xBFid,name,note\r\n";
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    text += std::to_string(i) + ",\"Name, " + std::to_string(i) + "\",\"say \"\"" +
            std::to_string(i * 7) + "\"\"\nnext\"\r\n";
  }
  // One record much larger than a block.
  std::string big(200000, 'z');
  text += "big,\"" + big + "\",end";

  std::istringstream in(text);
  CsvReader reader(in, opts());
  CsvRecord rec;
  REQUIRE(reader.next(rec));
  CHECK(rec.fields == std::vector<std::string>{"id", "name", "note"});
  CHECK(reader.bytes_read() > 0);
  CHECK(reader.bytes_read() < text.size());
  int count = 0;
  bool all_ok = true;
  while (reader.next(rec)) {
    if (count == n) break;
    std::vector<std::string> expect = {std::to_string(count), "Name, " + std::to_string(count),
                                       "say \"" + std::to_string(count * 7) + "\"\nnext"};
    if (rec.fields != expect || rec.line != 2 + 2 * count) {
      all_ok = false;
      INFO("record " << count << " line " << rec.line << " raw " << rec.raw);
      CHECK(rec.fields == expect);
      break;
    }
    ++count;
  }
  CHECK(all_ok);
  CHECK(count == n);
  CHECK(rec.fields == std::vector<std::string>{"big", big, "end"});
  CHECK(rec.line == 2 + 2 * n);
  CHECK(rec.raw.size() == big.size() + 10);
  CHECK_FALSE(reader.next(rec));
  CHECK(reader.bytes_read() == text.size());
}

TEST_CASE("csv: latin1 file bigger than the buffer") {
  std::string text;
  for (int i = 0; i < 30000; ++i) text += "Jos\xE9," + std::to_string(i) + "\n";
  std::istringstream in(text);
  CsvReader reader(in, opts(',', "latin1"));
  CsvRecord rec;
  int count = 0;
  bool all_ok = true;
  while (reader.next(rec)) {
    if (rec.fields != std::vector<std::string>{"Jos\xC3\xA9", std::to_string(count)})
      all_ok = false;
    ++count;
  }
  CHECK(all_ok);
  CHECK(count == 30000);
  CHECK(reader.bytes_read() == text.size());
}

TEST_CASE("csv: bytes_read counts bytes taken from the stream") {
  std::string text = "a,b\n1,2\n";
  std::istringstream in(text);
  CsvReader reader(in, opts());
  CHECK(reader.bytes_read() == 0);
  CsvRecord rec;
  REQUIRE(reader.next(rec));
  CHECK(reader.bytes_read() == text.size());
  REQUIRE(reader.next(rec));
  CHECK_FALSE(reader.next(rec));
  CHECK(reader.bytes_read() == 8);
}

TEST_CASE("csv: fields vector is reused without stale fields") {
  std::istringstream in("a,b,c,d\nx\n");
  CsvReader reader(in, opts());
  CsvRecord rec;
  REQUIRE(reader.next(rec));
  CHECK(rec.fields.size() == 4);
  REQUIRE(reader.next(rec));
  CHECK(rec.fields == std::vector<std::string>{"x"});
  CHECK(rec.raw == "x");
  CHECK(rec.line == 2);
}
