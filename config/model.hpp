// The config model: what ingestd.yaml declares, after ${VAR} and file: substitution
// and strict validation (config/loader.cpp and the files it uses). Everything downstream reads
// only these types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::config {

/// @brief Value types a field can be parsed into (DESIGN §3).
enum class FieldType { Text, Int, BigInt, Numeric, Bool, Date, Timestamp, Json };

/// @brief One normalizer step applied to a raw value before typing (DESIGN §3).
struct Normalizer {
  enum class Kind { None, Trim, Digits, Email, Phone, Name, Upper, Lower };
  Kind kind = Kind::Trim;
  int min_digits = 0;            // digits: shorter values count as missing
  std::string phone_region;      // phone: default region, e.g. "CO"
  bool invalid_reject = true;    // invalid: reject (the row) | null (the value, with a warning)
};

enum class MergePolicy { FillNulls, Overwrite, Keep };
enum class OnMissing { Null, Reject, Defer };

struct Lookup {
  std::string table;    // possibly schema-qualified
  std::string key;      // column matched against the value
  std::string returns;  // column whose value is stored
};

struct Field {
  std::string name;                 // the field's name in the dataset (identity tiers use it)
  std::string column;               // target column
  std::vector<std::string> from;    // source header names, first present wins; empty for ref
  std::optional<std::string> ref;   // entity this field references (its id)
  FieldType type = FieldType::Text;
  std::vector<std::string> formats; // strptime formats for date/timestamp
  Normalizer normalize;
  bool required = false;
  std::optional<MergePolicy> merge; // overrides the entity policy
  std::optional<Lookup> lookup;
  OnMissing on_missing = OnMissing::Null;
  int line = 0;                     // where it was declared, for messages
};

/// @brief How a fuzzy tier compares one field (DESIGN §5 rule 6): agreement levels from the
/// best down to "disagrees", each with its m and u probability (weight log2(m/u)). A field
/// missing on either side adds nothing.
struct FuzzyComparison {
  enum class Method { Exact, JaroWinkler, Levenshtein, Date };
  std::string field;
  Method method = Method::Exact;
  std::vector<double> thresholds;  // jaro_winkler: similarity >= t (descending); levenshtein:
                                   // edits <= k (ascending); date: within n days (ascending)
  bool initial = false;            // a level for "one is the other's initial"
  bool transposed = false;         // date: a level for day and month swapped
  std::vector<double> m, u;        // per level, the last = disagrees; empty = defaults
  /// Term frequencies (weights file `frequent`): values so common that agreeing on one is weak
  /// evidence, each with its share of the rows holding the field. An exact agreement on a listed
  /// value weighs log2(m / share), on any other log2(m / frequent_rest): the chance that a
  /// stranger holds the same value. frequent_rest 0: none, exact agreement weighs log2(m / u).
  std::map<std::string, double> frequent;
  double frequent_rest = 0;
  int line = 0;
  /// Levels, in the order they are tried: exact, transposed, each threshold, initial, disagrees.
  size_t levels() const { return 2 + transposed + thresholds.size() + initial; }
};

/// @brief One term of a blocking rule: a field's key, a phonetic code of it, or (alone in its
/// rule) the keys similar to it by trigrams.
struct BlockingTerm {
  std::string function;  // "" | soundex | dmetaphone (PostgreSQL's fuzzystrmatch) | trigram (pg_trgm)
  std::string field;
  double similarity = 0;  // trigram: pg_trgm's similarity() at least this
  bool trigram() const { return function == "trigram"; }
};

/// @brief Two compared fields that agree exactly together far more often than chance (suburb
/// with postcode), as `ingestd train` measured among random pairs: `u` is the share of them
/// agreeing exactly on both. Where both agree, the second's weight is taken given the first's
/// agreement, log2(m / (u / u of the first)): one fact is not counted twice.
struct FuzzyTogether {
  std::string first, second;  // in the tier's comparison order
  double u = 0;
};

