// gzip (zlib) and zstd (libzstd) behind one streambuf, so the CSV and JSON Lines readers read
// compressed files as they read plain ones, one block at a time.
#include "handlers/engine/source/input_stream.hpp"

#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "handlers/engine/errors.hpp"

namespace ingestd::engine {

namespace {

constexpr size_t kInBlock = 64u << 10;
constexpr size_t kOutBlock = 128u << 10;

std::string at_byte(uint64_t at) { return " at byte " + std::to_string(at); }

std::istream& opened(std::ifstream& f, const std::string& path) {
  if (!f) throw BatchError("cannot open " + path);
  return f;
}

}  // namespace

/// @brief One compression format's decoder.
class DecompressingBuf::Decoder {
 public:
  virtual ~Decoder() = default;
  /// Inflates from [in, end) into `out` (at most `cap` bytes) and advances `in`; `at` is the
  /// compressed offset of `in`, for messages. Returns the bytes written (0: needs more input).
  virtual size_t decode(const char*& in, const char* end, char* out, size_t cap, uint64_t at) = 0;
  /// The input ended at `at`: throws when it ended inside a compressed stream.
  virtual void finish(uint64_t at) = 0;
};

namespace {

class PlainDecoder : public DecompressingBuf::Decoder {
 public:
  size_t decode(const char*& in, const char* end, char* out, size_t cap, uint64_t) override {
    const size_t n = std::min(cap, size_t(end - in));
    std::memcpy(out, in, n);
    in += n;
    return n;
  }
  void finish(uint64_t) override {}
};

class GzipDecoder : public DecompressingBuf::Decoder {
 public:
  GzipDecoder() {
    // 15 + 16: gzip wrapper only, the largest window.
    if (inflateInit2(&z_, 15 + 16) != Z_OK) throw BatchError("cannot start the gzip decoder (out of memory?)");
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

  size_t decode(const char*& in, const char* end, char* out, size_t cap, uint64_t at) override {
    if (ended_ && in < end) {  // another gzip member follows (`cat a.gz b.gz`)
      inflateReset(&z_);
      ended_ = false;
    }
    if (ended_) return 0;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in));
    z_.avail_in = uInt(end - in);
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = uInt(cap);
    const int rc = inflate(&z_, Z_NO_FLUSH);
    const uint64_t used = uint64_t(reinterpret_cast<const char*>(z_.next_in) - in);
    in += used;
    if (rc == Z_STREAM_END)
      ended_ = true;
    else if (rc != Z_OK && rc != Z_BUF_ERROR)
      throw BatchError("corrupt gzip stream" + at_byte(at + used) + ": " + (z_.msg ? z_.msg : "inflate failed"));
    return cap - z_.avail_out;
  }

  void finish(uint64_t at) override {
    if (!ended_)
      throw BatchError("truncated gzip stream" + at_byte(at) +
                       ": the file ends inside the compressed data (an interrupted upload or copy?)");
  }

 private:
  z_stream z_{};
  bool ended_ = false;
};

class ZstdDecoder : public DecompressingBuf::Decoder {
 public:
  ZstdDecoder() : ctx_(ZSTD_createDCtx()) {
    if (!ctx_) throw BatchError("cannot start the zstd decoder (out of memory?)");
  }
  ~ZstdDecoder() override { ZSTD_freeDCtx(ctx_); }

  size_t decode(const char*& in, const char* end, char* out, size_t cap, uint64_t at) override {
    ZSTD_inBuffer src{in, size_t(end - in), 0};
    ZSTD_outBuffer dst{out, cap, 0};
    const size_t rc = ZSTD_decompressStream(ctx_, &dst, &src);
    in += src.pos;
    if (ZSTD_isError(rc))
      throw BatchError("corrupt zstd stream" + at_byte(at + src.pos) + ": " + ZSTD_getErrorName(rc));
    // 0: a frame is complete and flushed; anything else: the frame goes on.
    if (src.pos > 0 || dst.pos > 0) frame_done_ = rc == 0;
    return dst.pos;
  }

