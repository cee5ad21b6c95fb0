// Fuzzy matching without a database: string similarities against published values, the
// agreement levels of each method, weights from m/u, the config of a fuzzy tier, and the
// resolver's fuzzy bands (merge, review, new; never across a conflicting identifier).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "config/loader.hpp"
#include "handlers/engine/identity/compare.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/resolver.hpp"
#include "handlers/engine/identity/training.hpp"
#include "tests/unit/fuzzy_config.hpp"

using namespace ingestd::engine;
namespace cfg = ingestd::config;
using namespace fuzzy_config;
using K = std::optional<std::string>;
using Kind = RowDecision::Kind;

TEST_CASE("fuzzy: Jaro-Winkler gives the published values") {
  // Winkler (1990) / the usual textbook pairs
  CHECK(jaro_winkler("martha", "marhta") == doctest::Approx(0.9611).epsilon(0.001));
  CHECK(jaro_winkler("dwayne", "duane") == doctest::Approx(0.84).epsilon(0.001));
  CHECK(jaro_winkler("dixon", "dicksonx") == doctest::Approx(0.8133).epsilon(0.001));
  CHECK(jaro_winkler("same", "same") == 1.0);
  CHECK(jaro_winkler("abc", "xyz") == 0.0);
  CHECK(jaro_winkler("", "") == 1.0);
  CHECK(jaro_winkler("a", "") == 0.0);
  // by code point: one accented letter is one character, not two bytes
  CHECK(jaro_winkler("josé", "jose") == doctest::Approx(jaro_winkler("josx", "jose")));
  // past 64 characters (no short strings' path) still symmetric
  const std::string longer(70, 'a');
  CHECK(jaro_winkler(longer, longer + "b") == doctest::Approx(jaro_winkler(longer + "b", longer)));
}

TEST_CASE("fuzzy: Jaro-Winkler of short ASCII strings equals the general measure") {
  // short ASCII keys take a path of their own; code points of the same letters take the general one
  std::mt19937 gen(11);
  auto word = [&](size_t most) {
    std::string w(gen() % (most + 1), 'a');
    for (auto& c : w) c = "abcde"[gen() % 5];
    return w;
  };
  auto general = [](const std::string& a, const std::string& b) {
    // "é" for every "e": the same characters by code point, outside the ASCII path
    auto wide = [](std::string s) {
      std::string out;
      for (char c : s) out += c == 'e' ? std::string("é") : std::string(1, c);
      return out;
    };
    return jaro_winkler(wide(a), wide(b));
  };
  for (int n = 0; n < 3000; ++n) {
    const std::string a = word(n % 2 ? 12 : 64), b = word(n % 3 ? 12 : 64);
    REQUIRE(jaro_winkler(a, b) == doctest::Approx(general(a, b)).epsilon(1e-12));
  }
}

TEST_CASE("fuzzy: Levenshtein counts edits by code point") {
  CHECK(levenshtein("kitten", "sitting") == 3);
  CHECK(levenshtein("", "abc") == 3);
  CHECK(levenshtein("flaw", "lawn") == 2);
  CHECK(levenshtein("müller", "muller") == 1);
  CHECK(levenshtein("same", "same") == 0);
}

TEST_CASE("fuzzy: Levenshtein counted up to a cap is exact within it and cap + 1 past it") {
  // the comparison counts edits no further than its widest threshold; checked against the
  // whole table of edits on random strings over a small alphabet (many near misses)
  auto reference = [](const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
      for (size_t j = 1; j <= b.size(); ++j)
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
    return d[a.size()][b.size()];
  };
  std::mt19937 gen(7);
  // "q" and "a" fall in one bucket of the bound that comes first (the low four bits), as do "1" and "a"
  auto word = [&](const std::string& letters) {
    std::string w(gen() % 10, 'a');
    for (auto& c : w) c = letters[gen() % letters.size()];
    return w;
  };
  for (int n = 0; n < 6000; ++n) {
    const std::string letters = n % 2 ? "abc-" : "aq1-7";
    const std::string a = word(letters), b = word(letters);
    const size_t full = reference(a, b);
    REQUIRE(levenshtein(a, b) == full);
    for (size_t cap = 0; cap < 5; ++cap) REQUIRE(levenshtein(a, b, cap) == std::min(full, cap + 1));
  }
  CHECK(levenshtein("1980-01-12", "1980-12-01", 2) == 3);  // four digits off: past the cap
  CHECK(levenshtein("müller", "muller", 0) == 1);
}

