// Unit tests for normalizers and typed parsing (handlers/engine/normalize.hpp).
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "handlers/engine/normalize.hpp"

using ingestd::config::FieldType;
using ingestd::config::Normalizer;
using ingestd::engine::normalize;
using ingestd::engine::Normalized;
using ingestd::engine::parse_typed;
using ingestd::engine::Parsed;

namespace {

using Kind = Normalizer::Kind;

Normalizer norm(Kind kind) {
  Normalizer n;
  n.kind = kind;
  return n;
}

Normalizer phone(const std::string& region, bool reject = true) {
  Normalizer n;
  n.kind = Kind::Phone;
  n.phone_region = region;
  n.invalid_reject = reject;
  return n;
}

void check_value(const Normalized& r, const std::string& value, const std::string& key) {
  CHECK(r.error == "");
  REQUIRE(r.value.has_value());
  REQUIRE(r.key.has_value());
  CHECK(*r.value == value);
  CHECK(*r.key == key);
}

void check_same(const Normalized& r, const std::string& value) { check_value(r, value, value); }

void check_missing(const Normalized& r) {
  CHECK(r.error == "");
  CHECK_FALSE(r.value.has_value());
  CHECK_FALSE(r.key.has_value());
}

Parsed parse(FieldType t, const std::string& v, std::vector<std::string> formats = {}) {
  return parse_typed(t, formats, std::optional<std::string>(v));
}

void check_parsed(const Parsed& p, const std::string& value) {
  CHECK(p.error == "");
  REQUIRE(p.value.has_value());
  CHECK(*p.value == value);
}

void check_error(const Parsed& p, const std::string& error) {
  CHECK_FALSE(p.value.has_value());
  CHECK(p.error == error);
}

void check_fails(const Parsed& p) {
  CHECK_FALSE(p.value.has_value());
  CHECK(p.error != "");
}

}  // namespace

// ---- normalizers ------------------------------------------------------------------------

TEST_CASE("normalize trim: ASCII and Unicode whitespace") {
  check_same(normalize(norm(Kind::Trim), "  hello world \t\r\n"), "hello world");
  // NBSP, ideographic space, em space, zero-width space, BOM
  check_same(normalize(norm(Kind::Trim), "\xC2\xA0\xE3\x80\x80" "abc\xE2\x80\x83\xE2\x80\x8B\xEF\xBB\xBF"),
             "abc");
  check_same(normalize(norm(Kind::Trim), "Jos\xC3\xA9"), "Jos\xC3\xA9");
  check_missing(normalize(norm(Kind::Trim), ""));
  check_missing(normalize(norm(Kind::Trim), "   \t "));
  check_missing(normalize(norm(Kind::Trim), "\xC2\xA0\xC2\xA0"));
}

TEST_CASE("normalize trim: default normalizer kind is trim") {
  Normalizer n;
  CHECK(n.kind == Kind::Trim);
  check_same(normalize(n, " x "), "x");
}

TEST_CASE("normalize none: value kept as is, blank is missing") {
  check_same(normalize(norm(Kind::None), "  a b  "), "  a b  ");
  check_missing(normalize(norm(Kind::None), ""));
  check_missing(normalize(norm(Kind::None), "  "));
}

TEST_CASE("normalize digits") {
  check_same(normalize(norm(Kind::Digits), "1.234.567"), "1234567");
  check_same(normalize(norm(Kind::Digits), " CC 79-845.123 "), "79845123");
  check_missing(normalize(norm(Kind::Digits), "n/a"));
  check_missing(normalize(norm(Kind::Digits), ""));
  Normalizer n = norm(Kind::Digits);
  n.min_digits = 6;
  check_missing(normalize(n, "12.345"));
  check_same(normalize(n, "123.456"), "123456");
}

TEST_CASE("normalize email") {
  check_same(normalize(norm(Kind::Email), "  Ana.Perez@Example.COM "), "ana.perez@example.com");
  check_same(normalize(norm(Kind::Email), "a@b.co"), "a@b.co");
  check_missing(normalize(norm(Kind::Email), "   "));
  for (const char* bad : {"ana", "ana@", "@example.com", "ana@@example.com", "a@b@example.com",
                          "ana@example", "ana@.example.com", "ana@example.com.",
                          "ana perez@example.com", "ana@exa mple.com"}) {
    INFO(bad);
    Normalized r = normalize(norm(Kind::Email), bad);
    CHECK(r.error == "invalid email");
    CHECK_FALSE(r.value.has_value());
    CHECK_FALSE(r.key.has_value());
  }
}

