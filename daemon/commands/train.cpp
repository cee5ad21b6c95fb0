// `ingestd train DATASET FILE [--output PATH] [--max-rows N]`: estimates the m/u weights of the
// dataset's fuzzy tier from a file of its data and writes the weights file the tier names
// (identity/training.hpp). The phonetic codes of blocking rules come from PostgreSQL, as at load.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "handlers/engine/identity/compare.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/training.hpp"
#include "handlers/engine/row_builder.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd {

namespace {

using Keys = std::vector<std::optional<std::string>>;

/// Every row's field keys of entity `e` (rejected rows skipped), at most `max_rows`.
std::vector<Keys> read_keys(const config::Dataset& ds, size_t e, const std::string& file, size_t max_rows) {
  auto src = engine::open_file_source(file, engine::file_source_options(ds));
  const std::map<std::string, std::string> vars;
  engine::RowBuilder builder(ds, src->header(), vars);
  std::vector<Keys> out;
  engine::Record rec;
  for (int64_t n = 1; out.size() < max_rows && src->next(rec); ++n) {
    engine::Row row;
    engine::RowErrors errors;  // a rejected row is left out of training; its reasons are the load's to report
    builder.build(rec, n, row, errors);
    if (!row.rejected) out.push_back(std::move(row.keys[e]));
  }
  return out;
}

/// A term's key per row: the field's key, or its phonetic code as PostgreSQL computes it for
/// the load (the same function, found the same way).
std::vector<std::optional<std::string>> term_keys(pqxx::connection* db, const config::BlockingTerm& term, int field,
                                                  const std::vector<Keys>& rows) {
  std::vector<std::optional<std::string>> out;
  for (const auto& r : rows) out.push_back(r[size_t(field)]);
  // a trigram rule pairs rows whose keys are equal: the file's similar pairs would be as many as
  // its rows squared, and equal keys already give EM the pairs it learns m from
  if (term.function.empty() || term.trigram()) return out;
  if (!db) throw std::runtime_error("blocking on " + term.function + "() needs the database (postgres.url)");
  pqxx::work tx(*db);
  const std::string function = engine::qualified_function(tx, term.function);
  if (function.empty())
    throw std::runtime_error(term.function + "() is not installed: CREATE EXTENSION fuzzystrmatch (or `ingestd check "
                             "--create-indexes`)");
  std::set<std::string> values;
  for (const auto& k : out)
    if (k) values.insert(*k);
  std::unordered_map<std::string, std::string> code;
  engine::phonetic_codes(tx, function, values, code);
  for (auto& k : out)
    if (k) k = code[*k].empty() ? std::nullopt : std::optional<std::string>(code[*k]);
  return out;
}

/// A blocking rule as the config writes it: [postcode, dmetaphone(surname)].
std::string rule_text(const std::vector<config::BlockingTerm>& rule) {
  std::string out;
  for (const auto& t : rule)
    out += (out.empty() ? "[" : ", ") + (t.function.empty() ? t.field : t.function + "(" + t.field + ")");
  return out + "]";
}

void print_weights(const config::FuzzyTier& tier, const engine::TrainedWeights& w) {
  std::printf("%-16s %-24s %10s %10s %8s\n", "FIELD", "LEVEL", "M", "U", "WEIGHT");
  for (size_t k = 0; k < tier.compare.size(); ++k)
    for (size_t l = 0; l < w.m[k].size(); ++l)
      std::printf("%-16s %-24s %10.4g %10.4g %+8.2f\n", tier.compare[k].field.c_str(),
                  engine::level_name(tier.compare[k], l).c_str(), w.m[k][l], w.u[k][l], std::log2(w.m[k][l] / w.u[k][l]));
  for (size_t r = 0; r < tier.blocking.size(); ++r) {
    std::string left;
    for (size_t k = 0; k < tier.compare.size(); ++k)
      if (w.left_out[r][k]) left += (left.empty() ? "" : ", ") + tier.compare[k].field;
    std::printf("rule %zu %s: %zu pairs; m learnt without %s\n", r + 1, rule_text(tier.blocking[r]).c_str(),
                w.rule_pairs[r], left.empty() ? "nothing left out" : left.c_str());
  }
  for (const auto& t : w.together)
    std::printf("%s and %s agree together far more often than chance (u of both %.4g): %s's weight is taken given %s's\n",
                tier.compare[t.first].field.c_str(), tier.compare[t.second].field.c_str(), t.u,
                tier.compare[t.second].field.c_str(), tier.compare[t.first].field.c_str());
  for (size_t k = 0; k < w.common.size(); ++k) {
    const auto& c = w.common[k];
    if (c.values.empty()) continue;
    std::string shown;
    for (size_t i = 0; i < c.values.size() && i < 3; ++i)
      shown += (i ? ", " : "") + c.values[i].first + " " + engine::percent(c.values[i].second);
    std::printf("%s: %zu common values (%s%s), agreeing on one weighs less; any other value held by %s of rows\n",
                tier.compare[k].field.c_str(), c.values.size(), shown.c_str(), c.values.size() > 3 ? ", …" : "",
                engine::percent(c.rest).c_str());
  }
  for (size_t k = 0; k < tier.compare.size(); ++k)
    if (!w.estimated[k])
      std::printf("%s: m not learnt (every blocking rule leaves it out, or no pair has it): the defaults stand\n",
                  tier.compare[k].field.c_str());
  std::printf("pairs: %zu blocked, %zu random; matches among blocked pairs %.4f; EM rounds %d%s\n", w.blocked_pairs,
              w.random_pairs, w.lambda, w.iterations, w.converged ? "" : " (not converged)");
  std::printf("match weight for a posterior of 0.5: %.2f, 0.99: %.2f, 0.999: %.2f (merge_at %.2f, review_at %.2f now)\n",
              w.weight_for(0.5), w.weight_for(0.99), w.weight_for(0.999), tier.merge_at, tier.review_at);
}

/// What training found: lines for a person, or one JSON object (--json).
void print_training(const config::FuzzyTier& tier, const engine::TrainedWeights& w, size_t rows,
                    const std::string& file, const std::string& output, bool as_json) {
  if (!as_json) {
    std::printf("trained on %zu rows of %s; wrote %s\n", rows, file.c_str(), output.c_str());
    print_weights(tier, w);
    return;
  }
  nlohmann::json levels = nlohmann::json::array();
  for (size_t k = 0; k < tier.compare.size(); ++k)
    for (size_t l = 0; l < w.m[k].size(); ++l)
      levels.push_back({{"field", tier.compare[k].field}, {"level", engine::level_name(tier.compare[k], l)},
                        {"m", w.m[k][l]}, {"u", w.u[k][l]}, {"weight", std::log2(w.m[k][l] / w.u[k][l])}});
  nlohmann::json rules = nlohmann::json::array();
  for (size_t r = 0; r < tier.blocking.size(); ++r) {
    nlohmann::json left = nlohmann::json::array();
    for (size_t k = 0; k < tier.compare.size(); ++k)
      if (w.left_out[r][k]) left.push_back(tier.compare[k].field);
    rules.push_back({{"rule", rule_text(tier.blocking[r])}, {"pairs", w.rule_pairs[r]}, {"left_out", left}});
  }
  nlohmann::json together = nlohmann::json::array();
  for (const auto& t : w.together)
    together.push_back({{"fields", {tier.compare[t.first].field, tier.compare[t.second].field}}, {"u", t.u}});
  nlohmann::json frequent = nlohmann::json::object();
  for (size_t k = 0; k < w.common.size(); ++k)
    if (!w.common[k].values.empty())
      frequent[tier.compare[k].field] = {{"values", w.common[k].values.size()}, {"rest", w.common[k].rest},
                                         {"most_common", w.common[k].values.front().first}};
  nlohmann::json untrained = nlohmann::json::array();
  for (size_t k = 0; k < tier.compare.size(); ++k)
    if (!w.estimated[k]) untrained.push_back(tier.compare[k].field);
  const nlohmann::json j = {{"rows", rows},          {"file", file},           {"output", output},
                            {"levels", levels},      {"blocked_pairs", w.blocked_pairs},
                            {"random_pairs", w.random_pairs}, {"em_rounds", w.iterations}, {"converged", w.converged},
                            {"rules", rules},        {"m_not_learnt", untrained}, {"together", together}, {"frequent", frequent}};
  std::cout << j.dump() << std::endl;
}

}  // namespace

