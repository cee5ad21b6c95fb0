// Exact matching: a tier's key is its fields' keys joined; records are found by the keys
// remembered in identity_keys (every key ever seen for a record).
#include "handlers/engine/identity/matcher.hpp"

#include "handlers/engine/identity/grouping.hpp"

namespace ingestd::engine {

std::vector<IdentityTier> identity_tiers(const config::Entity& entity) {
  std::vector<IdentityTier> tiers;
  for (const auto& tier : entity.identity) {
    IdentityTier t;
    t.number = int(tiers.size()) + 1;
    for (const auto& fname : tier)
      for (size_t k = 0; k < entity.fields.size(); ++k)
        if (entity.fields[k].name == fname) t.fields.push_back(int(k));
    tiers.push_back(std::move(t));
  }
  return tiers;
}

namespace {

class ExactMatcher : public Matcher {
 public:
  ExactMatcher(std::vector<IdentityTier> tiers, MatchTarget target) : Matcher(std::move(tiers), std::move(target)) {
    for (const auto& t : tiers_) tier_fields_.push_back(t.fields);
  }

  std::vector<std::optional<std::string>> keys(const FieldKeys& field_keys) const override {
    return composite_keys(field_keys, tier_fields_);
  }

  void find_candidates(StepSql& sql, bool analyze) const override {
    const std::string& bk = target_.bookkeeping;
    // Each key of the chunk is one probe of the keys' hash index (LATERAL … OFFSET 0 keeps it
    // a probe): the cost follows the chunk, not the size of identity_keys, whatever the
    // planner believes about a table that grew since it was last analyzed. The row's table,
    // tier and key are compared too, so a hash collision is one more row read, not a match.
    // The hits are kept: a matched record's keys that hit need not be written again. The
    // probes go in hash order, so neighbouring probes share index pages; a candidate record
    // must still exist in the target (one probe per candidate, not per key).
    sql.probe("INSERT INTO ingestd_hits SELECT gk.grp, gk.tier, gk.key, k.record_id FROM (SELECT *, "
              "hashtextextended(key, tier) AS h FROM ingestd_gk ORDER BY 4) gk CROSS JOIN LATERAL (SELECT ik.record_id "
              "FROM " + bk + ".identity_keys ik WHERE hashtextextended(ik.key, ik.tier) = gk.h AND ik.table_name = "
              ":table AND ik.tier = gk.tier AND ik.key = gk.key OFFSET 0) k",
              "candidates");
    sql.probe("INSERT INTO ingestd_cand SELECT c.grp, c.record_id, c.tier FROM (SELECT grp, record_id, min(tier) AS tier "
              "FROM ingestd_hits GROUP BY 1, 2) c CROSS JOIN LATERAL (SELECT 1 FROM " + target_.table + " t WHERE t." +
              target_.id + " = c.record_id::" + target_.id_type + " OFFSET 0) x",
              "candidates");
    block_conflicts(sql, analyze);
  }

  void remember_keys(StepSql& sql, bool analyze) const override {
    const std::string insert = "INSERT INTO " + target_.bookkeeping +
                               ".identity_keys (table_name, tier, key, record_id, batch_id) ";
    // A new record holds no key yet: a plain insert, in index order (the key index is the most
    // expensive part of a load). A matched record may hold some already: its keys the probes
    // found are left out, which needs no unique index, as the table's advisory lock keeps
    // other loads out until commit.
    sql.exec(insert + "SELECT :table, gk.tier, gk.key, r.record_id, :batch::uuid FROM ingestd_gk gk JOIN ingestd_res r "
                      "USING (grp) WHERE r.action = 'insert' ORDER BY hashtextextended(gk.key, gk.tier)",
             "keys");
    if (analyze) sql.exec("ANALYZE ingestd_hits", "keys");
    sql.exec("SET LOCAL enable_nestloop = off", "keys");
    sql.exec(insert + "SELECT DISTINCT :table, gk.tier, gk.key, r.record_id, :batch::uuid FROM ingestd_gk gk JOIN "
                      "ingestd_res r USING (grp) WHERE r.action = 'match' AND NOT EXISTS (SELECT 1 FROM ingestd_hits h "
                      "WHERE h.grp = gk.grp AND h.tier = gk.tier AND h.key = gk.key AND h.record_id = r.record_id)",
             "keys");
    sql.exec("RESET enable_nestloop", "keys");
  }

  void remember_record(StepSql& sql, const std::string& record_id,
                       const std::vector<std::optional<std::string>>& tier_keys) const override {
    const std::string& bk = target_.bookkeeping;
    for (size_t t = 0; t < tier_keys.size(); ++t)
      if (tier_keys[t])
        sql.tx().exec_params("INSERT INTO " + bk + ".identity_keys (table_name, tier, key, record_id, batch_id) SELECT "
                             "$1::text, $2::int, $3::text, $4::text, $5::uuid WHERE NOT EXISTS (SELECT 1 FROM " + bk +
                                 ".identity_keys WHERE hashtextextended(key, tier) = hashtextextended($3::text, $2::int) "
                                 "AND table_name = $1::text AND tier = $2::int AND key = $3::text AND record_id = $4::text)",
                             sql.table(), tiers_[t].number, *tier_keys[t], record_id, sql.batch());
  }

 private:
  std::vector<std::vector<int>> tier_fields_;

  /// A candidate is blocked when its group and the record both hold keys at a tier above the
  /// one they share (two cédulas sharing one e-mail are two people).
  void block_conflicts(StepSql& sql, bool analyze) const {
    // The tiers at which each candidate record holds keys, read once.
    sql.probe("INSERT INTO ingestd_rt SELECT DISTINCT c.record_id, k.tier FROM (SELECT DISTINCT record_id FROM "
              "ingestd_cand WHERE tier > 1) c CROSS JOIN LATERAL (SELECT ik.tier FROM " + target_.bookkeeping +
              ".identity_keys ik WHERE ik.table_name = :table AND ik.record_id = c.record_id OFFSET 0) k",
              "candidates");
    if (analyze) sql.exec("ANALYZE ingestd_rt", "candidates");
    if (analyze) sql.exec("ANALYZE ingestd_cand", "candidates");
    // equality joins only (hashable); the tier comparison is a filter on top
    sql.exec("SET LOCAL enable_nestloop = off", "candidates");
    sql.exec("INSERT INTO ingestd_blocked SELECT DISTINCT c.grp, c.record_id FROM ingestd_cand c JOIN ingestd_rt rt ON "
             "rt.record_id = c.record_id JOIN ingestd_gk gk ON gk.grp = c.grp AND gk.tier = rt.tier WHERE rt.tier < c.tier",
             "candidates");
    sql.exec("DELETE FROM ingestd_cand c USING ingestd_blocked b WHERE c.grp = b.grp AND c.record_id = b.record_id",
             "candidates");
    sql.exec("RESET enable_nestloop", "candidates");
  }
};

}  // namespace

std::unique_ptr<Matcher> make_matcher(const config::Entity& entity, MatchTarget target) {
  return std::make_unique<ExactMatcher>(identity_tiers(entity), std::move(target));
}

}  // namespace ingestd::engine