namespace {

cfg::FuzzyComparison comparison(cfg::FuzzyComparison::Method m, std::vector<double> t, bool initial = false,
                                bool transposed = false) {
  cfg::FuzzyComparison c;
  c.method = m;
  c.thresholds = std::move(t);
  c.initial = initial;
  c.transposed = transposed;
  return c;
}

}  // namespace

TEST_CASE("fuzzy: a Jaro-Winkler level is the one the whole measure gives, bounded or not") {
  // a pair is first bounded by the letters the keys share, and measured only when the bound
  // reaches the lowest threshold; checked against the measure on random pairs over alphabets
  // small (bound rarely low) and wide (bound often low), at thresholds near and far
  using M = cfg::FuzzyComparison::Method;
  std::mt19937 gen(5);
  auto word = [&](const std::string& letters) {
    std::string w(1 + gen() % 12, 'a');
    for (auto& c : w) c = letters[gen() % letters.size()];
    return w;
  };
  const std::string narrow = "aeno", wide = "abcdefghijklmnopqrstuvwxyz";
  size_t disagree = 0, checked = 0;
  for (const std::vector<double>& t : std::vector<std::vector<double>>{{0.92, 0.8}, {0.9}, {0.7, 0.5}, {0.99}}) {
    const auto c = comparison(M::JaroWinkler, t);
    for (int n = 0; n < 3000; ++n) {
      const std::string& letters = n % 2 ? narrow : wide;
      const std::string a = word(letters), b = n % 5 ? word(letters) : a.substr(0, a.size() / 2) + word(letters);
      const double s = jaro_winkler(a, b);
      size_t want = 1;
      if (a == b) want = 0;
      else
        while (want <= t.size() && s < t[want - 1]) ++want;
      REQUIRE(comparison_level(c, a, b) == want);
      disagree += want == t.size() + 1;
      ++checked;
    }
  }
  CHECK(disagree > checked / 4);  // the bound had strangers to rule out
  CHECK(disagree < checked);
}

TEST_CASE("fuzzy: levels go from exact down to disagrees, in the order they are declared") {
  using M = cfg::FuzzyComparison::Method;
  auto jw = comparison(M::JaroWinkler, {0.94, 0.85}, true);
  CHECK(jw.levels() == 5);
  CHECK(comparison_level(jw, "martha", "martha") == 0);
  CHECK(comparison_level(jw, "martha", "marhta") == 1);   // 0.961
  CHECK(comparison_level(jw, "dwayne", "duane") == 4);    // 0.84: below both, and no initial
  CHECK(comparison_level(jw, "j", "john") == 3);          // the initial level
  CHECK(level_name(jw, 1) == "jaro_winkler>=0.94");
  CHECK(level_name(jw, 3) == "initial");
  CHECK(level_name(jw, 4) == "disagrees");

  auto lev = comparison(M::Levenshtein, {1, 2});
  CHECK(comparison_level(lev, "4011", "4012") == 1);
  CHECK(comparison_level(lev, "4011", "4110") == 2);
  CHECK(comparison_level(lev, "4011", "9999") == 3);

  auto date = comparison(M::Date, {31}, false, true);
  CHECK(date.levels() == 4);
  CHECK(comparison_level(date, "1951-08-26", "1951-08-26") == 0);
  CHECK(comparison_level(date, "1951-08-06", "1951-06-08") == 1);  // day and month swapped
  CHECK(comparison_level(date, "1951-08-26", "1951-09-02") == 2);  // 7 days apart
  CHECK(comparison_level(date, "1951-08-26", "1961-08-26") == 3);
  CHECK(comparison_level(date, "1951-08-26", "not a date") == 3);
  CHECK(level_name(date, 1) == "day_month_transposed");
  CHECK(level_name(date, 2) == "within_31_days");

  auto exact = comparison(M::Exact, {});
  CHECK(exact.levels() == 2);
  CHECK(comparison_level(exact, "nsw", "nsw") == 0);
  CHECK(comparison_level(exact, "nsw", "vic") == 1);
}

