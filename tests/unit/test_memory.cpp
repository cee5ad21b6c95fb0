// Identity memory: after a chunk merges, the keys a record carried but does not hold in its own
// columns (DESIGN §4 identity_keys).
#include <doctest/doctest.h>

#include "config/loader.hpp"
#include "handlers/engine/identity/memory.hpp"
#include "handlers/engine/identity/tier_sql.hpp"

using namespace ingestd;
using namespace ingestd::engine;
using K = std::optional<std::string>;

namespace {

/// One entity `person` of a dataset `d` with these identity tiers and fields (YAML flow text).
config::Config person(const std::string& identity, const std::string& fields) {
  return config::load_config_text("postgres: {url: postgresql://localhost/app}\ndatasets: {d: {entities: {person: "
                                  "{table: persons, identity: " + identity + ", fields: " + fields + "}}}}\n",
                                  "t.yaml");
}

config::Config people(const std::string& email_merge) {
  return person("[[cedula], [email]]",
                "{cedula: {column: cedula, from: C}, email: {column: email, from: E, merge: " + email_merge + "}}");
}

/// Each row's tier keys, and the rows as the resolver takes them.
std::pair<std::vector<TierKeys>, std::vector<const FieldKeys*>> keyed(const Matcher& matcher,
                                                                      const std::vector<FieldKeys>& rows) {
  std::pair<std::vector<TierKeys>, std::vector<const FieldKeys*>> out;
  for (const auto& r : rows) {
    out.first.push_back(matcher.keys(r));
    out.second.push_back(&r);
  }
  return out;
}

struct Case {
  config::Config cfg;
  std::unique_ptr<Matcher> matcher;
  explicit Case(const std::string& merge) : cfg(people(merge)) {
    matcher = make_matcher(cfg.datasets.at("d").entities[0], {}, {});
  }
  const config::Entity& entity() const { return cfg.datasets.at("d").entities[0]; }
  RecordKeys run(const std::vector<FieldKeys>& rows, const std::vector<KnownState>& known,
                 const std::vector<KnownRecord>& records) {
    const auto [tk, ptrs] = keyed(*matcher, rows);
    res = resolve_rows(tk, records, 2);
    return record_keys(entity(), *matcher, res, ptrs, tk, known);
  }
  Resolution res;
};

/// People found by e-mail, then by name + birth date; `name_merge`: the name's merge policy.
config::Config named_people(const std::string& name_merge) {
  return person("[[email], [name, birth]]", "{email: {column: email, from: E}, name: {column: name, from: N, merge: " +
                                                name_merge + "}, birth: {column: birth, from: B}}");
}

}  // namespace

TEST_CASE("memory: the second e-mail fill_nulls did not store is remembered, the stored one is not") {
  Case c("fill_nulls");
  std::vector<KnownState> known{{{K("1"), K("a@x")}, {{}, {}}}};
  std::vector<KnownRecord> records{{"10", {{"1"}, {"a@x"}}}};
  auto k = c.run({{K("1"), K("b@x")}, {K("1"), K("a@x")}}, known, records);
  REQUIRE(k.remember.size() == 1);
  CHECK(k.remember[0].tier == 2);
  CHECK(k.remember[0].key == "b@x");
}

TEST_CASE("memory: the value an overwrite replaced is remembered") {
  Case c("overwrite");
  std::vector<KnownState> known{{{K("1"), K("a@x")}, {{}, {}}}};
  std::vector<KnownRecord> records{{"10", {{"1"}, {"a@x"}}}};
  auto k = c.run({{K("1"), K("b@x")}}, known, records);
  REQUIRE(k.remember.size() == 1);
  CHECK(k.remember[0].key == "a@x");
}

