// A small pool of PostgreSQL connections for readers off the worker thread: the HTTP /status
// handler on civetweb's threads and the load command's progress bar. The worker keeps a
// connection of its own (a batch's advisory lock lives on it); postgres.pool_size counts both.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"

namespace ingestd {

class PgPool {
 public:
  /// @brief Thrown when every connection stays leased for the whole wait.
  struct Busy : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  /// @brief One connection, back to the pool when the lease ends. A connection that closed, or
  /// whose lease ends while an exception unwinds, is dropped: the next lease opens a fresh one.
  class Lease {
   public:
    Lease(Lease&& o) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() const { return *conn_; }
    pqxx::connection* operator->() const { return conn_.get(); }
    /// True when the connection served an earlier lease (it may have broken since).
    bool reused() const { return reused_; }

   private:
    friend class PgPool;
    Lease(PgPool& pool, std::unique_ptr<pqxx::connection> conn, bool reused);
    PgPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    int exceptions_at_start_;
    bool reused_;
  };

  /// At most `capacity` connections to `url`, opened on first need.
  PgPool(std::string url, size_t capacity, std::chrono::milliseconds wait = std::chrono::seconds(5));
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  /// An idle connection, or a new one while fewer than `capacity` are open; otherwise waits for
  /// one to come back. Throws Busy after the wait, or libpqxx's error when PostgreSQL refuses.
  Lease acquire();
  size_t capacity() const { return capacity_; }

 private:
  void give_back(std::unique_ptr<pqxx::connection> conn, bool drop);

  std::string url_;
  size_t capacity_;
  std::chrono::milliseconds wait_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  size_t open_ = 0;  // idle and leased
};

/// The readers' share of postgres.pool_size: all but the worker's connection, at least one.
size_t reader_pool_size(const config::Config& cfg);

}  // namespace ingestd
