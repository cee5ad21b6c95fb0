// libFuzzer target: event vetting (JSON parse, registry, required fields, config checks) on
// arbitrary bytes. Property: it never throws or crashes; a valid verdict has a handler.
#include <cstdint>

#include "handlers/handler.hpp"

namespace {
ingestd::config::Config make_config() {
  ingestd::config::Config c;
  ingestd::config::Dataset d;
  d.name = "people";
  c.datasets["people"] = d;
  ingestd::config::Job j;
  j.name = "backfill";
  j.kind = ingestd::config::JobKind::Migrate;
  c.jobs["backfill"] = j;
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ingestd::config::Config cfg = make_config();
  if (size < 1) return 0;
  std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  ingestd::Event ev;
  ev.topic = (data[0] & 1) ? "ingest.jobs" : "ingest.files";
  auto v = ingestd::vet_event(cfg, ev, payload, (data[0] & 1) ? "jobs" : "files");
  if (v.reason.empty() && !v.spec) __builtin_trap();
  // what reaches the inbox: a key that fits its index, a verdict's reason of bounded size
  if (ev.event_id.size() > ingestd::kMaxEventIdBytes) __builtin_trap();
  if (v.reason.find('\0') != std::string::npos) __builtin_trap();
  return 0;
}