TEST_CASE("normalize phone: Colombian numbers in several forms") {
  for (const char* raw : {"300 123 4567", "(300) 1234567", "+57 300-123-4567", "573001234567",
                          "3001234567", " 300.123.4567 "}) {
    INFO(raw);
    check_same(normalize(phone("CO"), raw), "+573001234567");
  }
  // A number with its own country code is kept in that country.
  check_same(normalize(phone("CO"), "+1 650-253-0000"), "+16502530000");
}

TEST_CASE("normalize phone: invalid numbers rejected or nulled as configured") {
  Normalized r = normalize(phone("CO"), "12345");
  CHECK(r.error == "invalid phone number for region CO");
  CHECK_FALSE(r.value.has_value());
  r = normalize(phone("CO"), "not a phone");
  CHECK(r.error == "invalid phone number for region CO");
  check_missing(normalize(phone("CO", false), "12345"));
  check_missing(normalize(phone("CO", false), "abc"));
  check_missing(normalize(phone("CO"), "  "));
}

TEST_CASE("normalize name: title case value, folded accent-free key") {
  check_value(normalize(norm(Kind::Name), "JOS\xC3\x89  GARC\xC3\x8D" "A"),
              "Jos\xC3\xA9 Garc\xC3\xAD" "a", "jose garcia");
  check_value(normalize(norm(Kind::Name), "jose garcia"), "Jose Garcia", "jose garcia");
  check_value(normalize(norm(Kind::Name), "Jos\xC3\xA9 Garc\xC3\xAD" "a"),
              "Jos\xC3\xA9 Garc\xC3\xAD" "a", "jose garcia");
  check_value(normalize(norm(Kind::Name), " \t mar\xC3\xAD" "a-jos\xC3\xA9 \xC2\xA0 NU\xC3\x91" "EZ "),
              "Mar\xC3\xAD" "a-Jos\xC3\xA9 Nu\xC3\xB1" "ez", "maria-jose nunez");
  check_value(normalize(norm(Kind::Name), "STRA\xC3\x9F" "E"), "Stra\xC3\x9F" "e", "strasse");
  check_missing(normalize(norm(Kind::Name), "   "));
}

TEST_CASE("normalize name: keys match across spellings on several threads") {
  std::vector<std::string> keys(4);
  std::vector<std::thread> threads;
  const char* inputs[] = {"JOS\xC3\x89  GARC\xC3\x8D" "A", "jose garcia", "Jos\xC3\xA9 Garc\xC3\xAD" "a",
                          "  jos\xC3\xA9\tgarc\xC3\xAD" "a "};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) keys[i] = normalize(norm(Kind::Name), inputs[i]).key.value_or("");
    });
  for (auto& t : threads) t.join();
  for (const auto& k : keys) CHECK(k == "jose garcia");
}

TEST_CASE("normalize name: a name seen before gives the same value and key, also after many others") {
  // each thread keeps the names it has normalized (bounded, emptied when full)
  const char* raw = "JOS\xC3\x89  GARC\xC3\x8D" "A";
  for (int round = 0; round < 2; ++round) {
    check_value(normalize(norm(Kind::Name), raw), "Jos\xC3\xA9 Garc\xC3\xAD" "a", "jose garcia");
    check_value(normalize(norm(Kind::Name), "jos\xC3\xA9 garc\xC3\xAD" "a"), "Jos\xC3\xA9 Garc\xC3\xAD" "a",
                "jose garcia");
    for (int i = 0; i < 20000; ++i) {  // more distinct names than it keeps
      const std::string name = "\xC3\x81lvaro " + std::to_string(i);
      const auto n = normalize(norm(Kind::Name), name);
      REQUIRE(n.key == std::optional<std::string>("alvaro " + std::to_string(i)));
    }
  }
  check_value(normalize(norm(Kind::Name), "STRA\xC3\x9F" "E"), "Stra\xC3\x9F" "e", "strasse");
  check_value(normalize(norm(Kind::Name), "stra\xC3\x9F" "e"), "Stra\xC3\x9F" "e", "strasse");
}

TEST_CASE("name_key of a stored value: the name normalizer's key, plain ASCII names without ICU") {
  // the fast path's edges (spaces, tabs, DEL, quotes, punctuation) and values that must leave it
  const char* values[] = {"Smith",       "SMITH",         "van der Berg", "O'Brien",  "Anne-Marie", "MacDONALD",
                          "a b",          "x~!",          "Jos\xC3\xA9",  "STRA\xC3\x9F" "E", " Ana", "Ana ",
                          "Ana  Lopez",   "Ana\tLopez",   "Ana\x7f",      "\xC2\xA0" "Ana", "ZO\xC3\x8B", "  ",
                          "",             "Z",            "@#$",          "ANA LOPEZ"};
  for (const char* v : values) {
    CAPTURE(v);
    CHECK(ingestd::engine::name_key(v) == normalize(norm(Kind::Name), v).key);
  }
  CHECK(ingestd::engine::name_key("van der BERG") == std::optional<std::string>("van der berg"));
  CHECK_FALSE(ingestd::engine::name_key("   ").has_value());
}

