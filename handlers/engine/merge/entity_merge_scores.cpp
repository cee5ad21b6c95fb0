// The fuzzy tier's part of an entity's merge (DESIGN §5 rule 6): why a row it scored is in
// review, the per-field explanation of each pair it merged or queued (ingestd.match_scores),
// the result's bands and the match-weight histogram.
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "handlers/engine/merge/entity_merge.hpp"

namespace ingestd::engine {

std::string EntityMerge::review_reason(const Decisions& d, size_t row) const {
  const RowDecision& rd = d.res.rows[row];
  std::string why;
  if (!rd.score) {
    why = "matches ";
    for (size_t c = 0; c < rd.candidates.size(); ++c)
      why += (c ? ", " : "") + d.ids[size_t(rd.candidates[c].first)] + " (tier " + std::to_string(rd.candidates[c].second) +
             ")";
    return why;
  }
  const auto& tier = matcher_.fuzzy()->tier();
  char buf[96];
  if (*rd.score >= tier.merge_at)
    snprintf(buf, sizeof buf, "fuzzy: more than one record at merge_at %g: ", tier.merge_at);
  else
    snprintf(buf, sizeof buf, "fuzzy: match weight below merge_at %g, at least review_at %g: ", tier.merge_at,
             tier.review_at);
  why = buf;
  const auto it = d.explained.find(row);
  for (size_t c = 0; c < rd.candidates.size(); ++c) {
    const int rec = rd.candidates[c].first;
    why += c ? "; " : "";
    if (it == d.explained.end()) continue;
    for (const auto& e : it->second)
      if (e.record == rec) why += explain_pair(e, d.ids[size_t(rec)]);
  }
  return why;
}

std::string EntityMerge::explain_pair(const PairExplanation& e, const std::string& id) const {
  const auto& tier = matcher_.fuzzy()->tier();
  char buf[32];
  snprintf(buf, sizeof buf, "%.2f", e.score);
  std::string out = id + " (" + buf + ":";
  for (size_t f = 0; f < e.fields.size(); ++f) {
    if (e.fields[f].level < 0) continue;
    snprintf(buf, sizeof buf, "%+.2f", e.fields[f].weight);
    out += " " + tier.compare[f].field + " " + score_level(tier, f, e.fields[f]) + " " + buf;
  }
  if (e.table != 0) {
    snprintf(buf, sizeof buf, "%+.2f", e.table);
    out += std::string(" table size ") + buf;
  }
  return out + ")";
}

void EntityMerge::record_scores(const StagedPart& part, const Decisions& d, EntityCounts& counts) {
  const auto& tier = matcher_.fuzzy()->tier();
  CopyIn copy(sql_.tx(), bk_ + ".match_scores",
              {"batch_id", "entity", "table_name", "row_number", "record_id", "decision", "score", "fields"});
  std::string line;
  auto add = [&](size_t row, const PairExplanation& e, const char* decision) {
    nlohmann::json fields = nlohmann::json::array();
    for (size_t f = 0; f < e.fields.size(); ++f)
      fields.push_back({{"field", tier.compare[f].field},
                        {"level", score_level(tier, f, e.fields[f])},
                        {"weight", std::round(e.fields[f].weight * 100) / 100}});
    if (e.table != 0)
      fields.push_back({{"field", "(table size)"},
                        {"level", "records beyond the " + std::to_string(tier.trained_rows) + " rows trained on"},
                        {"weight", std::round(e.table * 100) / 100}});
    line = sql_.batch() + '\t';
    append_copy_value(line, entity_.name);
    line += '\t';
    append_copy_value(line, sql_.table());
    line += '\t' + std::to_string(part.rows[row]->number) + '\t';
    append_copy_value(line, d.ids[size_t(e.record)]);
    line += std::string("\t") + decision + '\t' + std::to_string(e.score) + '\t';
    append_copy_value(line, fields.dump());
    copy.line(line);
  };
  for (size_t i = 0; i < d.res.rows.size(); ++i) {
    const RowDecision& rd = d.res.rows[i];
    if (!rd.judged) continue;
    const char* band = rd.kind == RowDecision::Kind::New ? "new" : rd.kind == RowDecision::Kind::Review ? "review" : "merged";
    ++counts.fuzzy_bands[band];
    if (rd.score) counts.match_weights.push_back(*rd.score);
    const auto it = d.explained.find(i);
    if (it == d.explained.end() || rd.kind == RowDecision::Kind::New) continue;
    for (const auto& e : it->second) {
      const bool merged = rd.kind == RowDecision::Kind::Match && e.record == rd.record;
      const bool listed = rd.kind == RowDecision::Kind::Review &&
                          std::any_of(rd.candidates.begin(), rd.candidates.end(),
                                      [&](const auto& c) { return c.first == e.record; });
      if (merged || listed) add(i, e, merged ? "merged" : "review");
    }
  }
  copy.complete();
}

}  // namespace ingestd::engine