TEST_CASE("fuzzy: a pair's weight is the sum of log2(m/u) of its fields' levels; a missing side adds 0") {
  cfg::FuzzyTier tier;
  auto name = comparison(cfg::FuzzyComparison::Method::JaroWinkler, {0.9});
  name.m = {0.8, 0.15, 0.05};
  name.u = {0.01, 0.04, 0.95};
  auto state = comparison(cfg::FuzzyComparison::Method::Exact, {});  // defaults
  tier.compare = {name, state};
  PairScorer s(tier);
  REQUIRE(s.weights().size() == 2);
  CHECK(s.weights()[0][0] == doctest::Approx(std::log2(80.0)));
  CHECK(s.weights()[0][2] == doctest::Approx(std::log2(0.05 / 0.95)));
  CHECK(s.weights()[1][0] > 0);
  CHECK(s.weights()[1][1] < 0);
  auto f = s.fields({K("martha"), K("nsw")}, {K("marhta"), std::nullopt});
  CHECK(f[0].level == 1);
  CHECK(f[1].level == -1);
  CHECK(f[1].weight == 0);
  CHECK(PairScorer::total(f) == doctest::Approx(std::log2(0.15 / 0.04)));
}

TEST_CASE("fuzzy: a field agreeing together with an earlier one counts given it, not as a second fact") {
  cfg::FuzzyTier tier;
  for (const char* f : {"postcode", "suburb", "name"}) {
    tier.compare.push_back(comparison(cfg::FuzzyComparison::Method::Exact, {}));
    tier.compare.back().field = f;
    tier.compare.back().m = {0.8, 0.2};
    tier.compare.back().u = {0.01, 0.99};
  }
  tier.together = {{"postcode", "suburb", 0.008}};  // one suburb per postcode, nearly
  PairScorer s(tier);
  auto f = s.fields({K("2000"), K("rtson"), K("ann")}, {K("2000"), K("rtson"), K("bob")});
  CHECK(f[0].weight == doctest::Approx(std::log2(80.0)));
  // chance agreement on suburb once postcode agrees: 0.008 / 0.01
  CHECK(f[1].weight == doctest::Approx(std::log2(0.8 / 0.8)));
  CHECK(f[1].given == 0);
  CHECK(score_level(tier, 1, f[1]) == "exact (with postcode)");
  // alone, suburb is the fact it always was
  f = s.fields({K("2000"), K("rtson"), K("ann")}, {K("3000"), K("rtson"), K("ann")});
  CHECK(f[1].weight == doctest::Approx(std::log2(80.0)));
  CHECK(f[1].given == -1);
  CHECK(score_level(tier, 0, f[0]) == "disagrees");
  f = s.fields({K("2000"), std::nullopt, K("ann")}, {K("2000"), K("rtson"), K("ann")});
  CHECK(score_level(tier, 1, f[1]) == "missing");
}

TEST_CASE("fuzzy config: a tier loads with its rules, comparisons and thresholds") {
  const auto c = cfg::load_config_text(kFuzzyBase + R"Y(              blocking: [[dob], ["dmetaphone(surname)"]]
              compare:
                given: {jaro_winkler: [0.92, 0.8], initial: true}
                surname: {jaro_winkler: [0.92]}
                dob: {date: [31], transposed: true, m: [0.9, 0.03, 0.03, 0.04], u: [0.001, 0.001, 0.01, 0.988]}
              never_across: [ssn]
              merge_at: 12
              review_at: 5
)Y" + kFuzzyFields,
                                       "ingestd.yaml");
  const auto& e = c.datasets.at("d").entities[0];
  REQUIRE(e.identity.size() == 1);
  REQUIRE(e.fuzzy);
  REQUIRE(e.fuzzy->blocking.size() == 2);
  CHECK(e.fuzzy->blocking[1][0].function == "dmetaphone");
  CHECK(e.fuzzy->blocking[1][0].field == "surname");
  REQUIRE(e.fuzzy->compare.size() == 3);
  CHECK(e.fuzzy->compare[0].initial);
  CHECK(e.fuzzy->compare[0].levels() == 5);  // exact, two similarities, initial, disagrees
  CHECK(e.fuzzy->compare[2].m.size() == 4);
  CHECK(e.fuzzy->never_across == std::vector<std::string>{"ssn"});
  CHECK(e.fuzzy->merge_at == 12);
  CHECK(e.fuzzy->review_at == 5);
}

