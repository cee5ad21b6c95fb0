#include <doctest/doctest.h>

#include "daemon/inbox.hpp"
#include "handlers/engine/errors.hpp"

using namespace ingestd;

TEST_CASE("a result stays under kMaxResultBytes: errors keep their first entries, shortened") {
  Event ev;
  ev.event_id = "e1";
  ev.type = "file.arrived";
  Outcome o = Outcome::failed("first");
  for (int i = 0; i < 5000; ++i) o.errors.push_back("row " + std::to_string(i) + ": " + std::string(2000, 'x'));
  const auto r = result_message(ev, o, 1.5);
  CHECK(r.dump().size() <= kMaxResultBytes);
  CHECK(r["errors_truncated_from"] == o.errors.size());
  REQUIRE(r["errors"].size() > 100);
  CHECK(r["errors"][0] == "first");
  CHECK(r["errors"][1].get<std::string>().rfind("row 0: xxx", 0) == 0);
  CHECK(r["errors"][1].get<std::string>().size() < 1100);  // each shortened to an excerpt
  CHECK(r["event_id"] == "e1");
}

TEST_CASE("a small result is left whole") {
  Event ev;
  ev.event_id = "e2";
  Outcome o = Outcome::failed("only");
  const auto r = result_message(ev, o, 0);
  CHECK(r["errors"] == nlohmann::json::array({"only"}));
  CHECK_FALSE(r.contains("errors_truncated_from"));
}

TEST_CASE("a batch's reason drops the value a data exception quotes, and keeps other messages") {
  engine::DbError e;
  e.sqlstate = "22P02";
  e.message = "ERROR:  invalid input syntax for type integer: \"12345678-ana@example.com\"";
  CHECK(engine::without_value(e) == "ERROR:  invalid input syntax for type integer: (value not shown)");
  e.sqlstate = "23514";
  e.message = "ERROR:  new row for relation \"persons\" violates check constraint \"cedula_ok\"";
  CHECK(engine::without_value(e) == e.message);  // names, not values
  e.sqlstate = "22001";
  e.message = "ERROR:  value too long for type character varying(5)";
  CHECK(engine::without_value(e) == e.message);
}
