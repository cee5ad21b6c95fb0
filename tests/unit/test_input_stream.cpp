// Unit tests for compressed input (handlers/engine/source/input_stream.hpp): gzip and zstd are
// detected by their magic bytes and inflated; truncation is an error naming the byte, not EOF.
#include <doctest/doctest.h>
#include <zlib.h>
#include <zstd.h>

#include <sstream>
#include <stdexcept>
#include <string>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/engine/source/jsonl_reader.hpp"

using ingestd::engine::BatchError;
using ingestd::engine::Compression;
using ingestd::engine::DecompressingBuf;

namespace {

std::string gzip(const std::string& plain) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, uLong(plain.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = uInt(plain.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& plain) {
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), plain.data(), plain.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

/// Everything the streambuf yields, read as a reader does (with badbit exceptions on).
std::string inflate_all(const std::string& stored, Compression* seen = nullptr) {
  std::istringstream raw(stored);
  DecompressingBuf buf(raw);
  if (seen) *seen = buf.compression();
  std::istream in(&buf);
  in.exceptions(std::ios::badbit);
  std::string out;
  char block[4096];
  while (in.read(block, sizeof block) || in.gcount() > 0) out.append(block, size_t(in.gcount()));
  CHECK(buf.raw_bytes() == stored.size());
  return out;
}

std::string sample(size_t rows) {
  std::string s = "Cedula,Nombre\n";
  for (size_t i = 0; i < rows; ++i) s += std::to_string(40000000 + i) + ",Nombre " + std::to_string(i) + "\n";
  return s;
}

}  // namespace

TEST_CASE("input: plain bytes pass through, whatever they are") {
  Compression c{};
  CHECK(inflate_all("a,b\n1,2\n", &c) == "a,b\n1,2\n");
  CHECK(c == Compression::None);
  CHECK(inflate_all("") == "");
  CHECK(inflate_all("\x1f") == "\x1f");   // one byte of a magic is no magic
  const std::string big = sample(20000);  // several blocks
  CHECK(inflate_all(big) == big);
}

TEST_CASE("input: gzip is detected and inflated, several members in a row too") {
  const std::string plain = sample(20000);
  Compression c{};
  CHECK(inflate_all(gzip(plain), &c) == plain);
  CHECK(c == Compression::Gzip);
  CHECK(inflate_all(gzip("a\n") + gzip("b\n")) == "a\nb\n");  // `cat a.gz b.gz`
}

TEST_CASE("input: zstd is detected and inflated, several frames in a row too") {
  const std::string plain = sample(20000);
  Compression c{};
  CHECK(inflate_all(zstd(plain), &c) == plain);
  CHECK(c == Compression::Zstd);
  CHECK(inflate_all(zstd("a\n") + zstd("b\n")) == "a\nb\n");
}

TEST_CASE("input: a truncated gzip or zstd stream is an error naming the byte, not a short file") {
  const std::string plain = sample(20000);
  const std::string gz = gzip(plain), zs = zstd(plain);
  const std::string gz_cut = gz.substr(0, gz.size() / 2), zs_cut = zs.substr(0, zs.size() / 2);
  CHECK_THROWS_WITH_AS(inflate_all(gz_cut),
                       doctest::Contains(("truncated gzip stream at byte " + std::to_string(gz_cut.size())).c_str()),
                       BatchError);
  CHECK_THROWS_WITH_AS(inflate_all(zs_cut),
                       doctest::Contains(("truncated zstd stream at byte " + std::to_string(zs_cut.size())).c_str()),
                       BatchError);
  // only the 8-byte trailer missing: still truncated
  CHECK_THROWS_AS(inflate_all(gz.substr(0, gz.size() - 4)), BatchError);
  CHECK_THROWS_WITH_AS(inflate_all(std::string("\x1f\x8b", 2)), doctest::Contains("truncated gzip"), BatchError);
}

TEST_CASE("input: corrupt compressed data is an error, not garbage rows") {
  std::string gz = gzip(sample(1000));
  for (size_t i = 20; i < 60; ++i) gz[i] = char(~gz[i]);
  CHECK_THROWS_WITH_AS(inflate_all(gz), doctest::Contains("gzip stream at byte"), BatchError);
  std::string zs = zstd(sample(1000));
  for (size_t i = 20; i < 60; ++i) zs[i] = char(~zs[i]);
  CHECK_THROWS_WITH_AS(inflate_all(zs), doctest::Contains("zstd stream at byte"), BatchError);
}

TEST_CASE("input: a reader over a truncated stream gets the error, the rows before it first") {
  std::string jsonl;
  for (int i = 0; i < 30000; ++i) jsonl += "{\"n\":" + std::to_string(i) + "}\n";
  const std::string gz = gzip(jsonl);
  std::istringstream raw(gz.substr(0, gz.size() * 3 / 4));
  DecompressingBuf buf(raw);
  std::istream in(&buf);
  in.exceptions(std::ios::badbit);
  ingestd::engine::JsonlReader reader(in, {ingestd::engine::JsonlColumn{{"n"}}});
  ingestd::engine::Record rec;
  int rows = 0, bad = 0;
  CHECK_THROWS_WITH_AS(
      [&] {
        while (reader.next(rec)) {
          bad += !rec.error.empty();  // never a half line as a row
          ++rows;
        }
      }(),
      doctest::Contains("truncated gzip stream"), BatchError);
  CHECK(rows > 10000);
  CHECK(bad == 0);
}