TEST_CASE("normalize upper and lower: full Unicode case mapping after trim") {
  check_same(normalize(norm(Kind::Upper), "  jos\xC3\xA9 stra\xC3\x9F" "e "), "JOS\xC3\x89 STRASSE");
  check_same(normalize(norm(Kind::Lower), " JOS\xC3\x89 \xC3\x91" "U\xC3\x91" "EZ "),
             "jos\xC3\xA9 \xC3\xB1u\xC3\xB1" "ez");
  check_missing(normalize(norm(Kind::Upper), ""));
  check_missing(normalize(norm(Kind::Lower), " "));
}

// ---- typed parsing ----------------------------------------------------------------------

TEST_CASE("parse: nullopt stays NULL without error for every type") {
  for (auto t : {FieldType::Text, FieldType::Int, FieldType::BigInt, FieldType::Numeric,
                 FieldType::Bool, FieldType::Date, FieldType::Timestamp, FieldType::Json}) {
    Parsed p = parse_typed(t, {}, std::nullopt);
    CHECK_FALSE(p.value.has_value());
    CHECK(p.error == "");
  }
}

TEST_CASE("parse text") {
  check_parsed(parse(FieldType::Text, " any thing 1.0 "), " any thing 1.0 ");
}

TEST_CASE("parse int") {
  check_parsed(parse(FieldType::Int, "42"), "42");
  check_parsed(parse(FieldType::Int, "-17"), "-17");
  check_parsed(parse(FieldType::Int, "+8"), "8");
  check_parsed(parse(FieldType::Int, "007"), "7");
  check_parsed(parse(FieldType::Int, "2147483647"), "2147483647");
  check_parsed(parse(FieldType::Int, "-2147483648"), "-2147483648");
  check_error(parse(FieldType::Int, "2147483648"),
              "\"2147483648\" is out of range for int (-2147483648 to 2147483647)");
  check_error(parse(FieldType::Int, "1.0"),
              "\"1.0\" is not an integer (an optional sign and digits only)");
  check_fails(parse(FieldType::Int, "12a"));
  check_fails(parse(FieldType::Int, ""));
  check_fails(parse(FieldType::Int, "-"));
  check_fails(parse(FieldType::Int, " 1"));
  check_fails(parse(FieldType::Int, "1e3"));
}

TEST_CASE("parse bigint") {
  check_parsed(parse(FieldType::BigInt, "9223372036854775807"), "9223372036854775807");
  check_parsed(parse(FieldType::BigInt, "-9223372036854775808"), "-9223372036854775808");
  check_parsed(parse(FieldType::BigInt, "3000000000"), "3000000000");
  check_error(parse(FieldType::BigInt, "9223372036854775808"),
              "\"9223372036854775808\" is out of range for bigint (-9223372036854775808 to "
              "9223372036854775807)");
  check_fails(parse(FieldType::BigInt, "99999999999999999999999"));
  check_fails(parse(FieldType::BigInt, "12a"));
  check_fails(parse(FieldType::BigInt, "1.0"));
}

TEST_CASE("parse numeric") {
  check_parsed(parse(FieldType::Numeric, "3.14"), "3.14");
  check_parsed(parse(FieldType::Numeric, "3,14"), "3.14");
  check_parsed(parse(FieldType::Numeric, "-0,5"), "-0.5");
  check_parsed(parse(FieldType::Numeric, "+12"), "+12");
  check_parsed(parse(FieldType::Numeric, "1.5e-3"), "1.5e-3");
  check_parsed(parse(FieldType::Numeric, "2E10"), "2e10");
  check_parsed(parse(FieldType::Numeric, ".5"), ".5");
  check_parsed(parse(FieldType::Numeric, "123456789012345678901234567890.123"),
               "123456789012345678901234567890.123");
  check_error(parse(FieldType::Numeric, "1.234,56"),
              "\"1.234,56\" is not a number (digits with an optional sign, one '.' or ',' as "
              "decimal separator and an optional exponent)");
  for (const char* bad : {"", ".", "-", "1.2.3", "1e", "1e+", "abc", "12a", "NaN", "1 000",
                          "Infinity"}) {
    INFO(bad);
    check_fails(parse(FieldType::Numeric, bad));
  }
}

