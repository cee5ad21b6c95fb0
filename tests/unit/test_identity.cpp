// The composite tier key; identity decisions are tested in test_resolver.cpp.
#include <doctest/doctest.h>

#include "handlers/engine/identity/keys.hpp"

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
