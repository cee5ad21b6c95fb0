// ingestd: one binary for the daemon and its operator commands (DESIGN §6). This file parses
// the command line and hands over to the command (daemon/commands/, the daemon itself in
// daemon/runtime.cpp). Exit codes: kExitCodesHelp below (daemon/commands/commands.hpp).
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "config/loader.hpp"
#include "config/redact.hpp"
#include "daemon/commands/commands.hpp"
#include "daemon/logging.hpp"
#include "daemon/signals.hpp"

using namespace ingestd;

namespace {

/// @brief The subcommands and the values their options fill in.
struct CommandLine {
  std::string config_path = "/etc/ingestd/ingestd.yaml";
  std::string log_level = "info", log_format = "text";
  CLI::App *run = nullptr, *check = nullptr, *load = nullptr, *run_job = nullptr, *submit_file = nullptr,
           *submit_job = nullptr;
  CLI::App *rollback = nullptr, *status = nullptr, *review = nullptr, *review_list = nullptr, *review_merge = nullptr;
  CLI::App *dlq_replay = nullptr, *broker = nullptr, *explain = nullptr, *name_key = nullptr, *train = nullptr;
  bool check_offline = false, check_create_indexes = false, check_json = false;
  std::vector<std::string> explain_args;
  bool explain_record = false, explain_json = false;
  std::string load_file, load_dataset;
  DocumentOptions load_document;
  SubmitOptions job;  // run-job
  bool load_dry = false, load_json = false;
  SubmitOptions submit;
  std::string rollback_batch;
  bool rollback_dry = false, rollback_json = false;
  std::string status_batch;
  bool status_json = false;
  std::string review_into;
  ReviewListOptions review_page;
  int64_t review_id = 0;
  int64_t dlq_limit = 1000000;
  bool dlq_dry = false, dlq_json = false;
  std::string train_dataset, train_file, train_output;
  size_t train_max_rows = 200000;
  bool train_json = false, review_decision_json = false;  // review merge/distinct always print one JSON line
  EmbeddedBrokerOptions broker_options;
  CLI::App* merge = nullptr;
  std::string merge_table, merge_loser, merge_into;
  bool merge_dry = false, merge_json = false;
};

/// A subcommand taking `-c/--config`.
CLI::App* with_config(CLI::App* sc, CommandLine& cl) {
  sc->add_option("-c,--config", cl.config_path, "config file")->capture_default_str();
  return sc;
}

/// --meta and --original-name: what a file event says of a document (kind: documents datasets).
void add_document_options(CLI::App* sc, DocumentOptions& o) {
  sc->add_option("--meta", o.metadata, "metadata KEY=VALUE, repeatable: the owner's keys (documents datasets)");
  sc->add_option("--original-name", o.original_name, "the document's name as uploaded (documents datasets)");
}

void add_run_check_load(CLI::App& app, CommandLine& cl) {
  cl.run = with_config(app.add_subcommand("run", "Run the daemon: consume events until SIGTERM"), cl);
  cl.check = with_config(app.add_subcommand("check", "Validate the config and that its tables and columns exist"), cl);
  cl.check->add_flag("--offline", cl.check_offline, "do not connect to PostgreSQL");
  cl.check->add_flag("--create-indexes", cl.check_create_indexes,
                     "create the indexes identity tiers lack (CONCURRENTLY), and report them");
  cl.check->add_flag("--json", cl.check_json, "print one JSON object: ok, problems, indexes");
  cl.load = with_config(app.add_subcommand("load", "Load one file through a dataset, without Kafka"), cl);
  cl.load->add_option("file", cl.load_file, "input file (the dataset's format; gzip/zstd too)")->required();
  cl.load->add_option("--dataset", cl.load_dataset, "dataset name")->required();
  cl.load->add_flag("--dry-run", cl.load_dry, "run everything, then roll back; report what would happen");
  cl.load->add_flag("--json", cl.load_json, "print the result message on one line");
  add_document_options(cl.load, cl.load_document);
  cl.run_job = with_config(app.add_subcommand("run-job", "Run one configured job (or rollback, checks) without Kafka"), cl);
  cl.run_job->add_option("name", cl.job.job, "job name")->required();
  cl.run_job->add_option("--mode", cl.job.mode, "full or incremental");
  cl.run_job->add_option("--param", cl.job.params, "KEY=VALUE, repeatable");
  cl.run_job->add_flag("--dry-run", cl.job.dry_run, "run everything, then roll back; report what would happen");
  cl.run_job->add_flag("--json", cl.job.json, "print the result message on one line");
}

void add_submit(CLI::App& app, CommandLine& cl) {
  auto* submit = app.add_subcommand("submit", "Publish an event as an uploader would");
  submit->require_subcommand(1);
  SubmitOptions& s = cl.submit;
  auto* file =
      with_config(submit->add_subcommand("file", "Publish a file.arrived event (computes sha256 and size)"), cl);
  file->add_option("path", s.path, "file to announce")->required();
  file->add_option("--dataset", s.dataset, "dataset name")->required();
  file->add_option("--source-system", s.source_system, "source_system of the event");
  file->add_option("--program", s.program, "program of the event");
  file->add_option("--submitted-by", s.submitted_by, "submitted_by of the event")->capture_default_str();
  file->add_option("--event-id", s.event_id, "event id (default: a new UUID)");
  file->add_option("--delimiter", s.delimiter, "options.delimiter");
  file->add_option("--encoding", s.encoding, "options.encoding");
  add_document_options(file, s.document);
  auto* job = with_config(submit->add_subcommand("job", "Publish a job.requested event"), cl);
  job->add_option("name", s.job, "job name")->required();
  job->add_option("--mode", s.mode, "full or incremental");
  job->add_option("--param", s.params, "KEY=VALUE, repeatable");
  job->add_option("--event-id", s.event_id, "event id (default: a new UUID)");
  for (auto* sc : {file, job}) {
    sc->add_flag("--dry-run", s.dry_run, "ask for a dry run");
    sc->add_flag("--wait", s.wait, "wait for the result message and print it");
    sc->add_option("--timeout", s.timeout_s, "seconds to wait with --wait (then exit 4)")->capture_default_str();
    sc->add_flag("--json", s.json, "print the event (or with --wait its result) on one line");
  }
  cl.submit_file = file;
  cl.submit_job = job;
}

void add_operator_commands(CLI::App& app, CommandLine& cl) {
  cl.rollback = with_config(
      app.add_subcommand("rollback", "Roll back a batch: delete what it inserted, restore what it overwrote"), cl);
  cl.rollback->add_option("batch", cl.rollback_batch, "batch id (UUID)")->required();
  cl.rollback->add_flag("--dry-run", cl.rollback_dry, "report what would be undone, change nothing");
  cl.rollback->add_flag("--json", cl.rollback_json, "print the report on one line");

  cl.status = with_config(app.add_subcommand("status", "Running and recent batches, or one batch in detail"), cl);
  cl.status->add_option("batch", cl.status_batch, "batch id");
  cl.status->add_flag("--json", cl.status_json, "print JSON");

  cl.review = app.add_subcommand("review", "The review queue: rows that matched two different records");
  cl.review->require_subcommand(1);
  cl.review_list = with_config(cl.review->add_subcommand("list", "Open review items, oldest first, each row beside "
                                                               "the records that claim it"), cl);
  cl.review_list->add_option("--after", cl.review_page.after, "show the items after this id (the next page)");
  cl.review_list->add_option("--limit", cl.review_page.limit, "items per page")->capture_default_str();
  cl.review_list->add_flag("--json", cl.review_page.json, "one JSON object per item and line");
  cl.review_merge =
      with_config(cl.review->add_subcommand("merge", "Merge an item into a record (fills what it lacks)"), cl);
  auto* distinct =
      with_config(cl.review->add_subcommand("distinct", "The item is a different person: create a record for it"), cl);
  cl.review_merge->add_option("id", cl.review_id, "review item id")->required();
  cl.review_merge->add_option("--into", cl.review_into, "record id to merge into (default: the candidate a fuzzy tier named)");
  distinct->add_option("id", cl.review_id, "review item id")->required();
  for (auto* decision : {cl.review_merge, distinct})
    decision->add_flag("--json", cl.review_decision_json, "print one JSON object (the default)");

  cl.explain = with_config(app.add_subcommand("explain", "Why a row landed where it did (BATCH ROW), or which rows made "
                                                      "a record (--record TABLE ID)"),
                           cl);
  cl.explain->add_option("batch_row", cl.explain_args, "BATCH ROW, or TABLE ID with --record")->expected(2);
  cl.explain->add_flag("--record", cl.explain_record, "explain a record: TABLE ID");
  cl.explain->add_flag("--json", cl.explain_json, "print JSON");
  // keys as the engine makes them, one value a line on stdin (diagnosis and tests)
  cl.name_key = app.add_subcommand("name-key", "Print the identity key of each name read from stdin")->group("");

  cl.train = with_config(app.add_subcommand("train", "Estimate a dataset's fuzzy match weights (m/u) from a file"), cl);
  cl.train->add_option("dataset", cl.train_dataset, "dataset name")->required();
  cl.train->add_option("file", cl.train_file, "a file of the dataset's data")->required();
  cl.train->add_option("--output", cl.train_output, "weights file to write (default: the tier's weights:)");
  cl.train->add_option("--max-rows", cl.train_max_rows, "read at most this many rows")->capture_default_str();
  cl.train->add_flag("--json", cl.train_json, "print the weights as one JSON object");

  auto* dlq = app.add_subcommand("dlq", "Dead letters");
  dlq->require_subcommand(1);
  cl.dlq_replay = with_config(dlq->add_subcommand("replay", "Republish dead letters to the topics they came from"), cl);
  cl.dlq_replay->add_option("--limit", cl.dlq_limit, "replay at most this many")->capture_default_str();
  cl.dlq_replay->add_flag("--dry-run", cl.dlq_dry, "count what would be replayed");
  cl.dlq_replay->add_flag("--json", cl.dlq_json, "print the counts on one line");
}

void add_embedded_broker(CLI::App& app, CommandLine& cl) {
  EmbeddedBrokerOptions& b = cl.broker_options;
  cl.broker = app.add_subcommand("embedded-broker", "Run librdkafka's mock cluster on loopback (tests and demos only)");
  cl.broker->add_option("--brokers", b.brokers, "brokers in the cluster")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  cl.broker->add_option("--partitions", b.partitions, "partitions per topic")->capture_default_str();
  cl.broker->add_option("--topic", b.topics, "topics to create")->capture_default_str();
  cl.broker->add_option("--address-file", b.address_file, "write the bootstrap address here");
}

void add_merge(CLI::App& app, CommandLine& cl) {
  cl.merge = with_config(app.add_subcommand("merge", "Merge two records of an entity's table: fill the winner by the "
                                                     "merge policy, repoint references, delete the loser"),
                         cl);
  cl.merge->add_option("table", cl.merge_table, "table a dataset entity writes, e.g. public.persons")->required();
  cl.merge->add_option("loser", cl.merge_loser, "id of the record that goes away")->required();
  cl.merge->add_option("--into", cl.merge_into, "id of the record that stays")->required();
  cl.merge->add_flag("--dry-run", cl.merge_dry, "do everything, report it, then roll back");
  cl.merge->add_flag("--json", cl.merge_json, "print one JSON line");
}

/// Options accepted before or after the subcommand (`ingestd check -c x.yaml --log-level debug`):
/// a subcommand hands the options it does not know to the app (fallthrough).
void add_global_options(CLI::App& app, CommandLine& cl) {
  app.fallthrough();  // before add_subcommand: subcommands inherit it
  app.add_option("-c,--config", cl.config_path, "config file")->capture_default_str();
  app.add_option("--log-level", cl.log_level, "log level (default: the config's logging.level, else info)")
      ->check(CLI::IsMember(config::kLogLevels));
  app.add_option("--log-format", cl.log_format, "text, or json: one JSON object per line (default: the config's "
                                                "logging.format, else text)")
      ->check(CLI::IsMember({"text", "json"}));
}

/// The log settings given on the command line: they win over the config's.
LogOverrides log_overrides(const CLI::App& app, const CommandLine& cl) {
  LogOverrides o;
  if (app.get_option("--log-level")->count()) o.level = cl.log_level;
  if (app.get_option("--log-format")->count())
    o.format = cl.log_format == "json" ? config::LogFormat::Json : config::LogFormat::Text;
  return o;
}

/// Who a command acts for in the audit trail: the OS user, not $USER (issue 16 item 8).
engine::Actor cli_actor() { return engine::os_user_actor(); }

int dispatch(const CommandLine& cl, const config::Config& cfg) {
  if (cl.run->parsed()) return cmd_run(cfg);
  if (cl.check->parsed())
    return cmd_check(cfg, cl.config_path, cl.check_offline, cl.check_create_indexes, cl.check_json);
  if (cl.explain->parsed())
    return cmd_explain(cfg, cl.explain_args.at(0), cl.explain_args.at(1), cl.explain_record, cl.explain_json);
  if (cl.load->parsed())
    return cmd_load(cfg, cl.load_file, cl.load_dataset, cl.load_dry, cl.load_json, cl.load_document);
  if (cl.run_job->parsed()) {
    SubmitOptions job = cl.job;
    job.submitted_by = cli_actor().name;
    return cmd_run_job(cfg, job);
  }
  if (cl.status->parsed()) return cmd_status(cfg, cl.status_batch, cl.status_json);
  if (cl.review->parsed()) {
    const std::string action = cl.review_list->parsed() ? "list" : cl.review_merge->parsed() ? "merge" : "distinct";
    return cmd_review(cfg, action, cl.review_id, cl.review_into, cli_actor(), cl.review_page);
  }
  if (cl.dlq_replay->parsed()) return cmd_dlq_replay(cfg, cl.dlq_limit, cl.dlq_dry, cl.dlq_json);
  if (cl.merge->parsed())
    return cmd_merge(cfg, cl.merge_table, cl.merge_loser, cl.merge_into, cl.merge_dry, cl.merge_json, cli_actor());
  if (cl.train->parsed())
    return cmd_train(cfg, cl.train_dataset, cl.train_file, cl.train_output, cl.train_max_rows, cl.train_json);
  if (cl.rollback->parsed())
    return cmd_rollback(cfg, cl.rollback_batch, cl.rollback_dry, cli_actor(), cl.rollback_json);
  if (cl.submit_file->parsed()) return cmd_submit_file(cfg, cl.submit);
  if (cl.submit_job->parsed()) return cmd_submit_job(cfg, cl.submit);
  return 0;
}

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 completed, 1 failed, 2 usage or config error, 3 completed with rejects, "
    "4 timed out waiting (submit --wait).";

/// The exit codes under every command's --help.
void add_exit_codes_footer(CLI::App& app) {
  app.footer(kExitCodesHelp);
  for (CLI::App* sc : app.get_subcommands([](CLI::App*) { return true; })) add_exit_codes_footer(*sc);
}

/// The config file as the command needs it: `submit` reads only its kafka section.
config::Config load_command_config(const CommandLine& cl) {
  const bool publisher = cl.submit_file->parsed() || cl.submit_job->parsed();
  return config::load_config(cl.config_path, publisher ? config::Sections::Kafka : config::Sections::All);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ingestd: events in Kafka become deduplicated, tracked, reversible rows in PostgreSQL"};
  app.require_subcommand(1);
  app.set_version_flag("--version", INGESTD_VERSION);
  CommandLine cl;
  add_global_options(app, cl);
  add_run_check_load(app, cl);
  add_submit(app, cl);
  add_operator_commands(app, cl);
  add_merge(app, cl);
  add_embedded_broker(app, cl);
  add_exit_codes_footer(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitCompleted : kExitUsage;
  }
  setup_logging(log_overrides(app, cl));
  install_signals();
  if (cl.broker->parsed()) return cmd_embedded_broker(cl.broker_options);
  if (cl.name_key->parsed()) return cmd_name_key();

  config::Config cfg;
  try {
    cfg = load_command_config(cl);
    apply_log_config(cfg.logging);
  } catch (const config::ConfigError& e) {
    std::cerr << "ingestd: invalid config:\n" << config::redact(e.what()) << std::endl;
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "ingestd: " << config::redact(e.what()) << std::endl;
    return kExitUsage;
  }
  try {
    return dispatch(cl, cfg);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kExitFailed;
  }
}
