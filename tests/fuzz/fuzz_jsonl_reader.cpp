// libFuzzer target: the JSON Lines reader on arbitrary bytes, plain or behind the decompressing
// stream (so gzip/zstd magic in the input drives the decoders too). Properties: no crash, no
// hang, records bounded by the line cap, every record either read or rejected with a reason,
// and failures only as BatchError (a corrupt or truncated compressed stream).
#include <cstdint>
#include <sstream>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/engine/source/jsonl_reader.hpp"

namespace {

const std::vector<ingestd::engine::JsonlColumn>& columns() {
  using ingestd::engine::JsonlColumn;
  static const std::vector<JsonlColumn> c{JsonlColumn{{"a"}}, JsonlColumn{{"a.b", "b"}},
                                          JsonlColumn{{"person.email", "email"}}, JsonlColumn{{"x.y.z"}},
                                          JsonlColumn{{"tags"}}};
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  constexpr size_t kCap = 4096;
  const bool through_decoder = data[0] & 1;
  std::istringstream raw(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  try {
    std::unique_ptr<ingestd::engine::DecompressingBuf> buf;
    std::istream in(raw.rdbuf());
    if (through_decoder) {
      buf = std::make_unique<ingestd::engine::DecompressingBuf>(raw);
      in.rdbuf(buf.get());
    }
    in.exceptions(std::ios::badbit);
    ingestd::engine::JsonlReader reader(in, columns(), kCap);
    ingestd::engine::Record rec;
    while (reader.next(rec)) {
      if (rec.fields.size() != columns().size()) __builtin_trap();
      if (rec.raw.size() > kCap + 8) __builtin_trap();
      if (!rec.error.empty() && rec.error_code.empty()) __builtin_trap();
      for (const auto& f : rec.fields)
        if (f.size() > 2 * kCap + 16) __builtin_trap();  // captured JSON text is re-serialized
    }
  } catch (const ingestd::engine::BatchError&) {
  }
  return 0;
}
