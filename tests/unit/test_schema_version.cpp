// What a read-only command says about the bookkeeping schema it finds (daemon/schema.hpp).
#include <doctest/doctest.h>

#include "daemon/schema.hpp"

using namespace ingestd;

TEST_CASE("the compiled-in migrations end at the version read-only commands expect") {
  REQUIRE_FALSE(schema_migrations().empty());
  SchemaVersion v{schema_migrations().back().version, schema_migrations().back().version};
  CHECK_FALSE(v.behind());
  v.applied -= 1;
  CHECK(v.behind());
}

TEST_CASE("an older schema is named with both versions and what migrates it") {
  const std::string m = schema_behind_message("status", "ingestd", {5, 7});
  CHECK(m.rfind("ingestd status: the bookkeeping schema ingestd is at version 5, this binary expects 7: ", 0) == 0);
  CHECK(m.find("`ingestd run`") != std::string::npos);
  CHECK(m.find("never migrates") != std::string::npos);
}

TEST_CASE("an absent schema is said to be absent, not version 0") {
  const std::string m = schema_behind_message("review list", "books", {0, 7});
  CHECK(m.find("ingestd review list: the bookkeeping schema books does not exist yet") == 0);
  CHECK(m.find("version 0") == std::string::npos);
  CHECK(m.find("expects version 7") != std::string::npos);
}
