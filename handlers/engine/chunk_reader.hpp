// Reading ahead: the next chunk is read and normalized on its own thread while the database
// merges the previous one. At most two chunks exist at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "handlers/engine/row.hpp"

namespace ingestd::engine {

/// @brief Fills chunks on a thread of its own, one ahead of the consumer.
class ChunkReader {
 public:
  using Fill = std::function<void(Chunk&, const std::atomic<bool>& cancel)>;
  explicit ChunkReader(Fill fill);
  ~ChunkReader();
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;
  /// The next chunk in input order; rethrows what the reader hit (a CSV error, a changed file).
  Chunk take();

 private:
  void loop();

  Fill fill_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<bool> cancel_{false};
  std::optional<Chunk> slot_;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace ingestd::engine