int cmd_train(const config::Config& cfg, const std::string& dataset, const std::string& file, std::string output,
              size_t max_rows, bool as_json) {
  const auto ds = cfg.datasets.find(dataset);
  if (ds == cfg.datasets.end()) {
    std::cerr << "ingestd train: no dataset " << dataset << "\n";
    return 2;
  }
  size_t e = 0;
  while (e < ds->second.entities.size() && !ds->second.entities[e].fuzzy) ++e;
  if (e == ds->second.entities.size()) {
    std::cerr << "ingestd train: dataset " << dataset << " has no fuzzy identity tier\n";
    return 2;
  }
  const config::Entity& ent = ds->second.entities[e];
  const config::FuzzyTier& tier = *ent.fuzzy;
  if (output.empty()) output = tier.weights;
  if (output.empty()) {
    std::cerr << "ingestd train: datasets." << dataset << ".entities." << ent.name << " fuzzy tier names no weights "
              << "file (weights: PATH); or give --output\n";
    return 2;
  }
  const auto rows = read_keys(ds->second, e, file, max_rows);
  std::unique_ptr<pqxx::connection> db;
  if (!cfg.postgres.url.empty()) db = std::make_unique<pqxx::connection>(cfg.postgres.url);
  std::vector<std::vector<std::optional<std::string>>> block(rows.size(), std::vector<std::optional<std::string>>());
  for (const auto& rule : tier.blocking) {
    std::vector<std::optional<std::string>> key(rows.size(), std::string());
    for (const auto& term : rule) {
      const auto part = term_keys(db.get(), term, engine::field_index(ent, term.field), rows);
      for (size_t i = 0; i < rows.size(); ++i)
        key[i] = key[i] && part[i] ? std::optional<std::string>(*key[i] + engine::kBlockKeySeparator + *part[i])
                                   : std::nullopt;
    }
    for (size_t i = 0; i < rows.size(); ++i) block[i].push_back(key[i]);
  }
  std::vector<Keys> cmp;
  for (const auto& r : rows) {
    Keys c;
    for (const auto& x : tier.compare) c.push_back(r[size_t(engine::field_index(ent, x.field))]);
    cmp.push_back(std::move(c));
  }
  std::vector<engine::LevelVector> random;
  for (const auto& [i, j] : engine::random_pairs(rows.size(), 200000))
    random.push_back(engine::pair_levels(tier, cmp[i], cmp[j]));
  auto together = engine::agreeing_together(tier, random);
  auto left_out = engine::left_out_comparisons(tier, together);
  const auto blocked = engine::count_patterns(engine::blocked_pairs(block, 1000), left_out, [&](uint32_t i, uint32_t j) {
    return engine::pair_levels(tier, cmp[i], cmp[j]);
  });
  auto w = engine::estimate_weights(tier, blocked, random, std::move(together), std::move(left_out));
  w.rows = rows.size();
  w.common = engine::common_values(cmp, tier.compare.size());
  std::ofstream out(output);
  out << engine::weights_yaml(tier, w, dataset, ent.name);
  out.close();
  if (!out) {
    std::cerr << "ingestd train: cannot write " << output << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  print_training(tier, w, rows.size(), file, output, as_json);
  return kExitCompleted;
}

}  // namespace ingestd
