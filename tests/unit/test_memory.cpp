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

config::Config people(const std::string& email_merge) {
  return config::load_config_text(R"(postgres: {url: postgresql://localhost/app}
datasets:
  d:
    entities:
      person:
        table: persons
        identity: [[cedula], [email]]
        fields:
          cedula: {column: cedula, from: C}
          email: {column: email, from: E, merge: )" + email_merge + R"(}
)",
                                  "t.yaml");
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
    std::vector<TierKeys> tk;
    std::vector<const FieldKeys*> ptrs;
    for (const auto& r : rows) {
      tk.push_back(matcher->keys(r));
      ptrs.push_back(&r);
    }
    res = resolve_rows(tk, records, 2);
    return record_keys(entity(), *matcher, res, ptrs, tk, known);
  }
  Resolution res;
};

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