TEST_CASE("fuzzy config: mistakes are named with their key path") {
  CHECK(has(problems_of("              blocking: [[dob]]\n              compare: {nick: exact}\n"
                        "              merge_at: 10\n              review_at: 4\n"),
            "identity[1].fuzzy.compare.nick", "does not declare"));
  CHECK(has(problems_of("              blocking: [[\"metaphone(surname)\"]]\n              compare: {given: exact}\n"
                        "              merge_at: 10\n              review_at: 4\n"),
            "fuzzy.blocking[0]", "metaphone(surname)"));
  CHECK(has(problems_of("              blocking: [[dob]]\n              compare: {given: {jaro_winkler: [0.8, 0.9]}}\n"
                        "              merge_at: 10\n              review_at: 4\n"),
            "compare.given.jaro_winkler", "descending"));
  CHECK(has(problems_of("              blocking: [[dob]]\n              compare: {given: {jaro_winkler: [0.9], m: [0.9, 0.1]}}\n"
                        "              merge_at: 10\n              review_at: 4\n"),
            "compare.given.m", "3 probabilities"));
  CHECK(has(problems_of("              blocking: [[dob]]\n              compare: {given: exact}\n"
                        "              merge_at: 4\n              review_at: 10\n"),
            "fuzzy.review_at", "not be above merge_at"));
  CHECK(has(problems_of("              compare: {given: exact}\n              merge_at: 4\n              review_at: 1\n"),
            "fuzzy.blocking", "required"));
  // a weights file not written yet is not a config error (`ingestd train` writes it; check warns)
  CHECK(problems_of("              blocking: [[dob]]\n              compare: {dob: {date: [3]}}\n"
                    "              merge_at: 10\n              review_at: 4\n              weights: nope.yaml\n")
            .empty());
}

