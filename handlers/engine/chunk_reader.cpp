#include "handlers/engine/chunk_reader.hpp"

namespace ingestd::engine {

ChunkReader::ChunkReader(Fill fill) : fill_(std::move(fill)), thread_([this] { loop(); }) {}

ChunkReader::~ChunkReader() {
  {
    std::lock_guard lk(m_);
    cancel_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Chunk ChunkReader::take() {
  std::unique_lock lk(m_);
  cv_.wait(lk, [&] { return slot_.has_value() || error_; });
  if (error_) std::rethrow_exception(error_);
  Chunk c = std::move(*slot_);
  slot_.reset();
  cv_.notify_all();
  return c;
}

void ChunkReader::loop() {
  // A chunk is filled only once the one before was taken: the consumer merges one while this
  // thread holds the next, never a third (at the default 50,000 rows a chunk is some 60 MiB).
  for (;;) {
    {
      std::unique_lock lk(m_);
      cv_.wait(lk, [&] { return !slot_.has_value() || cancel_; });
      if (cancel_) return;
    }
    Chunk c;
    std::exception_ptr err;
    try {
      fill_(c, cancel_);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard lk(m_);
    if (cancel_) return;
    if (err) error_ = err;
    else slot_ = std::move(c);
    cv_.notify_all();
    if (err || slot_->last) return;
  }
}

}  // namespace ingestd::engine
