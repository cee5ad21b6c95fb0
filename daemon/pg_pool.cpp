#include "daemon/pg_pool.hpp"

#include <exception>

namespace ingestd {

PgPool::Lease::Lease(PgPool& pool, std::unique_ptr<pqxx::connection> conn, bool reused)
    : pool_(&pool), conn_(std::move(conn)), exceptions_at_start_(std::uncaught_exceptions()), reused_(reused) {}

PgPool::Lease::Lease(Lease&& o) noexcept
    : pool_(o.pool_), conn_(std::move(o.conn_)), exceptions_at_start_(o.exceptions_at_start_), reused_(o.reused_) {}

PgPool::Lease::~Lease() {
  if (!conn_) return;
  // A failure while the connection was in use may have broken it; a new one is cheap next to
  // handing a broken one to the next reader.
  const bool drop = std::uncaught_exceptions() > exceptions_at_start_ || !conn_->is_open();
  pool_->give_back(std::move(conn_), drop);
}

PgPool::PgPool(std::string url, size_t capacity, std::chrono::milliseconds wait)
    : url_(std::move(url)), capacity_(capacity < 1 ? 1 : capacity), wait_(wait) {}

PgPool::Lease PgPool::acquire() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (!returned_.wait_for(lk, wait_, [&] { return !idle_.empty() || open_ < capacity_; }))
      throw Busy("all " + std::to_string(capacity_) + " PostgreSQL connections of the readers' pool are in use");
    if (idle_.empty()) break;
    std::unique_ptr<pqxx::connection> c = std::move(idle_.back());
    idle_.pop_back();
    if (c->is_open()) return Lease(*this, std::move(c), true);
    --open_;  // closed while idle: drop it and look again
  }
  ++open_;  // counted before connecting, so concurrent callers stay within the capacity
  lk.unlock();
  try {
    return Lease(*this, std::make_unique<pqxx::connection>(url_), false);
  } catch (...) {
    lk.lock();
    --open_;
    returned_.notify_one();
    throw;
  }
}

void PgPool::give_back(std::unique_ptr<pqxx::connection> conn, bool drop) {
  {
    std::lock_guard lk(mu_);
    if (drop)
      --open_;
    else
      idle_.push_back(std::move(conn));
  }
  returned_.notify_one();
  // a dropped connection closes here, outside the lock
}

size_t reader_pool_size(const config::Config& cfg) {
  return cfg.postgres.pool_size > 2 ? size_t(cfg.postgres.pool_size - 1) : 1;
}

}  // namespace ingestd
