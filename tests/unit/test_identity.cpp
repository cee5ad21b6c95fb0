#include <doctest/doctest.h>

#include "handlers/engine/identity/grouping.hpp"

using namespace ingestd::engine;
using K = std::optional<std::string>;

TEST_CASE("composite_keys: a tier applies only when all its fields are present") {
  std::vector<std::vector<int>> tiers{{0}, {1}, {2, 3}};
  auto k = composite_keys({K("123"), std::nullopt, K("ana"), K("1990-01-01")}, tiers);
  REQUIRE(k.size() == 3);
  CHECK(k[0] == K("123"));
  CHECK(!k[1]);
  CHECK(k[2] == K(std::string("ana\x1f") + "1990-01-01"));
  auto partial = composite_keys({std::nullopt, std::nullopt, K("ana"), std::nullopt}, tiers);
  CHECK(!partial[2]);
}

TEST_CASE("group_rows: rows sharing a key at any tier become one group, transitively") {
  // rows: 0 and 1 share cedula; 1 and 2 share email -> all one person
  std::vector<std::vector<K>> keys{{K("1"), K("a@x")}, {K("1"), K("b@x")}, {std::nullopt, K("b@x")}, {K("9"), K("z@x")}};
  auto g = group_rows(keys, 2);
  CHECK(g.group[0] == g.group[1]);
  CHECK(g.group[1] == g.group[2]);
  CHECK(g.group[3] != g.group[0]);
  CHECK(g.join_tier[0] == 0);
  CHECK(g.join_tier[1] == 1);
  CHECK(g.join_tier[2] == 2);
}

TEST_CASE("group_rows: different cedulas sharing an email stay two people") {
  std::vector<std::vector<K>> keys{{K("55666777"), K("shared@x")}, {K("88999000"), K("shared@x")}};
  auto g = group_rows(keys, 2);
  CHECK(g.group[0] != g.group[1]);
}

TEST_CASE("group_rows: a row without a cedula joins the first compatible holder of its email") {
  std::vector<std::vector<K>> keys{{K("1"), K("shared@x")}, {K("2"), K("shared@x")}, {std::nullopt, K("shared@x")}};
  auto g = group_rows(keys, 2);
  CHECK(g.group[0] != g.group[1]);
  CHECK(g.group[2] == g.group[0]);
}

TEST_CASE("group_rows: conflict is judged on the whole group, not the single row") {
  // row 2 has no cedula but shares email with row 0 (cedula 1) and phone with row 1 (cedula 2):
  // it joins row 0 by email (tier 2); row 1 may not join that group by phone (tier 3)
  std::vector<std::vector<K>> keys{{K("1"), K("a@x"), std::nullopt},
                                   {K("2"), std::nullopt, K("+57300")},
                                   {std::nullopt, K("a@x"), K("+57300")}};
  auto g = group_rows(keys, 3);
  CHECK(g.group[2] == g.group[0]);
  CHECK(g.group[1] != g.group[0]);
}
