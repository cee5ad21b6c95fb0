// libFuzzer target: the CSV reader on arbitrary bytes, both encodings, two delimiters.
// Properties: no crash, no hang, bounded records, and errors only as CsvError.
#include <cstdint>
#include <sstream>

#include "handlers/engine/source/csv_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ingestd::config::CsvOptions o;
  o.delimiter = (data[0] & 1) ? ';' : ',';
  o.encoding = (data[0] & 2) ? "latin1" : "utf-8";
  std::string s(reinterpret_cast<const char*>(data + 1), size - 1);
  std::istringstream in(s);
  try {
    ingestd::engine::CsvReader reader(in, o, 4096);
    ingestd::engine::CsvRecord rec;
    while (reader.next(rec)) {
      // a record never holds more text than the input could produce (latin1 doubles at most)
      if (rec.raw.size() > 2 * s.size() + 8) __builtin_trap();
    }
  } catch (const ingestd::engine::CsvError&) {
  }
  return 0;
}