TEST_CASE("parse bool") {
  for (const char* t : {"true", "TRUE", "t", "T", "yes", "Yes", "y", "1", "si", "SI",
                        "s\xC3\xAD", "S\xC3\x8D"}) {
    INFO(t);
    check_parsed(parse(FieldType::Bool, t), "t");
  }
  for (const char* f : {"false", "False", "f", "no", "NO", "n", "0"}) {
    INFO(f);
    check_parsed(parse(FieldType::Bool, f), "f");
  }
  check_error(parse(FieldType::Bool, "maybe"),
              "\"maybe\" is not a boolean (true/false, t/f, yes/no, y/n, si/no, 1/0)");
  check_fails(parse(FieldType::Bool, "2"));
  check_fails(parse(FieldType::Bool, ""));
}

TEST_CASE("parse date") {
  const std::vector<std::string> co = {"%d/%m/%Y", "%Y-%m-%d"};
  check_parsed(parse(FieldType::Date, "2024-02-29"), "2024-02-29");
  check_parsed(parse(FieldType::Date, "15/03/1990", co), "1990-03-15");
  check_parsed(parse(FieldType::Date, "1990-03-15", co), "1990-03-15");
  check_parsed(parse(FieldType::Date, "5/3/1990", co), "1990-03-05");
  check_error(parse(FieldType::Date, "31/02/2024", co),
              "\"31/02/2024\" is not a date in formats %d/%m/%Y, %Y-%m-%d");
  check_error(parse(FieldType::Date, "2023-02-29"),
              "\"2023-02-29\" is not a date in formats %Y-%m-%d");
  check_fails(parse(FieldType::Date, "2024-13-01"));
  check_fails(parse(FieldType::Date, "2024-04-31"));
  check_fails(parse(FieldType::Date, "2024-01-01x"));        // full match required
  check_fails(parse(FieldType::Date, "2024-01-01 10:00"));   // full match required
  check_fails(parse(FieldType::Date, "15/03/1990"));         // not in the default format
  check_fails(parse(FieldType::Date, "yesterday", co));
  check_fails(parse(FieldType::Date, ""));
}

TEST_CASE("parse timestamp") {
  check_parsed(parse(FieldType::Timestamp, "2024-03-05 14:30:00"), "2024-03-05 14:30:00");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05T14:30:00"), "2024-03-05 14:30:00");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05T14:30:00Z"), "2024-03-05 14:30:00+00:00");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05T14:30:00-05:00"),
               "2024-03-05 14:30:00-05:00");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05 14:30:00+0530"),
               "2024-03-05 14:30:00+05:30");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05T14:30:00.250Z"),
               "2024-03-05 14:30:00.250+00:00");
  check_parsed(parse(FieldType::Timestamp, "05/03/2024 14:30", {"%d/%m/%Y %H:%M"}),
               "2024-03-05 14:30:00");
  check_parsed(parse(FieldType::Timestamp, "05/03/2024", {"%d/%m/%Y"}), "2024-03-05 00:00:00");
  check_parsed(parse(FieldType::Timestamp, "2024-03-05 14:30:00 -0300", {"%Y-%m-%d %H:%M:%S %z"}),
               "2024-03-05 14:30:00-03:00");
  check_error(parse(FieldType::Timestamp, "2024-02-30 10:00:00"),
              "\"2024-02-30 10:00:00\" is not a timestamp in formats %Y-%m-%d %H:%M:%S, "
              "%Y-%m-%dT%H:%M:%S (optionally followed by Z or +HH:MM)");
  check_fails(parse(FieldType::Timestamp, "2024-03-05"));
  check_fails(parse(FieldType::Timestamp, "2024-03-05 24:00:00"));
  check_fails(parse(FieldType::Timestamp, "2024-03-05 10:00:00+"));
  check_fails(parse(FieldType::Timestamp, "2024-03-05 10:00:00+5"));
  check_fails(parse(FieldType::Timestamp, "2024-03-05 10:00:00 junk"));
  check_fails(parse(FieldType::Timestamp, "2024-03-05 10:00:00Zz"));
}

TEST_CASE("parse json") {
  check_parsed(parse(FieldType::Json, "{\"a\": [1, 2]}"), "{\"a\": [1, 2]}");
  check_parsed(parse(FieldType::Json, "42"), "42");
  check_parsed(parse(FieldType::Json, "\"x\""), "\"x\"");
  Parsed p = parse(FieldType::Json, "{\"a\": ");
  CHECK_FALSE(p.value.has_value());
  CHECK(p.error.rfind("\"{\"a\": \" is not valid JSON: ", 0) == 0);
  check_fails(parse(FieldType::Json, "{a: 1}"));
  check_fails(parse(FieldType::Json, ""));
}

TEST_CASE("parse: long values are shortened in error messages") {
  std::string v(200, '9');
  v += "x";
  Parsed p = parse(FieldType::Int, v);
  CHECK(p.error == "\"" + std::string(80, '9') + "...\" (201 bytes) is not an integer (an optional sign and "
                   "digits only)");
}