TEST_CASE("fuzzy config: the weights file's together pairs load, and a wrong one is named") {
  const auto dir = std::filesystem::temp_directory_path() / ("ingestd-together-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto weights = (dir / "w.yaml").string();
  const std::string tier = "              blocking: [[dob]]\n              compare: {given: exact, surname: exact}\n"
                           "              merge_at: 10\n              review_at: 4\n              weights: " + weights + "\n";
  std::ofstream(weights) << "fields:\n  given: {m: [0.9, 0.1], u: [0.01, 0.99]}\ntogether:\n"
                            "  - {fields: [given, surname], u: 0.005}\n";
  const auto c = cfg::load_config_text(kFuzzyBase + tier + kFuzzyFields, "ingestd.yaml");
  const auto& t = *c.datasets.at("d").entities[0].fuzzy;
  REQUIRE(t.together.size() == 1);
  CHECK(t.together[0].second == "surname");
  CHECK(t.together[0].u == 0.005);
  std::ofstream(weights) << "together:\n  - {fields: [surname, given], u: 0.005}\n";
  CHECK(has(problems_of(tier), "together[0].fields", "in the tier's order"));
  // a share past 1 is refused, not read as 1
  std::ofstream(weights) << "together:\n  - {fields: [given, surname], u: 1.5}\n";
  CHECK(has(problems_of(tier), "together[0].u", "a probability must be > 0 and <= 1"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("fuzzy config: a trigram term stands alone in its rule, at pg_trgm's default or its own similarity") {
  const auto rules = [](const std::string& blocking) {
    return "              blocking: " + blocking + "\n              compare: {given: exact}\n"
           "              merge_at: 10\n              review_at: 4\n";
  };
  const auto c = cfg::load_config_text(
      kFuzzyBase + rules(R"B([["trigram(surname)"], ["trigram( given , 0.55 )"]])B") + kFuzzyFields, "ingestd.yaml");
  const auto& b = c.datasets.at("d").entities[0].fuzzy->blocking;
  REQUIRE(b.size() == 2);
  CHECK(b[0][0].trigram());
  CHECK(b[0][0].field == "surname");
  CHECK(b[0][0].similarity == 0.3);
  CHECK(b[1][0].field == "given");
  CHECK(b[1][0].similarity == 0.55);
  CHECK(has(problems_of(rules(R"B([["trigram(surname)", dob]])B")), "fuzzy.blocking[0]", "stands alone in its rule"));
  CHECK(has(problems_of(rules(R"B([["dmetaphone(surname, 0.5)"]])B")), "fuzzy.blocking[0]", "only trigram() takes"));
  CHECK(has(problems_of(rules(R"B([["trigram(surname, 1.5)"]])B")), "fuzzy.blocking[0]", "> 0 and <= 1"));
  CHECK(has(problems_of(rules(R"B([["trigram(nick)"]])B")), "fuzzy.blocking[0]", "does not declare"));
}

TEST_CASE("trigram similarity: pg_trgm's shared / (all − shared), and a chunk's block finds records by it") {
  // show_trgm('smith') and show_trgm('smyth'): 3 of 9 distinct trigrams shared
  const std::vector<std::string> smith{"  s", " sm", "ith", "mit", "smi", "th "};
  const std::vector<std::string> smyth{"  s", " sm", "myt", "smy", "th ", "yth"};
  const std::vector<std::string> jones{"  j", " jo", "es ", "jon", "nes", "one"};
  CHECK(trigram_similarity(smith, smyth) == doctest::Approx(1.0 / 3));
  CHECK(trigram_similarity(smith, smith) == 1.0);
  CHECK(trigram_similarity(smith, jones) == 0.0);
  CHECK(trigram_similarity(smith, {}) == 0.0);  // a value without letters or digits has no trigrams
  // single precision, as pg_trgm: 1/3 in float is above the double 1/3, so a threshold of 1/3 holds
  CHECK(trigram_similarity(3, 6, 6) >= 1.0 / 3);
  SimilarBlock loose(0.3), strict(0.5);
  const auto add = [&](int record, std::string_view key, const std::vector<std::string>& trigrams) {
    loose.add(record, key, trigrams);
    strict.add(record, key, trigrams);
  };
  add(7, "jones", jones);
  add(4, "smyth", smyth);
  add(9, "smith", smith);
  CHECK(loose.similar("smith", smith, 50) == std::vector<int>{4, 9});  // in the order they came
  CHECK(loose.similar("smith", smith, 1) == std::vector<int>{4});      // cut at the cap
  CHECK(strict.similar("smith", smith, 50) == std::vector<int>{9});
  CHECK(loose.similar("xy", {"  x", " xy", "xy "}, 50).empty());
  // keys that come after a key was asked about are found too; a key held by several records
  // brings them all, in order
  const std::vector<std::string> smithe{"  s", " sm", "he ", "ith", "mit", "smi", "the"};
  add(12, "smith", smith);
  add(3, "smithe", smithe);
  add(8, "smyth", smyth);
  CHECK(loose.similar("smith", smith, 50) == std::vector<int>{4, 9, 12, 3, 8});
  CHECK(strict.similar("smith", smith, 50) == std::vector<int>{9, 12, 3});
  CHECK(strict.similar("smyth", smyth, 50) == std::vector<int>{4, 8});
}

namespace {

/// A fuzzy tier that scores rows from a fixed table: score[row][record].
class TableJudge : public FuzzyJudge {
 public:
  std::vector<std::map<int, double>> score;
  std::vector<std::pair<size_t, int>> landed_;
  std::vector<std::pair<int, double>> candidates(size_t row, const std::vector<int>&) override {
    std::vector<std::pair<int, double>> out;
    for (const auto& [r, s] : score[row]) out.emplace_back(r, s);
    return out;
  }
  void landed(size_t row, int record) override { landed_.emplace_back(row, record); }
};

}  // namespace

TEST_CASE("resolver: the fuzzy tier merges at merge_at, reviews between, and a new record below") {
  // one tier (ssn); one known record (index 0)
  std::vector<KnownRecord> known{{"10", {{"111"}}}};
  TableJudge j;
  j.tier = 2;
  j.merge_at = 10;
  j.review_at = 5;
  j.score = {{{0, 12.0}}, {{0, 7.0}}, {{0, 2.0}}, {}};
  auto r = resolve_rows({{std::nullopt}, {std::nullopt}, {std::nullopt}, {std::nullopt}}, known, 1, &j);
  CHECK(r.rows[0].kind == Kind::Match);
  CHECK(r.rows[0].record == 0);
  CHECK(r.rows[0].tier == 2);
  CHECK(*r.rows[0].score == 12.0);
  CHECK(r.rows[1].kind == Kind::Review);
  CHECK(r.rows[1].candidate_scores == std::vector<double>{7.0});
  CHECK(r.rows[2].kind == Kind::New);
  CHECK(r.rows[2].judged);
  CHECK(*r.rows[2].score == 2.0);
  CHECK(r.rows[3].kind == Kind::New);
  CHECK(!r.rows[3].score);
  // the merged row and both new ones landed; the row in review did not
  CHECK(j.landed_.size() == 3);
}

TEST_CASE("resolver: two records at merge_at send the row to review; an exact key is never asked about") {
  std::vector<KnownRecord> known{{"10", {{"111"}}}, {"11", {{"222"}}}};
  TableJudge j;
  j.tier = 2;
  j.merge_at = 10;
  j.review_at = 5;
  j.score = {{{0, 12.0}, {1, 11.0}}, {{0, 30.0}}};
  auto r = resolve_rows({{std::nullopt}, {K("222")}}, known, 1, &j);
  CHECK(r.rows[0].kind == Kind::Review);
  CHECK(r.rows[0].candidates.size() == 2);
  CHECK(r.rows[1].kind == Kind::Match);  // by its ssn, at tier 1, whatever the fuzzy score
  CHECK(r.rows[1].record == 1);
  CHECK(r.rows[1].tier == 1);
  CHECK(!r.rows[1].judged);
}

TEST_CASE("training: EM finds the levels that matches show, from pairs alone, the same every time") {
  cfg::FuzzyTier tier;
  for (int k = 0; k < 4; ++k) {
    tier.compare.push_back(comparison(cfg::FuzzyComparison::Method::Exact, {}));
    tier.compare.back().field = "f" + std::to_string(k);
  }
  // rule 0 blocks on f0, rule 1 on f1: their pairs agree on that field, match or not. Among
  // them 10% are matches, whose other fields agree with probability 0.9; non-matches and random
  // pairs agree by chance with probability 0.05
  tier.blocking = {{{"", "f0", 0}}, {{"", "f1", 0}}};
  std::mt19937 gen(7);
  std::bernoulli_distribution match_agrees(0.9), chance(0.05);
  auto pair = [&](std::bernoulli_distribution& agree, int blocked_on) {
    LevelVector v;
    for (int k = 0; k < 4; ++k) v.push_back(k == blocked_on || agree(gen) ? 0 : 1);
    return v;
  };
  std::vector<LevelVector> random, pairs;
  std::vector<BlockedPair> blocked;
  for (uint32_t i = 0; i < 40000; ++i) {
    pairs.push_back((i / 2) % 10 == 0 ? pair(match_agrees, int(i % 2)) : pair(chance, int(i % 2)));
    blocked.push_back({i, i + 1, i % 2});
  }
  for (int i = 0; i < 50000; ++i) random.push_back(pair(chance, -1));
  CHECK(agreeing_together(tier, random).empty());
  const auto left = left_out_comparisons(tier, {});
  CHECK(left == std::vector<std::vector<bool>>{{true, false, false, false}, {false, true, false, false}});
  const auto patterns = count_patterns(blocked, left, [&](uint32_t a, uint32_t) { return pairs[a]; });
  CHECK(patterns.pairs == 40000);
  const auto w = estimate_weights(tier, patterns, random, {}, left);
  CHECK(w.converged);
  // the blocking fields' agreement is not taken for the mark of a match: the share of matches
  // and every m come out as generated
  CHECK(w.lambda == doctest::Approx(0.1).epsilon(0.1));
  for (int k = 0; k < 4; ++k) {
    CHECK(w.estimated[size_t(k)]);
    CHECK(w.m[size_t(k)][0] == doctest::Approx(0.9).epsilon(0.05));
    CHECK(w.u[size_t(k)][0] == doctest::Approx(0.05).epsilon(0.1));
  }
  // a pair agreeing on all four is a match beyond doubt; the weight thresholds say so
  CHECK(w.weight_for(0.99) > w.weight_for(0.5));
  const auto again = estimate_weights(tier, patterns, random, {}, left);
  CHECK(weights_yaml(tier, w, "d", "e") == weights_yaml(tier, again, "d", "e"));
  CHECK(random_pairs(1000, 300) == random_pairs(1000, 300));
  CHECK(random_pairs(4, 100).size() == 6);  // all pairs when there are fewer
}

TEST_CASE("training: a field that agrees together with a blocking field teaches nothing in that rule's pairs") {
  cfg::FuzzyTier tier;
  for (const char* f : {"postcode", "suburb", "name"}) {
    tier.compare.push_back(comparison(cfg::FuzzyComparison::Method::Exact, {}));
    tier.compare.back().field = f;
  }
  tier.blocking = {{{"", "postcode", 0}}, {{"", "suburb", 0}}};
  // suburb agrees whenever postcode does (one suburb per postcode), 2% of random pairs
  std::vector<LevelVector> random;
  for (int i = 0; i < 10000; ++i) {
    const int8_t place = i % 50 == 0 ? 0 : 1;
    random.push_back({place, place, int8_t(i % 40 == 1 ? 0 : 1)});
  }
  const auto together = agreeing_together(tier, random);
  REQUIRE(together.size() == 1);
  CHECK(together[0].first == 0);
  CHECK(together[0].second == 1);
  CHECK(together[0].u == doctest::Approx(0.02));
  const auto left = left_out_comparisons(tier, together);
  CHECK(left[0] == std::vector<bool>{true, true, false});
  CHECK(left[1] == std::vector<bool>{true, true, false});
  const auto patterns = count_patterns({{0, 1, 0}, {0, 1, 1}, {1, 2, 0}}, left,
                                       [](uint32_t, uint32_t) { return LevelVector{0, 0, 1}; });
  CHECK(patterns.pairs == 2);  // the pair both rules make counts once
  CHECK(patterns.rule[0].at(LevelVector{-1, -1, 1}) == 2);
  CHECK(patterns.any.at(LevelVector{-1, -1, 1}) == 2);
  // every rule leaves postcode and suburb out: their m stay the defaults, and the file says so
  const auto w = estimate_weights(tier, patterns, random, together, left);
  CHECK(w.estimated == std::vector<bool>{false, false, true});
  const auto yaml = weights_yaml(tier, w, "d", "e");
  CHECK(yaml.find("together:\n  - {fields: [postcode, suburb], u: 0.02}") != std::string::npos);
  CHECK(yaml.find("suburb: {m: [0.95, 0.05], u: [0.020096,") != std::string::npos);
  CHECK(yaml.find("no rule could learn it") != std::string::npos);
}

TEST_CASE("training: blocked pairs are each pair sharing a block key, per rule, blocks cut at max_block") {
  std::vector<std::vector<K>> keys = {{K("a"), K("x")}, {K("a"), K("x")}, {K("b"), K("x")}, {std::nullopt, K("y")}};
  auto pairs = blocked_pairs(keys, 100);
  CHECK(pairs == std::vector<BlockedPair>{{0, 1, 0}, {0, 1, 1}, {0, 2, 1}, {1, 2, 1}});
  CHECK(blocked_pairs(keys, 2) == std::vector<BlockedPair>{{0, 1, 0}, {0, 1, 1}});
}

TEST_CASE("resolver: a record only the fuzzy tier found keeps its stored keys once a row lands on it") {
  // tiers: cedula, email. Record 10 holds cedula 111 and was found by blocks alone.
  std::vector<KnownRecord> known{{"10", {{"111"}, {}}, true}};
  TableJudge j;
  j.tier = 3;
  j.merge_at = 10;
  j.review_at = 5;
  j.score = {{{0, 30.0}}, {}};
  // row 0 (no cedula, e-mail a@x) merges by score; row 1 shares that e-mail but has another
  // cedula: the record's stored cedula blocks the e-mail match, so row 1 is a new person
  auto r = resolve_rows({{std::nullopt, K("a@x")}, {K("222"), K("a@x")}}, known, 2, &j);
  CHECK(r.rows[0].kind == Kind::Match);
  CHECK(r.rows[0].record == 0);
  CHECK(r.rows[1].kind == Kind::New);

  // the same record given without its keys: the resolver asks for them when row 0 lands on it
  struct Stored : OwnKeys {
    mutable int asked = 0;
    TierKeys landed(size_t, int) override { return {}; }
    std::vector<std::vector<std::string>> stored(int record) const override {
      ++asked;
      return record == 0 ? std::vector<std::vector<std::string>>{{"111"}, {}} : std::vector<std::vector<std::string>>{};
    }
  } own;
  known[0].keys.clear();
  r = resolve_rows({{std::nullopt, K("a@x")}, {K("222"), K("a@x")}}, known, 2, &j, &own);
  CHECK(r.rows[0].kind == Kind::Match);
  CHECK(r.rows[1].kind == Kind::New);
  CHECK(own.asked == 1);
}