  void finish(uint64_t at) override {
    if (!frame_done_)
      throw BatchError("truncated zstd stream" + at_byte(at) +
                       ": the file ends inside the compressed data (an interrupted upload or copy?)");
  }

 private:
  ZSTD_DCtx* ctx_;
  bool frame_done_ = false;
};

}  // namespace

std::string_view to_string(Compression c) {
  switch (c) {
    case Compression::None:
      return "none";
    case Compression::Gzip:
      return "gzip";
    case Compression::Zstd:
      return "zstd";
  }
  return "?";
}

Compression sniff_compression(std::string_view head) {
  if (head.size() >= 2 && head[0] == '\x1f' && head[1] == '\x8b') return Compression::Gzip;
  if (head.size() >= 4 && head.substr(0, 4) == std::string_view("\x28\xb5\x2f\xfd", 4)) return Compression::Zstd;
  return Compression::None;
}

DecompressingBuf::DecompressingBuf(std::istream& raw) : raw_(raw), in_(new char[kInBlock]), out_(new char[kOutBlock]) {
  refill();
  compression_ = sniff_compression(std::string_view(in_pos_, size_t(in_end_ - in_pos_)));
  switch (compression_) {
    case Compression::None:
      decoder_ = std::make_unique<PlainDecoder>();
      break;
    case Compression::Gzip:
      decoder_ = std::make_unique<GzipDecoder>();
      break;
    case Compression::Zstd:
      decoder_ = std::make_unique<ZstdDecoder>();
      break;
  }
}

DecompressingBuf::~DecompressingBuf() = default;

bool DecompressingBuf::refill() {
  if (raw_eof_) return false;
  raw_.read(in_.get(), std::streamsize(kInBlock));
  if (raw_.bad()) throw BatchError("read error on the input file" + at_byte(raw_bytes_));
  const auto n = size_t(raw_.gcount());
  if (n < kInBlock) raw_eof_ = true;
  in_pos_ = in_.get();
  in_end_ = in_pos_ + n;
  return n > 0;
}

DecompressingBuf::int_type DecompressingBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  for (;;) {
    if (in_pos_ == in_end_) refill();
    const char* before = in_pos_;
    const size_t n = decoder_->decode(in_pos_, in_end_, out_.get(), kOutBlock, raw_bytes_);
    raw_bytes_ += uint64_t(in_pos_ - before);
    if (n > 0) {
      setg(out_.get(), out_.get(), out_.get() + n);
      return traits_type::to_int_type(*gptr());
    }
    if (in_pos_ == in_end_ && raw_eof_) {
      decoder_->finish(raw_bytes_);
      return traits_type::eof();
    }
  }
}

InputFile::InputFile(const std::string& path)
    : path_(path), file_(path, std::ios::binary), buf_(opened(file_, path)), in_(&buf_) {
  if (stat(path.c_str(), &st_) != 0) throw BatchError("cannot stat " + path);
  // A decoder's error must reach the reader as itself, not as a silent end of file.
  in_.exceptions(std::ios::badbit);
}

FileChange file_change(const std::string& path, const struct stat& at_open) {
  struct stat now {};
  if (stat(path.c_str(), &now) != 0 || now.st_ino != at_open.st_ino || now.st_dev != at_open.st_dev)
    return FileChange::Replaced;
  if (now.st_size != at_open.st_size || now.st_mtim.tv_sec != at_open.st_mtim.tv_sec ||
      now.st_mtim.tv_nsec != at_open.st_mtim.tv_nsec)
    return FileChange::Modified;
  return FileChange::None;
}

void check_file_unchanged(const std::string& path, const struct stat& at_open) {
  if (file_change(path, at_open) != FileChange::None)
    throw BatchError("file " + path +
                     " changed while it was being read (size, time or inode); rows committed "
                     "so far stay in this batch, which can be rolled back");
}

void InputFile::check_unchanged() const { check_file_unchanged(path_, st_); }

}  // namespace ingestd::engine
