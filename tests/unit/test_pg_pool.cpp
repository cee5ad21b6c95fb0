#include <doctest/doctest.h>

#include "daemon/pg_pool.hpp"

using namespace ingestd;

TEST_CASE("PgPool: a refused connection gives its slot back (the next lease tries again, no Busy)") {
  // Port 1 on loopback refuses at once: no server is needed.
  PgPool pool("postgresql://ingestd@127.0.0.1:1/none?connect_timeout=2", 1, std::chrono::milliseconds(50));
  CHECK_THROWS_AS(pool.acquire(), pqxx::broken_connection);
  CHECK_THROWS_AS(pool.acquire(), pqxx::broken_connection);
}

TEST_CASE("reader_pool_size: all of postgres.pool_size but the worker's connection, at least one") {
  config::Config c;
  for (auto [size, readers] : {std::pair{1, 1}, {2, 1}, {4, 3}, {8, 7}}) {
    c.postgres.pool_size = size;
    CHECK(reader_pool_size(c) == size_t(readers));
  }
}
