// `ingestd load FILE --dataset NAME [--dry-run]` and `ingestd run-job NAME [--mode M] [--param
// K=V] [--dry-run]`: one file or one job through the pipeline without Kafka. The event an
// uploader would have sent goes through the same inbox, worker and retries as in the daemon; in
// a terminal a progress line follows the batch's checkpoints.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <thread>

#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/inbox.hpp"
#include "daemon/pg_pool.hpp"
#include "daemon/schema.hpp"
#include "daemon/worker.hpp"

namespace ingestd {

namespace {

using Clock = std::chrono::steady_clock;

/// @brief In a terminal, a progress bar on stderr from the batch's own checkpoints, read every
/// half second on a connection leased from `readers`. A courtesy: the load goes on without it.
class ProgressBar {
 public:
  ProgressBar(const config::Config& cfg, PgPool& readers, std::string event_id, Clock::time_point t0)
      : readers_(readers), schema_(cfg.postgres.bookkeeping_schema), event_id_(std::move(event_id)), t0_(t0) {
    if (isatty(STDERR_FILENO)) thread_ = std::thread([this] { follow(); });
  }
  ~ProgressBar() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

 private:
  void follow() {
    try {
      auto pc = readers_.acquire();
      const std::string qs = pc->quote_name(schema_);
      while (!done_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        pqxx::read_transaction tx(*pc);
        auto r = tx.exec_params("SELECT b.rows_done, b.bytes_done, b.size_bytes FROM " + qs + ".events e JOIN " + qs +
                                    ".batches b ON b.id = e.batch_id WHERE e.event_id = $1",
                                event_id_);
        if (r.empty()) continue;
        draw(r[0][0].as<int64_t>(), r[0][1].as<int64_t>(), r[0][2].is_null() ? 0 : r[0][2].as<int64_t>());
      }
      fprintf(stderr, "\n");
    } catch (const std::exception&) {
      // progress is a courtesy: the load goes on without it
    }
  }

  /// A bar when the input's size is known (a file), else rows and their rate (a job).
  void draw(int64_t rows, int64_t bytes, int64_t size) const {
    double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    if (size <= 0) {
      fprintf(stderr, "\r%lld rows  %.0f rows/s  %.0f s ", (long long)rows, secs > 0 ? double(rows) / secs : 0.0, secs);
      fflush(stderr);
      return;
    }
    double frac = std::min(1.0, double(bytes) / double(size));
    int filled = int(frac * 40);
    fprintf(stderr, "\r[%s%s] %3d%%  %lld rows  %.0f rows/s ", std::string(size_t(filled), '#').c_str(),
            std::string(size_t(40 - filled), '.').c_str(), int(frac * 100), (long long)rows,
            secs > 0 ? double(rows) / secs : 0.0);
    fflush(stderr);
  }

  PgPool& readers_;
  std::string schema_, event_id_;
  Clock::time_point t0_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// The file.arrived event an uploader would have sent for `abs`.
Event load_event(const std::string& instance, const std::string& abs, const std::string& dataset, bool dry_run) {
  Event ev;
  ev.event_id = "cli-load-" + instance + "-" + std::to_string(std::time(nullptr));
  ev.type = "file.arrived";
  ev.topic = "cli";
  ev.from_cli = true;
  ev.payload = {{"event_id", ev.event_id}, {"type", ev.type},      {"dataset", dataset}, {"uri", abs},
                {"dry_run", dry_run},      {"submitted_by", "cli"}};
  return ev;
}

/// Runs `ev` as the daemon would, in this process, and prints its result message. `extra_root`:
/// a directory the operator named by hand, allowed for this run only.
int run_locally(const config::Config& cfg, const Event& ev, const std::string& command, const std::string& extra_root,
                bool one_line) {
  const std::string instance = instance_id();
  config::Config local = cfg;
  if (!extra_root.empty()) local.files.allowed_roots.push_back(extra_root);
  Metrics metrics;
  Inbox inbox(local);
  Worker worker(local, metrics, inbox, instance, [] {});
  prepare_bookkeeping(worker.db(), cfg);
  if (auto why = validate_event(cfg, ev); !why.empty()) {
    std::cerr << "ingestd " << command << ": " << why << "\n";
    return 2;
  }
  {
    pqxx::work tx(worker.db());
    inbox.receive(tx, ev, ev.payload.dump());
    tx.commit();
  }
  PgPool readers(cfg.postgres.url, reader_pool_size(cfg));
  const auto t0 = Clock::now();
  Worker::Run run;
  {
    ProgressBar progress(cfg, readers, ev.event_id, t0);
    run = worker.run(*find_handler(ev.type), ev);
  }
  if (run.outcome.kind != Outcome::Kind::Done) {
    std::cerr << "ingestd " << command << ": " << (run.last_reason.empty() ? "interrupted" : run.last_reason) << "\n";
    return 1;
  }
  worker.settle(ev, run);
  std::cout << result_message(ev, run.outcome, std::chrono::duration<double>(Clock::now() - t0).count())
                   .dump(one_line ? -1 : 2)
            << std::endl;
  return exit_code(run.outcome.status);
}

}  // namespace

int exit_code(engine::ResultStatus status) {
  switch (status) {
    case engine::ResultStatus::Failed: return kExitFailed;
    case engine::ResultStatus::CompletedWithRejects: return kExitRejects;
    default: return kExitCompleted;
  }
}

int exit_code(const std::string& result_status) {
  for (auto s : {engine::ResultStatus::Failed, engine::ResultStatus::CompletedWithRejects})
    if (engine::to_string(s) == result_status) return exit_code(s);
  return kExitCompleted;
}

int cmd_load(const config::Config& cfg, const std::string& file, const std::string& dataset, bool dry_run, bool as_json,
             const DocumentOptions& document) {
  std::error_code ec;
  const std::string abs = std::filesystem::absolute(file, ec).string();
  Event ev = load_event(instance_id(), abs, dataset, dry_run);
  if (std::string error; !add_document_fields(document, ev.payload, error)) {
    std::cerr << "ingestd load: " << error << "\n";
    return kExitUsage;
  }
  // The operator names the file by hand: its own directory is an allowed root for this run.
  return run_locally(cfg, ev, "load", std::filesystem::path(abs).parent_path().string(), as_json);
}

int cmd_run_job(const config::Config& cfg, const SubmitOptions& o) {
  std::string error;
  auto payload = job_request(o, "cli", error);
  if (!payload) {
    std::cerr << "ingestd run-job: " << error << "\n";
    return 2;
  }
  Event ev;
  ev.event_id = (*payload)["event_id"];
  ev.type = "job.requested";
  ev.topic = "cli";
  ev.from_cli = true;
  ev.payload = std::move(*payload);
  return run_locally(cfg, ev, "run-job", "", o.json);
}

}  // namespace ingestd
