// Term frequencies of a fuzzy tier without a database: which values training finds common and
// the chance it gives every other value, how an exact agreement weighs by them, and the
// weights file that carries them (written by training, read by the config).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "config/loader.hpp"
#include "handlers/engine/identity/compare.hpp"
#include "handlers/engine/identity/training.hpp"
#include "tests/unit/fuzzy_config.hpp"

using namespace ingestd::engine;
namespace cfg = ingestd::config;
using namespace fuzzy_config;
using K = std::optional<std::string>;

namespace {

/// 1,000 rows of one comparison: `smith` 200 times, `jones` 50, `brown` 9 (too few to count),
/// and 741 values held once each.
std::vector<std::vector<K>> surnames() {
  std::vector<std::vector<K>> rows;
  for (int i = 0; i < 200; ++i) rows.push_back({K("smith")});
  for (int i = 0; i < 50; ++i) rows.push_back({K("jones")});
  for (int i = 0; i < 9; ++i) rows.push_back({K("brown")});
  for (int i = 0; i < 741; ++i) rows.push_back({K("s" + std::to_string(i))});
  rows.push_back({std::nullopt});  // a row without the field counts for nothing
  return rows;
}

/// The tier's body: surname and dob compared, weights from `path`.
std::string tier_reading(const std::string& path) {
  return "              blocking: [[dob]]\n              compare: {surname: exact, dob: exact}\n"
         "              merge_at: 10\n              review_at: 4\n              weights: " + path + "\n";
}

/// A weights file in a directory of its own, removed with it.
struct WeightsFile {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ingestd-frequent-" + std::to_string(::getpid()));
  std::string path = (dir / "w.yaml").string();
  WeightsFile() { std::filesystem::create_directories(dir); }
  ~WeightsFile() { std::filesystem::remove_all(dir); }
  cfg::Config load(const std::string& text) const {
    std::ofstream(path) << text;
    return load_fuzzy(tier_reading(path));
  }
  std::vector<std::string> problems(const std::string& text) const {
    std::ofstream(path) << text;
    return problems_of(tier_reading(path));
  }
};

}  // namespace

TEST_CASE("training: values common beyond the others are listed with their share, the rest get their own chance") {
  const auto common = common_values(surnames(), 1);
  REQUIRE(common.size() == 1);
  const auto& c = common[0];
  REQUIRE(c.values.size() == 2);  // brown: 9 rows, fewer than 10
  CHECK(c.values[0] == std::pair<std::string, double>("smith", 0.2));
  CHECK(c.values[1] == std::pair<std::string, double>("jones", 0.05));
  // the others: 9 rows of brown and 741 single ones, (81 + 741) / (750 * 1000)
  CHECK(c.rest == doctest::Approx(822.0 / 750000));
  CHECK(common_values(surnames(), 1)[0].values == c.values);  // the same every time

  // values about equally common: none stands out, so none is listed
  std::vector<std::vector<K>> even;
  for (int i = 0; i < 1000; ++i) even.push_back({K("p" + std::to_string(i % 20))});
  CHECK(common_values(even, 1)[0].values.empty());
  CHECK(common_values(even, 1)[0].rest == 0);
}

TEST_CASE("fuzzy: an exact agreement on a common value weighs by its share, on any other by the rest") {
  cfg::FuzzyTier tier;
  cfg::FuzzyComparison surname;
  surname.field = "surname";
  surname.m = {0.9, 0.1};
  surname.u = {0.05, 0.95};
  surname.frequent = {{"smith", 0.2}};
  surname.frequent_rest = 0.001;
  tier.compare = {surname};
  const PairScorer s(tier);
  const auto smith = s.fields({K("smith")}, {K("smith")});
  CHECK(smith[0].weight == doctest::Approx(std::log2(0.9 / 0.2)));
  CHECK(smith[0].share == 0.2);
  CHECK(score_level(tier, 0, smith[0]) == "exact (common: 20% of rows)");
  const auto rare = s.fields({K("zabala")}, {K("zabala")});
  CHECK(rare[0].weight == doctest::Approx(std::log2(0.9 / 0.001)));
  CHECK(score_level(tier, 0, rare[0]) == "exact");
  CHECK(s.fields({K("smith")}, {K("smyth")})[0].weight == doctest::Approx(std::log2(0.1 / 0.95)));

  // without term frequencies an exact agreement weighs log2(m/u), whatever the value
  tier.compare[0].frequent_rest = 0;
  tier.compare[0].frequent.clear();
  CHECK(PairScorer(tier).fields({K("smith")}, {K("smith")})[0].weight == doctest::Approx(std::log2(0.9 / 0.05)));
}

TEST_CASE("fuzzy config: the weights file's common values load as training writes them, and a wrong one is named") {
  const WeightsFile file;
  // what training writes, read back: values quoted as JSON strings, the dob's as dates
  cfg::FuzzyTier tier;
  for (const char* f : {"surname", "dob"}) {
    cfg::FuzzyComparison c;
    c.field = f;
    tier.compare.push_back(c);
  }
  TrainedWeights w;
  w.m = w.u = {{0.9, 0.1}, {0.9, 0.1}};
  w.estimated = {true, true};
  w.common = common_values(surnames(), 2);
  w.common[1].values = {{"1970-01-01", 0.25}, {"say \"hi\"", 0.125}};
  w.common[1].rest = 0.0002;
  const auto c = file.load(weights_yaml(tier, w, "d", "person"));
  const auto& loaded = c.datasets.at("d").entities[0].fuzzy->compare;
  CHECK(loaded[0].frequent.at("smith") == 0.2);
  CHECK(loaded[0].frequent.at("jones") == 0.05);
  CHECK(loaded[0].frequent_rest == doctest::Approx(822.0 / 750000).epsilon(1e-5));
  CHECK(loaded[1].frequent.at("1970-01-01") == 0.25);
  CHECK(loaded[1].frequent.at("say \"hi\"") == 0.125);

  CHECK(has(file.problems("frequent:\n  given: {rest: 0.1, values: {a: 0.5}}\n"), "frequent.given",
            "does not compare this field"));
  CHECK(has(file.problems("frequent:\n  surname: {rest: 0.1, values: {smith: 1.5}}\n"), "frequent.surname.values.smith",
            "a probability must be > 0 and <= 1"));
  CHECK(has(file.problems("frequent:\n  surname: {values: {smith: 0.5}}\n"), "frequent.surname.rest", "required"));
}
