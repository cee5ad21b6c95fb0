// Identity resolution in input order: tiers, conflicts, review, and the property that cutting
// the input into chunks changes nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "handlers/engine/identity/resolver.hpp"

using namespace ingestd::engine;
using K = std::optional<std::string>;
using Kind = RowDecision::Kind;

TEST_CASE("resolver: rows sharing a key at any tier land on one record, transitively") {
  // cedula, email: 0 and 1 share cedula; 1 and 2 share email -> one person; 3 is another
  auto r = resolve_rows({{K("1"), K("a@x")}, {K("1"), K("b@x")}, {std::nullopt, K("b@x")}, {K("9"), K("z@x")}}, {}, 2);
  REQUIRE(r.rows.size() == 4);
  CHECK(r.rows[0].kind == Kind::New);
  CHECK(r.rows[0].founds);
  CHECK(r.rows[1].kind == Kind::Match);
  CHECK(r.rows[1].record == r.rows[0].record);
  CHECK(r.rows[1].tier == 1);
  CHECK(r.rows[2].record == r.rows[0].record);
  CHECK(r.rows[2].tier == 2);
  CHECK(r.rows[3].kind == Kind::New);
  CHECK(r.records.size() == 2);
}

TEST_CASE("resolver: different cedulas sharing an email are two people") {
  auto r = resolve_rows({{K("55666777"), K("shared@x")}, {K("88999000"), K("shared@x")}}, {}, 2);
  CHECK(r.rows[1].kind == Kind::New);
  CHECK(r.rows[0].record != r.rows[1].record);
}

TEST_CASE("resolver: a row only with an email two people share goes to review naming both") {
  auto r = resolve_rows({{K("1"), K("shared@x")}, {K("2"), K("shared@x")}, {std::nullopt, K("shared@x")}}, {}, 2);
  REQUIRE(r.rows[2].kind == Kind::Review);
  REQUIRE(r.rows[2].candidates.size() == 2);
  CHECK(r.rows[2].candidates[0] == std::make_pair(r.rows[0].record, 2));
  CHECK(r.rows[2].candidates[1] == std::make_pair(r.rows[1].record, 2));
  CHECK(r.records.size() == 2);  // review changes nothing
}

TEST_CASE("resolver: known records are found by their keys and blocked by conflicting ones") {
  std::vector<KnownRecord> known{{"10", {{"1"}, {"a@x"}}}, {"11", {{}, {"b@x"}}}};
  auto r = resolve_rows({{K("1"), std::nullopt}, {K("2"), K("a@x")}, {K("3"), K("b@x")}}, known, 2);
  CHECK(r.rows[0].kind == Kind::Match);
  CHECK(r.records[size_t(r.rows[0].record)].known == 0);
  CHECK(r.rows[1].kind == Kind::New);  // record 10 holds cedula 1: cedula 2 is someone else
  CHECK(r.rows[2].kind == Kind::Match);  // record 11 has no cedula: the email decides
  CHECK(r.records[size_t(r.rows[2].record)].known == 1);
  CHECK(r.rows[2].tier == 2);
}

TEST_CASE("resolver: a key learned from an earlier row conflicts like one held before") {
  // row 0 gives record 10 cedula 1 (it had none); row 1 then may not join it by email with cedula 2
  std::vector<KnownRecord> known{{"10", {{}, {"a@x"}}}};
  auto r = resolve_rows({{K("1"), K("a@x")}, {K("2"), K("a@x")}}, known, 2);
  CHECK(r.rows[0].kind == Kind::Match);
  CHECK(r.rows[1].kind == Kind::New);
}

namespace {

struct Outcome {
  Kind kind;
  int person;  // canonical record number (order of creation or known index), -1 for review
  int tier;
  bool operator==(const Outcome& o) const { return kind == o.kind && person == o.person && tier == o.tier; }
};

// Resolves the rows `chunk` at a time, carrying what each chunk learned into the next as
// known records (as the database would hold them), and names records by creation order.
std::vector<Outcome> resolve_in_chunks(const std::vector<TierKeys>& rows, size_t chunk, size_t tiers) {
  std::vector<KnownRecord> db;  // id = creation number
  std::vector<Outcome> out;
  for (size_t b = 0; b < rows.size(); b += chunk) {
    std::vector<TierKeys> part(rows.begin() + long(b), rows.begin() + long(std::min(rows.size(), b + chunk)));
    auto res = resolve_rows(part, db, tiers);
    std::vector<int> number(res.records.size());
    for (size_t r = 0; r < res.records.size(); ++r) {
      if (res.records[r].known >= 0) {
        number[r] = res.records[r].known;
      } else {
        number[r] = int(db.size());
        db.push_back({std::to_string(db.size()), std::vector<std::vector<std::string>>(tiers)});
      }
    }
    for (size_t i = 0; i < part.size(); ++i) {
      const auto& d = res.rows[i];
      if (d.kind == Kind::Review) {
        out.push_back({d.kind, -1, 0});
        continue;
      }
      auto& rec = db[size_t(number[size_t(d.record)])];
      for (size_t t = 0; t < tiers; ++t)
        if (part[i][t] && std::find(rec.keys[t].begin(), rec.keys[t].end(), *part[i][t]) == rec.keys[t].end())
          rec.keys[t].push_back(*part[i][t]);
      out.push_back({d.kind, number[size_t(d.record)], d.tier});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("resolver: the outcome does not depend on the chunk size") {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    // few values per tier, many missing: collisions, conflicts and ambiguity on purpose
    std::vector<TierKeys> rows(40, TierKeys(3));
    for (auto& row : rows)
      for (size_t t = 0; t < 3; ++t)
        if (rng() % 3) row[t] = std::to_string(rng() % (4 + 3 * t));
    const auto whole = resolve_in_chunks(rows, rows.size(), 3);
    for (size_t chunk : {1, 2, 7, 13}) CHECK(resolve_in_chunks(rows, chunk, 3) == whole);
  }
}