/// @brief A fuzzy tier (Fellegi–Sunter): the candidates its blocking rules find through the
/// target's indexes are scored field by field; at or above merge_at a row merges, from
/// review_at it goes to review, below it is new. Never across a differing never_across field.
struct FuzzyTier {
  std::vector<std::vector<BlockingTerm>> blocking;
  std::vector<FuzzyComparison> compare;
  std::vector<std::string> never_across;
  double merge_at = 0, review_at = 0;
  int max_candidates = 50;  // per row and blocking rule: a bigger block is too common, it gives no candidates
  std::string weights;      // m/u file written by `ingestd train` (absolute path), "" = none
  std::vector<FuzzyTogether> together;  // from the weights file
  /// The rows the weights were trained on (weights file `rows`), 0 = unknown. Against a table
  /// of more records a pair's match weight is lowered by log2(records / trained_rows).
  int64_t trained_rows = 0;
  int line = 0;
  /// The index of the comparison of `field`; compare.size() when none compares it.
  size_t comparison_of(std::string_view field) const {
    size_t i = 0;
    while (i < compare.size() && compare[i].field != field) ++i;
    return i;
  }
};

struct Entity {
  std::string name;
  std::string table;                // as written, e.g. public.persons
  std::string id_column = "id";
  std::vector<std::vector<std::string>> identity;  // tiers of field names, highest first
  std::optional<FuzzyTier> fuzzy;   // after the exact tiers
  std::vector<Field> fields;        // in declaration order
  MergePolicy merge = MergePolicy::FillNulls;
  std::vector<std::pair<std::string, std::string>> on_insert;  // column -> literal or $var
  std::vector<std::pair<std::string, std::string>> on_update;
  int line = 0;
};

/// @brief How a dataset's files are encoded (DESIGN §3).
enum class Format { Csv, Jsonl, Xlsx };

constexpr std::string_view to_string(Format f) {
  switch (f) {
    case Format::Csv: return "csv";
    case Format::Jsonl: return "jsonl";
    case Format::Xlsx: return "xlsx";
  }
  return "?";
}

struct CsvOptions {
  char delimiter = ',';
  std::string encoding = "utf-8";   // utf-8 | latin1
  bool header = true;
  char quote = '"';
  int64_t max_row_bytes = 16 << 20;  // a longer record is a row error, skipped without being held
};

/// @brief `jsonl:` options of a dataset (format jsonl).
struct JsonlOptions {
  int64_t max_line_bytes = 16 << 20;  // a longer line is a row error, not a memory spike
};

/// @brief Which sheet of a workbook to read and where its header is (`xlsx:`).
struct XlsxOptions {
  std::string sheet_name;   // empty: by index
  int sheet_index = 1;      // 1-based, in workbook order; used when sheet_name is empty
  int64_t header_row = 1;   // sheet row of the column names; rows above it are ignored
};

/// @brief `kind: documents` (issue 17): each file is one row of `table`, linked to an owner record
/// found through an identity tier of another dataset's entity from the event's `metadata`.
struct DocumentsSpec {
  std::string table, id_column = "id", owner_column;
  /// Columns the row fills, each "" = not stored: the event's uri, the path in store_dir, the
  /// file's sha256 (required), size, libmagic media type, original file name, the batch id.
  std::string uri, path, sha256, size_bytes, media_type, original_name, batch_id;
  std::string owner_dataset, owner_entity;                 // the owner: a records dataset's entity
  std::vector<std::pair<std::string, std::string>> match;  // owner field -> metadata key
  std::string store_dir;                                   // content-addressed copies (ab/cd/<sha256>), "" = none
  int line = 0;
};

struct Dataset {
  std::string name;
  std::optional<DocumentsSpec> documents;  // set: `kind: documents`, no entities
  Format format = Format::Csv;
  CsvOptions csv;
  JsonlOptions jsonl;
  XlsxOptions xlsx;
  bool atomic = false;
  std::vector<std::string> null_values;  // placeholders read as NULL before normalizing
  std::vector<Entity> entities;     // in order
  int line = 0;
};

struct Check { std::string name, sql; std::string expect; };
struct Writeback {
  std::string table;
  std::vector<std::pair<std::string, std::string>> set;    // column -> entity name
  std::vector<std::pair<std::string, std::string>> where;  // column -> source column
};

/// @brief What a job does: migrate rows from a SQL source, or resolve deferred lookups.
enum class JobKind { Migrate, ResolveRefs };

