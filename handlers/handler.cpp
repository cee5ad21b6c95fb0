#include "handlers/handler.hpp"

#include <algorithm>

namespace ingestd {

std::string HandlerSpec::target(const Event& ev) const {
  const auto& p = ev.payload;
  return p.is_object() && p.contains(target_field) && p[target_field].is_string() ? p[target_field].get<std::string>()
                                                                                  : "";
}

bool HandlerSpec::is_builtin(const std::string& t) const {
  return std::find(builtin_targets.begin(), builtin_targets.end(), t) != builtin_targets.end();
}

EntityCounts& EntityCounts::operator+=(const EntityCounts& o) {
  inserted += o.inserted;
  updated += o.updated;
  unchanged += o.unchanged;
  rejected += o.rejected;
  review += o.review;
  skipped += o.skipped;
  for (auto& [t, n] : o.tier_matches) tier_matches[t] += n;
  for (auto& [b, n] : o.fuzzy_bands) fuzzy_bands[b] += n;
  match_weights.insert(match_weights.end(), o.match_weights.begin(), o.match_weights.end());
  return *this;
}

nlohmann::json EntityCounts::to_json() const {
  nlohmann::json j = {{"inserted", inserted}, {"updated", updated}, {"unchanged", unchanged},
                      {"rejected", rejected}, {"review", review}};
  if (skipped) j["skipped"] = skipped;
  if (!tier_matches.empty()) {
    nlohmann::json t = nlohmann::json::object();
    for (auto& [k, v] : tier_matches) t[std::to_string(k)] = v;
    j["matched_by_tier"] = t;
  }
  if (!fuzzy_bands.empty()) {
    nlohmann::json b = {{"merged", 0}, {"review", 0}, {"new", 0}};
    for (auto& [k, v] : fuzzy_bands) b[k] = v;
    j["fuzzy"] = b;
  }
  return j;
}

std::string excerpt(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  // back up to the start of a UTF-8 character (continuation bytes are 10xxxxxx)
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "… (" + std::to_string(s.size()) + " bytes)";
}

namespace {

/// The SAX pass behind event_shape_problem: counts depth and looks into every string and key,
/// stopping at the first problem, so a 20k-deep event is refused without building 20k nodes.
class EventShape : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string problem;
  bool malformed = false;
  std::string event_id, type;  // top-level strings seen before the problem, to answer the uploader

  bool null() override { return other(); }
  bool boolean(bool) override { return other(); }
  bool number_integer(number_integer_t) override { return other(); }
  bool number_unsigned(number_unsigned_t) override { return other(); }
  bool number_float(number_float_t, const string_t&) override { return other(); }
  bool binary(binary_t&) override { return other(); }
  bool string(string_t& s) override {
    if (!no_nul(s, "a string value")) return false;
    if (field_ && s.size() <= kMaxEventIdBytes) *field_ = s;
    field_ = nullptr;
    return true;
  }
  bool key(string_t& k) override {
    field_ = depth_ != 1 ? nullptr : k == "event_id" ? &event_id : k == "type" ? &type : nullptr;
    return no_nul(k, "a key");
  }
  bool start_object(std::size_t) override { return other() && enter(); }
  bool start_array(std::size_t) override { return other() && enter(); }
  bool end_object() override { return leave(); }
  bool end_array() override { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // parse_error, and also out_of_range for numbers like 1e99999 (found by fuzz_event)
    problem = "malformed JSON: " + excerpt(e.what(), 1024);
    malformed = true;
    return false;
  }

 private:
  bool enter() {
    if (++depth_ <= kMaxEventDepth) return true;
    problem = "JSON nested deeper than " + std::to_string(kMaxEventDepth) + " levels";
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }
  bool no_nul(const string_t& s, const char* what) {
    if (s.find('\0') == string_t::npos) return true;
    problem =
        std::string(what) + " contains a NUL character (\\u0000), which PostgreSQL cannot store: " + excerpt(s, 100);
    for (auto& c : problem)
      if (c == '\0') c = '?';  // the reason itself travels as a header and a text column
    return false;
  }
  bool other() {
    field_ = nullptr;
    return true;
  }
  int depth_ = 0;
  std::string* field_ = nullptr;  // where the next string value goes (event_id or type)
};

}  // namespace

EventShapeProblem event_head(std::string_view payload, size_t prefix) {
  EventShape shape;
  const char* b = payload.data();
  nlohmann::json::sax_parse(b, b + std::min(prefix, payload.size()), &shape);
  EventShapeProblem p;
  p.event_id = shape.event_id;
  p.type = shape.type;
  return p;
}

EventShapeProblem event_shape_problem(const std::string& payload) {
  EventShape shape;
  nlohmann::json::sax_parse(payload, &shape);
  EventShapeProblem p;
  p.reason = shape.problem;
  p.malformed = shape.malformed;
  if (!p.malformed) {
    p.event_id = shape.event_id;
    p.type = shape.type;
  }
  return p;
}

}  // namespace ingestd
