#include "handlers/engine/row_builder.hpp"

#include <algorithm>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/normalize.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

namespace {

const std::string kEmpty;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string scrub_utf8(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size() && !(n == 1 && c == 0);
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n == 2 && c < 0xC2) ok = false;
    if (ok) {
      o.append(s, i, n);
      i += n;
    } else {
      o += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return o;
}

namespace {

/// A message as row errors keep it: messages quote values shortened already (quoted_value);
/// this bounds whatever else (a database's message) a row error may carry.
std::string row_message(const std::string& message) { return scrub_utf8(excerpt(message, kMaxRowErrorMessage)); }

}  // namespace

void reject(RowErrors& errors, Row& row, const std::string& field, const std::string& code, const std::string& message,
            const std::string& shown) {
  if (!row.rejected) ++errors.rows;
  row.rejected = true;
  errors.list.push_back({row.number, scrub_utf8(field), code, row_message(message), scrub_utf8(row.raw)});
  // The message may quote the value (an e-mail, a cédula): results and /status get the code.
  if (errors.first.size() < 10)
    errors.first.push_back("row " + std::to_string(row.number) + (field.empty() ? "" : ", " + scrub_utf8(field)) + ": " +
                           code + (shown.empty() ? "" : " (" + shown + ")"));
}

void warn(RowErrors& errors, const Row& row, const std::string& field, const std::string& code,
          const std::string& message) {
  errors.list.push_back({row.number, scrub_utf8(field), code, row_message(message), scrub_utf8(row.raw), true});
}

size_t held_bytes(const Row& row, const RowErrors& errors, size_t errors_from) {
  size_t n = sizeof(Row) + row.raw.size();
  for (const auto* table : {&row.values, &row.keys, &row.deferred})
    for (const auto& entity : *table)
      for (const auto& v : entity) n += sizeof(v) + (v ? v->size() : 0);
  for (const auto& s : row.source) n += s.size();
  for (size_t i = errors_from; i < errors.list.size(); ++i) {
    const RowError& e = errors.list[i];
    n += sizeof(RowError) + e.field.size() + e.message.size() + e.raw.size();
  }
  return n;
}

RowBuilder::RowBuilder(const config::Dataset& ds, const std::vector<std::string>& header,
                       const std::map<std::string, std::string>& vars)
    : ds_(ds), vars_(vars), header_(header) {
  for (const auto& v : ds.null_values) null_values_.insert(lower(trim(v)));
  for (size_t i = 0; i < header.size(); ++i) {
    exact_.emplace(trim(header[i]), int(i));
    folded_.emplace(lower(trim(header[i])), int(i));
  }
  for (size_t e = 0; e < ds.entities.size(); ++e) {
    const config::Entity& ent = ds.entities[e];
    EntityMapping m;
    m.cfg = &ent;
    m.index = e;
    for (const config::Field& f : ent.fields) {
      int ref = -1;
      if (f.ref)
        for (size_t k = 0; k < e; ++k)
          if (ds.entities[k].name == *f.ref) ref = int(k);
      m.source_index.push_back(f.ref ? EntityMapping::kAbsent : column_of(ent, f));
      m.ref_entity.push_back(ref);
      if (f.lookup && f.on_missing == config::OnMissing::Defer) m.has_deferred = true;
    }
    m.in_tier.assign(ent.fields.size(), false);
    for (const auto& t : identity_tiers(ent))
      for (int k : t.fields) m.in_tier[size_t(k)] = true;
    for (int k : fuzzy_fields(ent)) m.in_tier[size_t(k)] = true;
    entities_.push_back(std::move(m));
  }
}

int RowBuilder::column_of(const config::Entity& ent, const config::Field& f) {
  if (!f.from.empty() && f.from.front().size() > 1 && f.from.front()[0] == '$') return EntityMapping::kVariable;
  for (const auto& name : f.from) {
    if (auto it = exact_.find(name); it != exact_.end()) return it->second;
    if (auto it = folded_.find(lower(name)); it != folded_.end()) return it->second;
  }
  if (f.required) {
    std::string looked;
    for (auto& n : f.from) looked += (looked.empty() ? "'" : ", '") + n + "'";
    throw BatchError("missing required column " + looked + " for field " + ent.name + "." + f.name + " of dataset " +
                     ds_.name);
  }
  if (!f.from.empty())
    warnings_.push_back("dataset " + ds_.name + ": column '" + f.from.front() + "' for field " + ent.name + "." + f.name +
                        " is not in the file; the field stays empty");
  return EntityMapping::kAbsent;
}

size_t RowBuilder::pass_through(const std::string& column, const std::string& needed_for) {
  auto it = std::find(header_.begin(), header_.end(), column);
  if (it == header_.end()) throw BatchError(needed_for + ": the source has no column " + column);
  pass_through_.push_back(int(it - header_.begin()));
  return pass_through_.size() - 1;
}

void RowBuilder::build(Record& rec, int64_t number, Row& row, RowErrors& errors) const {
  row.number = number;
  row.raw = std::move(rec.raw);
  if (!rec.error.empty()) {  // the source could not read the record (no JSON object, an Excel error)
    reject(errors, row, "", rec.error_code.empty() ? "invalid_record" : rec.error_code, rec.error);
    return;
  }
  if (rec.invalid_utf8) {
    reject(errors, row, "", "invalid_encoding", "row is not valid UTF-8 (set csv.encoding or options.encoding)");
    return;
  }
  if (rec.fields.size() != header_.size()) {
    reject(errors, row, "", "ragged_row",
           "row has " + std::to_string(rec.fields.size()) + " fields, the header has " + std::to_string(header_.size()));
    return;
  }
  const size_t n = entities_.size();
  row.values.resize(n);
  row.keys.resize(n);
  row.record_ids.resize(n);
  row.in_review.assign(n, false);
  row.deferred.resize(n);
  row.source.reserve(pass_through_.size());
  for (int idx : pass_through_) row.source.push_back(rec.fields[size_t(idx)]);
  for (const EntityMapping& m : entities_) build_entity(rec, m, row, errors);
  if (row.rejected) {
    row.values.clear();
    row.keys.clear();
  }
}

void RowBuilder::build_entity(const Record& rec, const EntityMapping& m, Row& row, RowErrors& errors) const {
  const auto& fields = m.cfg->fields;
  const size_t e = m.index;
  row.values[e].resize(fields.size());
  row.keys[e].resize(fields.size());
  if (m.has_deferred) row.deferred[e].resize(fields.size());
  for (size_t k = 0; k < fields.size(); ++k) {
    const config::Field& f = fields[k];
    if (m.ref_entity[k] >= 0) continue;  // filled after the referenced entity resolves
    const int idx = m.source_index[k];
    if (idx == EntityMapping::kAbsent) {
      if (f.required) reject(errors, row, f.name, "required", "required field " + m.cfg->name + "." + f.name + " is missing");
      continue;
    }
    std::string var_value;
    if (idx == EntityMapping::kVariable) {
      auto it = vars_.find(f.from.front().substr(1));
      var_value = it == vars_.end() ? "" : it->second;
    }
    const std::string& given = idx == EntityMapping::kVariable ? var_value : rec.fields[size_t(idx)];
    // a placeholder ("N/A", "sin correo") is no value: it must never become a key many share
    const std::string& raw = !null_values_.empty() && null_values_.count(lower(trim(given))) ? kEmpty : given;
    const std::string col = f.from.empty() ? f.name : f.from.front();
    Normalized nv = normalize(f.normalize, raw);
    if (!nv.error.empty()) {
      reject(errors, row, col, "invalid_value", nv.error + ": " + quoted_value(raw));
      continue;
    }
    if (!nv.nulled.empty()) warn(errors, row, col, "invalid_value_nulled", nv.nulled + ": " + quoted_value(raw) + "; stored NULL");
    Parsed parsed = parse_typed(f.type, f.formats, nv.value);
    if (!parsed.error.empty() && !f.normalize.invalid_reject) {
      warn(errors, row, col, "invalid_value_nulled", parsed.error + "; stored NULL");
      parsed = Parsed{};
    }
    if (!parsed.error.empty()) {
      reject(errors, row, col, "invalid_value", parsed.error);
      continue;
    }
    if (f.required && !parsed.value) {
      reject(errors, row, col, "required", "required field " + m.cfg->name + "." + f.name + " (column " + col + ") is empty");
      continue;
    }
    row.values[e][k] = std::move(parsed.value);
    if (row.values[e][k] && m.in_tier[k]) row.keys[e][k] = field_key(f, nv, *row.values[e][k]);
  }
}

}  // namespace ingestd::engine
