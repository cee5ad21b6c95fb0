// Unit tests for the JSON Lines reader (handlers/engine/source/jsonl_reader.hpp).
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "handlers/engine/source/jsonl_reader.hpp"

using ingestd::engine::JsonlColumn;
using ingestd::engine::JsonlReader;
using ingestd::engine::Record;

namespace {

using Fields = std::vector<std::string>;

std::vector<JsonlColumn> cols(std::initializer_list<std::vector<std::string>> paths) {
  std::vector<JsonlColumn> c;
  for (const auto& p : paths) c.push_back(JsonlColumn{p});
  return c;
}

std::vector<Record> read_all(const std::string& text, const std::vector<JsonlColumn>& c, size_t max_line = 16u << 20) {
  std::istringstream in(text);
  JsonlReader reader(in, c, max_line);
  std::vector<Record> out;
  Record rec;
  while (reader.next(rec)) out.push_back(rec);
  return out;
}

}  // namespace

TEST_CASE("jsonl: keys and dotted paths fill the columns in header order") {
  const auto c = cols({{"name"}, {"person.email"}, {"person.address.city"}, {"missing"}});
  auto recs = read_all(R"({"name":"Ana","person":{"email":"ana@x.co","address":{"city":"Cali"}}})"
                       "\n"
                       R"({"person":{"email":"b@x.co"},"name":"Bea"})"
                       "\n",
                       c);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].fields == Fields{"Ana", "ana@x.co", "Cali", ""});
  CHECK(recs[1].fields == Fields{"Bea", "b@x.co", "", ""});
  CHECK(recs[1].line == 2);
  CHECK(recs[1].raw == R"({"person":{"email":"b@x.co"},"name":"Bea"})");
  CHECK(recs[0].error.empty());
  std::istringstream none;
  CHECK(JsonlReader(none, c).header() == Fields{"name", "person.email", "person.address.city", "missing"});
}

TEST_CASE("jsonl: a key that holds the dots itself matches the path too") {
  auto recs = read_all(R"({"contact.email":"a@x.co"})"
                       "\n",
                       cols({{"contact.email"}}));
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].fields == Fields{"a@x.co"});
}

TEST_CASE("jsonl: numbers keep their literal text, booleans and null map to text and NULL") {
  const auto c = cols({{"i"}, {"f"}, {"big"}, {"e"}, {"neg"}, {"t"}, {"n"}, {"s"}});
  auto recs = read_all(
      R"({"i":52987654,"f":0.1,"big":123456789012345678901234567890,"e":1.5e3,"neg":-7,"t":true,"n":null,"s":"x"})"
      "\n",
      c);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].fields == Fields{"52987654", "0.1", "123456789012345678901234567890", "1.5e3", "-7", "true", "", "x"});
}

TEST_CASE("jsonl: a nested object or array is kept as its JSON text") {
  const auto c = cols({{"tags"}, {"meta"}, {"meta.k"}});
  auto recs = read_all(R"({"tags":["a","b\"q",1.10,{"x":null}],"meta":{"k":"v","n":[1,2],"f":false}})"
                       "\n",
                       c);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].fields[0] == R"(["a","b\"q",1.10,{"x":null}])");
  CHECK(recs[0].fields[1] == R"({"k":"v","n":[1,2],"f":false})");
  CHECK(recs[0].fields[2] == "v");
}

TEST_CASE("jsonl: paths do not reach into arrays") {
  auto recs = read_all(R"({"list":[{"email":"in@array.co"}],"email":"top@x.co"})"
                       "\n",
                       cols({{"email"}}));
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].fields == Fields{"top@x.co"});
}

TEST_CASE("jsonl: alternative paths: the first present, non-null one wins") {
  const auto c = cols({{"Email", "Correo"}});
  auto recs = read_all(R"({"Correo":"c@x.co"})"
                       "\n"
                       R"({"Correo":"c@x.co","Email":"e@x.co"})"
                       "\n"
                       R"({"Email":null,"Correo":"c@x.co"})"
                       "\n",
                       c);
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].fields == Fields{"c@x.co"});
  CHECK(recs[1].fields == Fields{"e@x.co"});
  CHECK(recs[2].fields == Fields{"c@x.co"});
}

TEST_CASE("jsonl: blank lines are skipped; CRLF, a BOM and a last line without newline are fine") {
  auto recs = read_all("\xEF\xBB\xBF{\"a\":\"1\"}\r\n\r\n   \n{\"a\":\"2\"}\n\n{\"a\":\"3\"}", cols({{"a"}}));
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].fields == Fields{"1"});
  CHECK(recs[0].raw == R"({"a":"1"})");
  CHECK(recs[1].line == 4);
  CHECK(recs[2].fields == Fields{"3"});
  CHECK(recs[2].line == 6);
}

TEST_CASE("jsonl: a bad line is a row error with its line number and reason; the rest reads on") {
  const std::string text =
      "{\"a\":\"1\"}\n"
      "{\"a\": oops}\n"
      "[1,2]\n"
      "\"just a string\"\n"
      "{\"a\":\"2\"} trailing\n"
      "{\"a\":\"\xff\"}\n"
      "{\"a\":\"5\"}\n";
  auto recs = read_all(text, cols({{"a"}}));
  REQUIRE(recs.size() == 7);
  CHECK(recs[0].error.empty());
  CHECK(recs[1].error_code == "invalid_json");
  CHECK(recs[1].error.starts_with("line 2: not valid JSON: column "));
  CHECK(recs[1].raw == "{\"a\": oops}");
  CHECK(recs[2].error_code == "not_an_object");
  CHECK(recs[2].error == "line 3: the line is a JSON array, not an object");
  CHECK(recs[3].error == "line 4: the line is a JSON string, not an object");
  CHECK(recs[4].error_code == "invalid_json");
  CHECK(recs[5].error_code == "invalid_json");  // not UTF-8
  CHECK(recs[6].error.empty());
  CHECK(recs[6].fields == Fields{"5"});
}

TEST_CASE("jsonl: a line over the cap is a row error with its first bytes, and the next line reads") {
  const std::string big = "{\"a\":\"" + std::string(5000, 'x') + "\"}";
  auto recs = read_all("{\"a\":\"1\"}\n" + big + "\n{\"a\":\"2\"}\n" + big, cols({{"a"}}), 1000);
  REQUIRE(recs.size() == 4);
  CHECK(recs[1].error_code == "line_too_long");
  CHECK(recs[1].error == "line 2: 5008 bytes, longer than the limit of 1000 (jsonl.max_line_bytes)");
  CHECK(recs[1].raw.size() < 1100);
  CHECK(recs[2].fields == Fields{"2"});
  CHECK(recs[2].line == 3);
  CHECK(recs[3].error_code == "line_too_long");  // also without a final newline
}

TEST_CASE("jsonl: a line of exactly the cap is read; deep nesting is an error, not a crash") {
  const std::string line = "{\"a\":\"" + std::string(92, 'y') + "\"}";  // 100 bytes
  auto recs = read_all(line + "\n", cols({{"a"}}), 100);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].error.empty());
  std::string deep = "{\"a\":" + std::string(10000, '[') + std::string(10000, ']') + "}\n";
  auto d = read_all(deep, cols({{"a"}}));
  REQUIRE(d.size() == 1);
  CHECK(d[0].error == "line 1: nested deeper than 256 levels");
}