constexpr std::string_view to_string(JobKind k) {
  switch (k) {
    case JobKind::Migrate: return "migrate";
    case JobKind::ResolveRefs: return "resolve_refs";
  }
  return "?";
}

struct Job {
  std::string name;
  JobKind kind = JobKind::Migrate;
  std::string source_database;      // empty = target database
  std::string source_sql;
  std::string watermark;            // column name, empty = none
  std::string dataset;
  std::string field;                // resolve_refs
  bool atomic = false;
  std::vector<Writeback> writeback;
  std::vector<std::string> after;
  std::vector<Check> checks;
  int line = 0;
};

struct Topics {
  std::string files = "ingest.files";
  std::string jobs = "ingest.jobs";
  std::string results = "ingest.results";
  std::string dead_letter = "ingest.dead-letter";
};

struct Kafka {
  std::string brokers = "embedded";
  std::string group_id = "ingestd";
  Topics topics;
  std::map<std::string, std::string> properties;
  int embedded_partitions = 3;      // partitions per topic on the embedded broker
  std::string embedded_address_file; // where the embedded broker's address is written
};

struct Postgres {
  std::string url;
  int pool_size = 4;
  std::string bookkeeping_schema = "ingestd";
};

struct Http {
  std::string listen = "127.0.0.1:9464";
  std::string status_socket;        // unix socket for /status (then not served on listen); "" = none
  std::string status_socket_group;  // group given read-write access to it (mode 0660); "" = 0600
};

struct Files {
  std::vector<std::string> allowed_roots;
  std::string rejects_dir = "/var/lib/ingestd/rejects";
  /// Group that owns the reject files (they hold personal data): created 0640 and given to it;
  /// "" = the daemon's own group. Never world-readable either way.
  std::string rejects_group;
};

/// What an on_insert / on_update value starting with `$` may be (DESIGN §3): exactly one of these.
inline const std::vector<std::string> kStampVariables = {"$batch_id", "$now",  "$source_system",
                                                         "$program",  "$tier", "$submitted_by"};

/// The jobs every ingestd has besides the configured ones (handlers/migration_request).
inline const std::vector<std::string> kBuiltinJobs = {"rollback", "checks"};

struct Processing {
  int64_t chunk_rows = 50000;
  /// A chunk also ends once its rows hold this many bytes (raw text and values), so wide rows
  /// cannot make two chunks in memory exceed what chunk_rows assumed.
  int64_t chunk_bytes = 64 << 20;
  int max_attempts = 5;
  double retry_base_seconds = 0.5;
  /// Under a systemd watchdog: how long the main loop may go without a sign of life (a consumed
  /// message, a chunk, a retry's wait) before ingestd stops feeding the watchdog, so systemd
  /// restarts it. Long statements (`after`, a big hash, a lock wait) fit inside it.
  double stall_limit_seconds = 3600;
  /// Jobs a job.requested event may run; unset = every configured job and `checks` (never
  /// `rollback` unless listed). The CLI (run-job, rollback) may run any.
  std::optional<std::vector<std::string>> event_jobs;
  int event_jobs_line = 0;
};

struct Source { std::string name, url; };

enum class LogFormat { Text, Json };
/// The levels `logging.level` and `--log-level` accept (spdlog's names).
inline const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

/// `logging:`: the level and line format; a reload changes both, the command line overrides them.
struct Logging {
  std::string level = "info";
  LogFormat format = LogFormat::Text;
};

struct Config {
  std::string path;                 // file it was loaded from
  Kafka kafka;
  Postgres postgres;
  Http http;
  Files files;
  Processing processing;
  Logging logging;
  std::map<std::string, Source> sources;
  std::map<std::string, Dataset> datasets;
  std::map<std::string, Job> jobs;
};

/// The dataset a batch loaded: its target names a dataset, or a job that loads one; nullptr
/// when the config has neither (or the job loads no dataset).
inline const Dataset* dataset_of(const Config& cfg, const std::string& dataset_or_job) {
  const auto job = cfg.jobs.find(dataset_or_job);
  const auto ds = cfg.datasets.find(job != cfg.jobs.end() ? job->second.dataset : dataset_or_job);
  return ds == cfg.datasets.end() ? nullptr : &ds->second;
}

}  // namespace ingestd::config