TEST_CASE("memory: nothing already remembered or held is written again; a new record holds its first values") {
  Case c("fill_nulls");
  std::vector<KnownState> known{{{K("1"), K("a@x")}, {{}, {"b@x"}}}};
  std::vector<KnownRecord> records{{"10", {{"1"}, {"a@x", "b@x"}}}};
  auto k = c.run({{K("1"), K("b@x")}, {K("2"), K("c@x")}, {K("2"), K("d@x")}}, known, records);
  REQUIRE(k.remember.size() == 1);  // only the new record's second e-mail
  CHECK(k.remember[0].record == 1);
  CHECK(k.remember[0].key == "d@x");
  CHECK(k.held_tier[1] == 1);
}

TEST_CASE("memory: a key a record comes to hold by a filled value finds it later in the same chunk") {
  // Ana (e-mail a@x, no birth date), then Anna with the same e-mail and a birth date: fill_nulls
  // keeps the name Ana and fills the date, so the record now holds ana + 1990-01-01 in its own
  // columns. A third row with only that name and date must find it, as the target's index would
  // in the next chunk: not become a second person.
  auto cfg = named_people("fill_nulls");
  const auto& entity = cfg.datasets.at("d").entities[0];
  auto matcher = make_matcher(entity, {}, {});
  const std::vector<FieldKeys> rows{{K("a@x"), K("ana"), std::nullopt},
                                    {K("a@x"), K("anna"), K("1990-01-01")},
                                    {std::nullopt, K("ana"), K("1990-01-01")}};
  const auto [tk, ptrs] = keyed(*matcher, rows);
  const std::vector<KnownState> none;
  RecordHoldings holdings(entity, *matcher, none, ptrs);
  auto res = resolve_rows(tk, {}, 2, nullptr, &holdings);
  CHECK(res.records.size() == 1);
  CHECK(res.rows[2].kind == RowDecision::Kind::Match);
  CHECK(res.rows[2].tier == 2);
  // the same third row in a chunk of its own, against the record as stored: the same outcome
  const std::vector<KnownState> stored{{{K("a@x"), K("ana"), K("1990-01-01")}, {{}, {"anna\x1f" "1990-01-01"}}}};
  const std::vector<KnownRecord> known{{"1", {{"a@x"}, {matcher->keys(stored[0].own)[1].value(), "anna\x1f" "1990-01-01"}}}};
  const std::vector<const FieldKeys*> third{&rows[2]};
  RecordHoldings later(entity, *matcher, stored, third);
  auto alone = resolve_rows({tk[2]}, known, 2, nullptr, &later);
  CHECK(alone.rows[0].kind == RowDecision::Kind::Match);
  CHECK(alone.rows[0].tier == 2);
  // without the holdings the chunk would have made her twice
  CHECK(resolve_rows(tk, {}, 2).records.size() == 2);
}

TEST_CASE("memory: a composite key a record held between two rows, then lost to an overwrite, is remembered") {
  // Ana by e-mail, then her birth date by the same e-mail (the record now holds ana + date), then
  // the same e-mail with the name Maria, which overwrites: the record ends on maria + date. Rows
  // of this chunk after the second found her by ana + date; a later chunk's must too.
  auto cfg = named_people("overwrite");
  const auto& entity = cfg.datasets.at("d").entities[0];
  auto matcher = make_matcher(entity, {}, {});
  const std::vector<FieldKeys> rows{{K("a@x"), K("ana"), std::nullopt},
                                    {K("a@x"), std::nullopt, K("1990-01-01")},
                                    {K("a@x"), K("maria"), std::nullopt}};
  const auto [tk, ptrs] = keyed(*matcher, rows);
  const std::vector<KnownState> none;
  RecordHoldings holdings(entity, *matcher, none, ptrs);
  auto res = resolve_rows(tk, {}, 2, nullptr, &holdings);
  REQUIRE(res.records.size() == 1);
  auto k = record_keys(entity, *matcher, res, ptrs, tk, none);
  REQUIRE(k.remember.size() == 1);
  CHECK(k.remember[0].tier == 2);
  CHECK(k.remember[0].key == "ana\x1f" "1990-01-01");
  CHECK(k.held_tier[0] == 1);
}
