// The bytes of an input file as a reader wants them: plain, or gzip / zstd inflated on the fly
// (detected by magic bytes, whatever the file is called), for every text format.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <istream>
#include <memory>
#include <streambuf>
#include <string>
#include <string_view>

namespace ingestd::engine {

enum class Compression { None, Gzip, Zstd };

std::string_view to_string(Compression c);

/// The compression the first bytes of a file announce: gzip 1f 8b, zstd 28 b5 2f fd.
Compression sniff_compression(std::string_view head);

/// @brief A read-only streambuf over `raw` that inflates gzip or zstd (multi-member / multi-frame
/// too) and passes anything else through. Memory: two fixed blocks. A corrupt or truncated
/// stream throws BatchError naming the compressed byte offset; an istream over it must have
/// badbit in its exceptions() so the error reaches the reader instead of looking like EOF.
class DecompressingBuf : public std::streambuf {
 public:
  explicit DecompressingBuf(std::istream& raw);
  ~DecompressingBuf() override;
  DecompressingBuf(const DecompressingBuf&) = delete;
  DecompressingBuf& operator=(const DecompressingBuf&) = delete;

  Compression compression() const { return compression_; }
  /// Bytes consumed from `raw` (the compressed size so far): progress against the file size.
  uint64_t raw_bytes() const { return raw_bytes_; }

  class Decoder;

 protected:
  int_type underflow() override;

 private:
  bool refill();

  std::istream& raw_;
  Compression compression_ = Compression::None;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<char[]> in_, out_;
  const char* in_pos_ = nullptr;
  const char* in_end_ = nullptr;
  bool raw_eof_ = false;
  uint64_t raw_bytes_ = 0;  // handed to the decoder
};

/// @brief An input file opened for a record source: its decompressed bytes as an istream, its
/// compressed progress, and a check that it is still the file whose hash was verified.
/// Throws BatchError when the file at `path` is no longer the one `at_open` describes (size,
/// modification time, inode): the hash was checked before reading, so a rewritten file is not
/// the one announced.
void check_file_unchanged(const std::string& path, const struct stat& at_open);

/// @brief What became of the file `at_open` describes, as seen through `path` now.
enum class FileChange { None, Modified, Replaced };  // Replaced: another file, or none, at path
FileChange file_change(const std::string& path, const struct stat& at_open);

class InputFile {
 public:
  /// Throws BatchError when the file cannot be opened.
  explicit InputFile(const std::string& path);

  std::istream& stream() { return in_; }
  Compression compression() const { return buf_.compression(); }
  uint64_t bytes_read() const { return buf_.raw_bytes(); }
  const std::string& path() const { return path_; }
  /// Throws BatchError when the file's size, time or inode changed since it was opened.
  void check_unchanged() const;

 private:
  std::string path_;
  std::ifstream file_;
  struct stat st_ {};
  DecompressingBuf buf_;
  std::istream in_;
};

}  // namespace ingestd::engine
