// A document's media type (libmagic, from the descriptor already opened) and its copy into a
// content-addressed store (store_dir/ab/cd/<sha256>), written atomically.
#include <fcntl.h>
#include <magic.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <type_traits>
#include <vector>

#include "handlers/engine/errors.hpp"
#include "handlers/file_arrival/documents.hpp"

namespace ingestd::file_arrival {

namespace fs = std::filesystem;

namespace {

/// @brief A file descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail(const std::string& what) { throw engine::BatchError(what + ": " + std::strerror(errno)); }

/// Writes everything `in` reads from its start into `out`.
void copy_all(int in, int out, const std::string& to) {
  std::vector<char> buf(1 << 20);
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(in, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read the document");
    if (n == 0) return;
    at += n;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf.data() + done, size_t(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("cannot write " + to);
      done += w;
    }
  }
}

/// Makes the rename of a new file in `dir` durable.
void sync_directory(const fs::path& dir) {
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0 || ::fsync(d.fd) != 0) fail("cannot sync directory " + dir.string());
}

}  // namespace

std::string media_type(int fd) {
  std::unique_ptr<std::remove_pointer_t<magic_t>, decltype(&magic_close)> m(magic_open(MAGIC_MIME_TYPE), magic_close);
  if (!m || magic_load(m.get(), nullptr) != 0)
    throw engine::BatchError(std::string("libmagic cannot load its database: ") +
                             (m ? magic_error(m.get()) : "out of memory"));
  // magic_descriptor reads from the current offset; the file is hashed and copied with pread
  if (::lseek(fd, 0, SEEK_SET) < 0) fail("cannot rewind the document");
  const char* type = magic_descriptor(m.get(), fd);
  if (!type) throw engine::BatchError(std::string("libmagic cannot read the document's type: ") + magic_error(m.get()));
  return type;
}

std::string store_path(const std::string& store_dir, const std::string& sha256) {
  return (fs::path(store_dir) / sha256.substr(0, 2) / sha256.substr(2, 2) / sha256).string();
}

std::string store_copy(int fd, const std::string& store_dir, const std::string& sha256) {
  const fs::path target = store_path(store_dir, sha256);
  std::error_code ec;
  if (fs::exists(target, ec) && file_digest(target.string()).first == sha256) return target.string();
  fs::create_directories(target.parent_path(), ec);
  if (ec)
    throw engine::BatchError("cannot create store directory " + target.parent_path().string() + ": " + ec.message());
  std::string tmp = (target.parent_path() / ("." + sha256 + ".XXXXXX")).string();
  Fd out{::mkstemp(tmp.data())};
  if (out.fd < 0) fail("cannot create a file in " + target.parent_path().string());
  try {
    copy_all(fd, out.fd, tmp);
    if (::fchmod(out.fd, 0640) != 0 || ::fsync(out.fd) != 0) fail("cannot write " + tmp);
    if (file_digest(tmp).first != sha256)
      throw engine::BatchError("the document changed while it was copied into " + store_dir + "; nothing was stored");
    if (::rename(tmp.c_str(), target.c_str()) != 0) fail("cannot rename " + tmp + " to " + target.string());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_directory(target.parent_path());
  return target.string();
}

}  // namespace ingestd::file_arrival
