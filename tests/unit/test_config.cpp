// Config loader: values land in the model, substitution, and every strict/cross-field check
// reports FILE:LINE: key.path: message.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/loader.hpp"

namespace cfg = ingestd::config;

namespace {

// The smallest valid config; tests append to it.
const std::string kBase = R"(postgres:
  url: postgresql://localhost/app
)";

std::vector<std::string> problems_of(const std::string& text) {
  try {
    cfg::load_config_text(text, "ingestd.yaml");
  } catch (const cfg::ConfigError& e) {
    return e.problems;
  }
  return {};
}

// True when some problem contains every one of the given fragments.
bool has_problem(const std::vector<std::string>& problems,
                 std::initializer_list<std::string> fragments) {
  for (const auto& p : problems) {
    bool all = true;
    for (const auto& f : fragments)
      if (p.find(f) == std::string::npos) all = false;
    if (all) return true;
  }
  return false;
}

std::string dump(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += p + "\n";
  return out;
}

#define CHECK_PROBLEM(problems, ...) \
  CHECK_MESSAGE(has_problem(problems, {__VA_ARGS__}), dump(problems))

// A dataset with one person entity, to which a test adds keys.
std::string with_dataset(const std::string& person_extra, const std::string& more_entities = "") {
  return kBase + R"(datasets:
  ice_leads:
    entities:
      person:
        table: public.persons
        fields:
          email: {from: Email, normalize: email}
          name:  {from: Nombre}
)" + person_extra +
         more_entities;
}

struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& content) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ingestd_cfg_XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("a full config lands in the model") {
    const std::string text = R"(kafka:
  brokers: "k1:9092,k2:9092"
  group_id: g1
  topics: {files: f, jobs: j, results: r, dead_letter: d}
  properties: {security.protocol: SASL_SSL, socket.keepalive.enable: true, fetch.wait.max.ms: 50}
  embedded_partitions: 6
  embedded_address_file: /run/ingestd/kafka.address
postgres: {url: "postgresql://db/app", pool_size: 8, bookkeeping_schema: bk}
http: {listen: "0.0.0.0:9000"}
files: {allowed_roots: [/in, /in2], rejects_dir: /rej}
processing: {chunk_rows: 1000, max_attempts: 3, retry_base_seconds: 1.5}
sources:
  legacy: {url: "postgresql://legacy/db"}
datasets:
  ice_leads:
    format: csv
    csv: {delimiter: "\t", encoding: latin1, header: false, quote: "'"}
    atomic: true
    entities:
      person:
        table: public.persons
        id: person_id
        identity:
          - [cedula]
          - [first_name, last_name]
        fields:
          cedula: {column: doc, from: Cedula, normalize: {digits: {min_digits: 7}}, required: true}
          first_name: {from: [Nombre, Name], normalize: name}
          last_name: {from: Apellido, merge: overwrite}
          phone: {from: Tel, normalize: {phone: {region: co, invalid: null}}}
          born: {from: Nacimiento, type: date, formats: ["%d/%m/%Y", "%Y-%m-%d"]}
          note: {from: Nota, normalize: none, type: json}
        merge: keep
        on_insert: {data_source: csv_only, batch_id: $batch_id, n: 3}
        on_update: {csv_enriched: True, quoted: "yes"}
      lead:
        table: leads
        identity: [[person, program_type]]
        fields:
          person: {column: person_id, ref: person}
          program_type: {from: Programa}
          school: {column: school_id, from: School, lookup: {table: schools, key: sf_id},
                   on_missing: defer}
          status: {from: Status, lookup: {table: statuses, key: code, returns: code}, on_missing: reject}
jobs:
  move:
    kind: migrate
    source: {database: legacy, sql: "SELECT 1", watermark: updated_at}
    dataset: ice_leads
    atomic: true
    writeback: [{table: leads, set: {person_id: person}, where: {id: id}}]
    after: ["UPDATE x SET y = 1"]
    checks: [{name: none_left, sql: "SELECT count(*) FROM x", expect: 0}]
  schools:
    kind: resolve_refs
    dataset: ice_leads
    field: lead.school
)";
    const cfg::Config c = cfg::load_config_text(text, "full.yaml");
    CHECK(c.path == "full.yaml");
    CHECK(c.kafka.brokers == "k1:9092,k2:9092");
    CHECK(c.kafka.group_id == "g1");
    CHECK(c.kafka.topics.files == "f");
    CHECK(c.kafka.topics.jobs == "j");
    CHECK(c.kafka.topics.results == "r");
    CHECK(c.kafka.topics.dead_letter == "d");
    CHECK(c.kafka.properties.at("security.protocol") == "SASL_SSL");
    CHECK(c.kafka.properties.at("socket.keepalive.enable") == "true");
    CHECK(c.kafka.properties.at("fetch.wait.max.ms") == "50");
    CHECK(c.kafka.embedded_partitions == 6);
    CHECK(c.kafka.embedded_address_file == "/run/ingestd/kafka.address");
    CHECK(c.postgres.url == "postgresql://db/app");
    CHECK(c.postgres.pool_size == 8);
    CHECK(c.postgres.bookkeeping_schema == "bk");
    CHECK(c.http.listen == "0.0.0.0:9000");
    CHECK(c.files.allowed_roots == std::vector<std::string>{"/in", "/in2"});
    CHECK(c.files.rejects_dir == "/rej");
    CHECK(c.processing.chunk_rows == 1000);
    CHECK(c.processing.max_attempts == 3);
    CHECK(c.processing.retry_base_seconds == doctest::Approx(1.5));
    REQUIRE(c.sources.count("legacy") == 1);
    CHECK(c.sources.at("legacy").name == "legacy");
    CHECK(c.sources.at("legacy").url == "postgresql://legacy/db");

    REQUIRE(c.datasets.count("ice_leads") == 1);
    const cfg::Dataset& d = c.datasets.at("ice_leads");
    CHECK(d.name == "ice_leads");
    CHECK(d.line == 15);
    CHECK(d.format == cfg::Format::Csv);
    CHECK(d.csv.delimiter == '\t');
    CHECK(d.csv.encoding == "latin1");
    CHECK(d.csv.header == false);
    CHECK(d.csv.quote == '\'');
    CHECK(d.atomic == true);
    REQUIRE(d.entities.size() == 2);

    const cfg::Entity& p = d.entities[0];
    CHECK(p.name == "person");
    CHECK(p.line == 20);
    CHECK(p.table == "public.persons");
    CHECK(p.id_column == "person_id");
    CHECK(p.identity ==
          std::vector<std::vector<std::string>>{{"cedula"}, {"first_name", "last_name"}});
    CHECK(p.merge == cfg::MergePolicy::Keep);
    REQUIRE(p.fields.size() == 6);
    CHECK(p.fields[0].name == "cedula");
    CHECK(p.fields[0].column == "doc");
    CHECK(p.fields[0].line == 27);
    CHECK(p.fields[0].from == std::vector<std::string>{"Cedula"});
    CHECK(p.fields[0].normalize.kind == cfg::Normalizer::Kind::Digits);
    CHECK(p.fields[0].normalize.min_digits == 7);
    CHECK(p.fields[0].required);
    CHECK(p.fields[0].type == cfg::FieldType::Text);
    CHECK(p.fields[1].name == "first_name");
    CHECK(p.fields[1].column == "first_name");
    CHECK(p.fields[1].from == std::vector<std::string>{"Nombre", "Name"});
    CHECK(p.fields[1].normalize.kind == cfg::Normalizer::Kind::Name);
    CHECK_FALSE(p.fields[1].required);
    CHECK_FALSE(p.fields[1].merge.has_value());
    CHECK(p.fields[2].merge == cfg::MergePolicy::Overwrite);
    CHECK(p.fields[2].normalize.kind == cfg::Normalizer::Kind::Trim);
    CHECK(p.fields[3].normalize.kind == cfg::Normalizer::Kind::Phone);
    CHECK(p.fields[3].normalize.phone_region == "CO");
    CHECK(p.fields[3].normalize.invalid_reject == false);
    CHECK(p.fields[4].type == cfg::FieldType::Date);
    CHECK(p.fields[4].formats == std::vector<std::string>{"%d/%m/%Y", "%Y-%m-%d"});
    CHECK(p.fields[5].type == cfg::FieldType::Json);
    CHECK(p.fields[5].normalize.kind == cfg::Normalizer::Kind::None);
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    CHECK(p.on_insert == Pairs{{"data_source", "csv_only"}, {"batch_id", "$batch_id"}, {"n", "3"}});
    CHECK(p.on_update == Pairs{{"csv_enriched", "true"}, {"quoted", "yes"}});

    const cfg::Entity& l = d.entities[1];
    CHECK(l.name == "lead");
    CHECK(l.id_column == "id");
    CHECK(l.merge == cfg::MergePolicy::FillNulls);
    CHECK(l.identity == std::vector<std::vector<std::string>>{{"person", "program_type"}});
    REQUIRE(l.fields.size() == 4);
    CHECK(l.fields[0].ref == "person");
    CHECK(l.fields[0].from.empty());
    CHECK(l.fields[0].column == "person_id");
    REQUIRE(l.fields[2].lookup.has_value());
    CHECK(l.fields[2].lookup->table == "schools");
    CHECK(l.fields[2].lookup->key == "sf_id");
    CHECK(l.fields[2].lookup->returns == "id");
    CHECK(l.fields[2].on_missing == cfg::OnMissing::Defer);
    CHECK(l.fields[3].lookup->returns == "code");
    CHECK(l.fields[3].on_missing == cfg::OnMissing::Reject);
    CHECK(l.fields[1].on_missing == cfg::OnMissing::Null);

    REQUIRE(c.jobs.size() == 2);
    const cfg::Job& m = c.jobs.at("move");
    CHECK(m.name == "move");
    CHECK(m.line == 46);
    CHECK(m.kind == cfg::JobKind::Migrate);
    CHECK(m.source_database == "legacy");
    CHECK(m.source_sql == "SELECT 1");
    CHECK(m.watermark == "updated_at");
    CHECK(m.dataset == "ice_leads");
    CHECK(m.atomic);
    REQUIRE(m.writeback.size() == 1);
    CHECK(m.writeback[0].table == "leads");
    CHECK(m.writeback[0].set == Pairs{{"person_id", "person"}});
    CHECK(m.writeback[0].where == Pairs{{"id", "id"}});
    CHECK(m.after == std::vector<std::string>{"UPDATE x SET y = 1"});
    REQUIRE(m.checks.size() == 1);
    CHECK(m.checks[0].name == "none_left");
    CHECK(m.checks[0].sql == "SELECT count(*) FROM x");
    CHECK(m.checks[0].expect == "0");
    const cfg::Job& s = c.jobs.at("schools");
    CHECK(s.kind == cfg::JobKind::ResolveRefs);
    CHECK(s.field == "lead.school");
    CHECK(s.source_sql.empty());
  }

  TEST_CASE("defaults apply when keys are omitted") {
    const cfg::Config c = cfg::load_config_text(with_dataset(""), "ingestd.yaml");
    CHECK(c.kafka.brokers == "embedded");
    CHECK(c.kafka.topics.dead_letter == "ingest.dead-letter");
    CHECK(c.kafka.embedded_partitions == 3);
    CHECK(c.postgres.pool_size == 4);
    CHECK(c.postgres.bookkeeping_schema == "ingestd");
    CHECK(c.http.listen == "127.0.0.1:9464");
    CHECK(c.processing.chunk_rows == 50000);
    const cfg::Dataset& d = c.datasets.at("ice_leads");
    CHECK(d.format == cfg::Format::Csv);
    CHECK(d.csv.delimiter == ',');
    CHECK(d.csv.header);
    const cfg::Field& f = d.entities.at(0).fields.at(1);
    CHECK(f.column == "name");
    CHECK(f.normalize.kind == cfg::Normalizer::Kind::Trim);
    CHECK(f.type == cfg::FieldType::Text);
  }

  TEST_CASE("entities and fields keep YAML order") {
    const std::string text = kBase + R"(datasets:
  d:
    entities:
      zeta: {table: z, fields: {b: {from: B}, a: {from: A}}}
      alpha: {table: a, fields: {z: {ref: zeta}}}
)";
    const cfg::Config c = cfg::load_config_text(text, "x.yaml");
    const auto& ents = c.datasets.at("d").entities;
    REQUIRE(ents.size() == 2);
    CHECK(ents[0].name == "zeta");
    CHECK(ents[1].name == "alpha");
    CHECK(ents[0].fields[0].name == "b");
    CHECK(ents[0].fields[1].name == "a");
  }

  TEST_CASE("csv delimiter accepts tab spellings and rejects multi-character values") {
    for (const char* spelling : {"\"\\t\"", "'\\t'", "tab"}) {
      const std::string text = kBase + "datasets:\n  d:\n    csv: {delimiter: " + spelling +
                               "}\n    entities:\n      e: {table: t, fields: {a: {from: A}}}\n";
      CHECK(cfg::load_config_text(text, "x.yaml").datasets.at("d").csv.delimiter == '\t');
    }
    const auto probs = problems_of(kBase +
                                   "datasets:\n  d:\n    csv: {delimiter: ';;'}\n    entities:\n   "
                                   "   e: {table: t, fields: {a: {from: A}}}\n");
    CHECK_PROBLEM(probs, "ingestd.yaml:5: datasets.d.csv.delimiter: expected a single character");
  }

  TEST_CASE("jsonl: format and max_line_bytes load; another format's options are refused with the key path") {
    const std::string ents = "    entities:\n      e: {table: t, fields: {a: {from: person.email}}}\n";
    const auto c = cfg::load_config_text(
        kBase + "datasets:\n  d:\n    format: jsonl\n    jsonl: {max_line_bytes: 1024}\n" + ents, "x.yaml");
    CHECK(c.datasets.at("d").format == cfg::Format::Jsonl);
    CHECK(c.datasets.at("d").jsonl.max_line_bytes == 1024);
    CHECK(cfg::load_config_text(kBase + "datasets:\n  d:\n    format: jsonl\n" + ents, "x.yaml")
              .datasets.at("d")
              .jsonl.max_line_bytes == 16 << 20);
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    format: jsonl\n    csv: {delimiter: ';'}\n" + ents),
                  "ingestd.yaml:6: datasets.d.csv: csv options apply to format csv; this dataset's format is jsonl");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    jsonl: {max_line_bytes: 10}\n" + ents),
                  "datasets.d.jsonl: jsonl options apply to format jsonl; this dataset's format is csv");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    format: jsonl\n    jsonl: {max_line: 10}\n" + ents),
                  "datasets.d.jsonl.max_line: unknown key");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    format: parquet\n" + ents), "datasets.d.format");
  }

  TEST_CASE("csv.max_row_bytes and processing.chunk_bytes load, with their defaults and lower bounds") {
    const std::string ents = "    entities:\n      e: {table: t, fields: {a: {from: A}}}\n";
    const auto c = cfg::load_config_text(
        kBase + "processing: {chunk_bytes: 1048576}\ndatasets:\n  d:\n    csv: {max_row_bytes: 4096}\n" + ents, "x.yaml");
    CHECK(c.datasets.at("d").csv.max_row_bytes == 4096);
    CHECK(c.processing.chunk_bytes == 1 << 20);
    const auto d = cfg::load_config_text(kBase + "datasets:\n  d:\n" + ents, "x.yaml");
    CHECK(d.datasets.at("d").csv.max_row_bytes == 16 << 20);
    CHECK(d.processing.chunk_bytes == 64 << 20);
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    csv: {max_row_bytes: 1}\n" + ents),
                  "datasets.d.csv.max_row_bytes: expected an integer >= 2, got '1'");
    CHECK_PROBLEM(problems_of(kBase + "processing: {chunk_bytes: 0}\n"),
                  "processing.chunk_bytes: expected an integer >= 1, got '0'");
  }

  TEST_CASE("${VAR} is replaced from the environment") {
    setenv("INGESTD_TEST_DB", "postgresql://env/db", 1);
    setenv("INGESTD_TEST_POOL", "7", 1);
    setenv("INGESTD_TEST_HOST", "h1", 1);
    const cfg::Config c = cfg::load_config_text(
        "postgres: {url: \"${INGESTD_TEST_DB}\", pool_size: \"${INGESTD_TEST_POOL}\"}\n"
        "kafka: {brokers: \"${INGESTD_TEST_HOST}:9092,${INGESTD_TEST_HOST}:9093\"}\n",
        "x.yaml");
    CHECK(c.postgres.url == "postgresql://env/db");
    CHECK(c.postgres.pool_size == 7);
    CHECK(c.kafka.brokers == "h1:9092,h1:9093");
  }

  TEST_CASE("an unset variable names the key and the variable") {
    unsetenv("INGESTD_TEST_UNSET");
    const auto probs = problems_of("postgres:\n  url: \"${INGESTD_TEST_UNSET}\"\n");
    REQUIRE(probs.size() == 1);
    CHECK(probs[0] ==
          "ingestd.yaml:2: postgres.url: environment variable INGESTD_TEST_UNSET is not set");
    CHECK_PROBLEM(problems_of("postgres:\n  url: \"${oops\"\n"),
                  "ingestd.yaml:2: postgres.url: unterminated");
  }

  TEST_CASE("a $ value must be exactly a variable: nothing after its name reaches the SQL") {
    const auto p = problems_of(with_dataset("        on_insert: {note: \"$program||(select current_user)\", who: $uploader}\n"));
    CHECK(has_problem(p, {"on_insert.note", "unknown variable '$program||(select current_user)'", "$batch_id, $now"}));
    CHECK(has_problem(p, {"on_insert.who", "unknown variable '$uploader'"}));
    CHECK(problems_of(with_dataset("        on_insert: {who: $submitted_by, cost: \"12$\"}\n")).empty());
  }

  TEST_CASE("runtime variables like $batch_id are not environment variables") {
    unsetenv("batch_id");
    const cfg::Config c = cfg::load_config_text(
        with_dataset("        on_insert: {batch_id: $batch_id, at: $now, who: $submitted_by}\n"),
        "x.yaml");
    const auto& ins = c.datasets.at("ice_leads").entities.at(0).on_insert;
    REQUIRE(ins.size() == 3);
    CHECK(ins[0].second == "$batch_id");
    CHECK(ins[1].second == "$now");
    CHECK(ins[2].second == "$submitted_by");
  }

  TEST_CASE("file: values are read from the file, trailing newline trimmed") {
    TempFile secret("postgresql://from/file\n");
    const cfg::Config c =
        cfg::load_config_text("postgres: {url: \"file:" + secret.path.string() + "\"}\n", "x.yaml");
    CHECK(c.postgres.url == "postgresql://from/file");

    // ${VAR} first, so systemd's file:${CREDENTIALS_DIRECTORY}/name works.
    setenv("INGESTD_TEST_CREDS", secret.path.parent_path().c_str(), 1);
    const cfg::Config c2 = cfg::load_config_text(
        "postgres: {url: \"file:${INGESTD_TEST_CREDS}/" + secret.path.filename().string() + "\"}\n",
        "x.yaml");
    CHECK(c2.postgres.url == "postgresql://from/file");

    const auto probs = problems_of("postgres:\n  url: file:/nonexistent/ingestd/secret\n");
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:2: postgres.url: cannot read file '/nonexistent/ingestd/secret'");
  }

  TEST_CASE("load_config reads a file and reports an unreadable one") {
    TempFile f(kBase);
    CHECK(cfg::load_config(f.path.string()).postgres.url == "postgresql://localhost/app");
    CHECK_THROWS_AS(cfg::load_config("/nonexistent/ingestd.yaml"), cfg::ConfigError);
  }

  TEST_CASE("unknown keys are reported with file:line and the allowed keys") {
    const auto probs = problems_of(kBase + R"(kafka:
  brokers: embedded
  topix: x
)");
    REQUIRE(probs.size() == 1);
    CHECK(probs[0] ==
          "ingestd.yaml:5: kafka.topix: unknown key; allowed: brokers, group_id, topics, "
          "properties, embedded_partitions, embedded_address_file");

    const auto top = problems_of(kBase + "datsets: {}\n");
    CHECK_PROBLEM(top,
                  "ingestd.yaml:3: datsets: unknown key; allowed: kafka, postgres, http, files,");

    const auto field = problems_of(with_dataset("          x: {from: X, colum: n}\n"));
    CHECK_PROBLEM(field,
                  "ingestd.yaml:11: datasets.ice_leads.entities.person.fields.x.colum: "
                  "unknown key; allowed: column, from, ref, type, formats, normalize, "
                  "required, merge, lookup, on_missing");
  }

  TEST_CASE("wrong types say what was expected and what was found") {
    CHECK_PROBLEM(problems_of("postgres: {url: postgresql://h/x, pool_size: abc}\n"),
                  "ingestd.yaml:1: postgres.pool_size: expected an integer, got 'abc'");
    // Numbers parse strictly: no trailing junk, no floats for integers.
    CHECK_PROBLEM(problems_of("postgres: {url: postgresql://h/x, pool_size: 4x}\n"),
                  "expected an integer, got '4x'");
    CHECK_PROBLEM(problems_of(kBase + "processing: {chunk_rows: 1.5}\n"),
                  "processing.chunk_rows: expected an integer, got '1.5'");
    CHECK_PROBLEM(problems_of(kBase + "processing: {chunk_rows: 0}\n"),
                  "processing.chunk_rows: expected an integer >= 1, got '0'");
    CHECK_PROBLEM(problems_of(kBase + "processing: {max_attempts: 0}\n"),
                  "processing.max_attempts: expected an integer >= 1");
    CHECK_PROBLEM(problems_of(kBase + "processing: {retry_base_seconds: soon}\n"),
                  "processing.retry_base_seconds: expected a number, got 'soon'");
    CHECK_PROBLEM(problems_of(kBase + "files: {allowed_roots: /in}\n"),
                  "files.allowed_roots: expected a list of strings, got '/in'");
    CHECK_PROBLEM(problems_of(kBase + "kafka: [a]\n"),
                  "ingestd.yaml:3: kafka: expected a mapping, got a list");
    CHECK_PROBLEM(problems_of(with_dataset("        merge: sometimes\n")),
                  "ingestd.yaml:11: datasets.ice_leads.entities.person.merge: expected one of "
                  "fill_nulls, overwrite, keep, got 'sometimes'");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    atomic: maybe\n    entities: {e: "
                                      "{table: t, fields: {a: {from: A}}}}\n"),
                  "datasets.d.atomic: expected true or false, got 'maybe'");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    entities: {e: {table: t, fields: {a: "
                                      "{from: A, type: string}}}}\n"),
                  "datasets.d.entities.e.fields.a.type: expected one of text, int, bigint");
    CHECK_PROBLEM(
        problems_of(kBase + "datasets:\n  d:\n    entities: {e: {table: t, fields: {a: {from: A, "
                            "normalize: {digits: {min: 3}}}}}}\n"),
        "datasets.d.entities.e.fields.a.normalize.digits.min: unknown key; allowed: min_digits");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    entities: {e: {table: t, fields: {a: "
                                      "{from: A, normalize: soundex}}}}\n"),
                  "datasets.d.entities.e.fields.a.normalize: expected one of trim, digits");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    entities: {e: {table: t, fields: {a: "
                                      "{from: A, normalize: {phone: {invalid: drop}}}}}}\n"),
                  "normalize.phone.invalid: expected one of reject, null, got 'drop'");
    CHECK_PROBLEM(problems_of("postgres: {url: x\n"), "ingestd.yaml:", "invalid YAML");
  }

  TEST_CASE("all problems are reported at once, in file order") {
    const auto probs = problems_of(R"(kafka:
  embedded_partitions: zero
  topix: x
processing:
  chunk_rows: -5
)");
    REQUIRE(probs.size() == 4);
    CHECK(probs[0].rfind("ingestd.yaml:1: postgres.url: required key is missing", 0) == 0);
    CHECK(probs[1].rfind("ingestd.yaml:2: kafka.embedded_partitions:", 0) == 0);
    CHECK(probs[2].rfind("ingestd.yaml:3: kafka.topix:", 0) == 0);
    CHECK(probs[3].rfind("ingestd.yaml:5: processing.chunk_rows:", 0) == 0);
    try {
      cfg::load_config_text("kafka: {topix: 1, topiks: 2}\n", "a.yaml");
      FAIL("expected ConfigError");
    } catch (const cfg::ConfigError& e) {
      CHECK(std::string(e.what()) == e.problems[0] + "\n" + e.problems[1] + "\n" + e.problems[2]);
    }
  }

  TEST_CASE("http.status_socket: an absolute path; its group needs it") {
    CHECK(cfg::load_config_text(kBase + "http: {status_socket: /run/ingestd/status.sock}\n", "x.yaml").http.status_socket ==
          "/run/ingestd/status.sock");
    CHECK_PROBLEM(problems_of(kBase + "http: {status_socket: status.sock}\n"),
                  "ingestd.yaml:3: http.status_socket: must be an absolute path of at most 107 bytes, got status.sock");
    CHECK_PROBLEM(problems_of(kBase + "http: {status_socket_group: adm}\n"),
                  "ingestd.yaml:3: http.status_socket_group: needs http.status_socket");
    CHECK_PROBLEM(problems_of(kBase + "http: {status_socket: /run/s.sock, status_socket_group: no-such-group-x}\n"),
                  "ingestd.yaml:3: http.status_socket_group: no group 'no-such-group-x' on this system");
  }

  TEST_CASE("missing required keys") {
    CHECK_PROBLEM(problems_of("http: {listen: x}\n"),
                  "ingestd.yaml:1: postgres.url: required key is missing");
    CHECK_PROBLEM(problems_of("postgres: {pool_size: 3}\n"),
                  "ingestd.yaml:1: postgres.url: required key is missing");
    CHECK_PROBLEM(problems_of(""), "ingestd.yaml:1: the file is empty");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    format: csv\n"),
                  "ingestd.yaml:4: datasets.d.entities: required key is missing");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    entities: {}\n"),
                  "ingestd.yaml:5: datasets.d.entities: expected at least one entity");
    CHECK_PROBLEM(
        problems_of(kBase +
                    "datasets:\n  d:\n    entities:\n      e:\n        fields: {a: {from: A}}\n"),
        "ingestd.yaml:6: datasets.d.entities.e.table: required key is missing");
    CHECK_PROBLEM(problems_of(kBase + "sources:\n  s: {}\n"),
                  "ingestd.yaml:4: sources.s.url: required key is missing");
    CHECK_PROBLEM(problems_of(kBase + "datasets:\n  d:\n    entities: {e: {table: t, fields: {a: "
                                      "{from: A, lookup: {table: x}}}}}\n"),
                  "datasets.d.entities.e.fields.a.lookup.key: required key is missing");
  }

  TEST_CASE("check: a field needs from or ref") {
    const auto probs = problems_of(with_dataset("          phone: {column: phone}\n"));
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:11: datasets.ice_leads.entities.person.fields.phone: needs 'from'");
    CHECK_PROBLEM(problems_of(with_dataset("          x: {from: X, ref: person}\n")),
                  "has both 'from' and 'ref'");
  }

  TEST_CASE("check: an identity tier names a field that does not exist") {
    const auto probs = problems_of(with_dataset(R"(        identity:
          - [email]
          - [name]
          - [name, birth_date]
)"));
    REQUIRE(probs.size() == 1);
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:14: datasets.ice_leads.entities.person.identity[2]: "
                  "identity tier names field 'birth_date'",
                  "its fields: email, name");
    CHECK_PROBLEM(
        problems_of(with_dataset("        identity: [email, name]\n")),
        "datasets.ice_leads.entities.person.identity[0]: expected a non-empty list of field names");
  }

  TEST_CASE("check: a ref must name an earlier entity") {
    const std::string later = kBase + R"(datasets:
  d:
    entities:
      lead:
        table: leads
        fields:
          person: {column: person_id, ref: person}
      person:
        table: persons
        fields: {email: {from: Email}}
)";
    CHECK_PROBLEM(problems_of(later),
                  "ingestd.yaml:9: datasets.d.entities.lead.fields.person.ref: entity 'person' is "
                  "not declared before this one");
    CHECK_PROBLEM(
        problems_of(with_dataset("          me: {ref: person}\n")),
        "datasets.ice_leads.entities.person.fields.me.ref: entity 'person' is not declared before");
    CHECK_PROBLEM(problems_of(with_dataset("          x: {ref: company}\n")),
                  "fields.x.ref: no entity 'company' in this dataset");
  }

  TEST_CASE("check: duplicate column within an entity") {
    const auto probs =
        problems_of(with_dataset("          mail2: {column: email, from: Correo}\n"));
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:11: datasets.ice_leads.entities.person.fields.mail2.column: "
                  "column 'email' is already written by field 'email'");
  }

  TEST_CASE("check: formats only on date and timestamp fields") {
    CHECK_PROBLEM(
        problems_of(with_dataset("          n: {from: N, type: int, formats: [\"%d\"]}\n")),
        "ingestd.yaml:11: datasets.ice_leads.entities.person.fields.n.formats: formats apply only "
        "to type date or timestamp");
    CHECK_PROBLEM(problems_of(with_dataset("          n: {from: N, formats: [\"%d\"]}\n")),
                  "fields.n.formats:");
    CHECK(
        problems_of(with_dataset("          t: {from: T, type: timestamp, formats: [\"%F %T\"]}\n"))
            .empty());
  }

  TEST_CASE("check: on_missing defer needs a lookup") {
    CHECK_PROBLEM(problems_of(with_dataset("          s: {from: S, on_missing: defer}\n")),
                  "fields.s.on_missing: defer needs a lookup");
    // A bare `null` is YAML's null, which on_missing reads as the word.
    const cfg::Config c = cfg::load_config_text(
        with_dataset("          s: {from: S, lookup: {table: t, key: k}, on_missing: null}\n"),
        "x.yaml");
    CHECK(c.datasets.at("ice_leads").entities.at(0).fields.at(2).on_missing ==
          cfg::OnMissing::Null);
    // every normalizer takes `invalid: reject | null` (issue 14), nothing else unless it has options
    CHECK_PROBLEM(problems_of(with_dataset("          s: {from: S, normalize: {trim: {x: 1}}}\n")),
                  "fields.s.normalize.trim.x: unknown key; allowed: invalid");
    CHECK(problems_of(with_dataset("          s: {from: S, normalize: {email: {invalid: null}}}\n")).empty());
  }

  TEST_CASE("check: jobs name known datasets and source databases") {
    const std::string text = with_dataset("") + R"(sources:
  legacy: {url: "postgresql://legacy/x"}
jobs:
  j1:
    kind: migrate
    source: {database: legcy, sql: "SELECT 1"}
    dataset: ice_leadz
  j2:
    kind: migrate
    dataset: ice_leads
  j3:
    kind: migrate
    dataset: ice_leads
    source: {sql: "SELECT 1"}
    writeback: [{table: leads, set: {customer_id: customer}, where: {id: id}}]
  j4:
    kind: sync
    source: {sql: "SELECT 1"}
    dataset: ice_leads
)";
    const auto probs = problems_of(text);
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:16: jobs.j1.source.database: unknown source database 'legcy'; "
                  "declared sources: legacy");
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:17: jobs.j1.dataset: unknown dataset 'ice_leadz'; declared "
                  "datasets: ice_leads");
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:18: jobs.j2.source.sql: required key is missing for a migrate job");
    CHECK_PROBLEM(probs,
                  "ingestd.yaml:25: jobs.j3.writeback[0].set.customer_id: no entity 'customer'");
    CHECK_PROBLEM(
        probs, "ingestd.yaml:27: jobs.j4.kind: expected one of migrate, resolve_refs, got 'sync'");
    CHECK(probs.size() == 5);
  }

  TEST_CASE("check: resolve_refs needs a lookup field with on_missing defer") {
    const std::string datasets = kBase + R"(datasets:
  d:
    entities:
      person:
        table: persons
        fields: {email: {from: Email}}
      lead:
        table: leads
        fields:
          school: {from: School, lookup: {table: schools, key: sf_id}, on_missing: defer}
          program: {from: Program, lookup: {table: programs, key: code}}
          email: {from: Email}
)";
    const auto job = [&](const std::string& field) {
      return datasets + "jobs:\n  r:\n    kind: resolve_refs\n    dataset: d\n    field: " + field +
             "\n";
    };
    CHECK(problems_of(job("school")).empty());
    CHECK(problems_of(job("lead.school")).empty());
    CHECK_PROBLEM(problems_of(job("program")),
                  "ingestd.yaml:19: jobs.r.field: resolve_refs needs a field with a lookup and "
                  "on_missing: defer",
                  "has on_missing: null");
    CHECK_PROBLEM(problems_of(job("lead.email")), "jobs.r.field: resolve_refs needs",
                  "has no lookup");
    CHECK_PROBLEM(problems_of(job("email")), "jobs.r.field: field 'email' is ambiguous",
                  "person.email, lead.email");
    CHECK_PROBLEM(problems_of(job("nope")), "jobs.r.field: no field 'nope' in dataset 'd'");
    CHECK_PROBLEM(problems_of(datasets + "jobs:\n  r: {kind: resolve_refs, dataset: d}\n"),
                  "jobs.r.field: required key is missing");
  }

  TEST_CASE("duplicate keys are reported") {
    CHECK_PROBLEM(problems_of(kBase + "http: {listen: a}\nhttp: {listen: b}\n"),
                  "ingestd.yaml:4: http: duplicate key");
  }

  TEST_CASE("the example config loads cleanly") {
    setenv("INGESTD_DATABASE_URL", "postgresql://ingestd@localhost/ingestd", 1);
    const auto path =
        std::filesystem::path(__FILE__).parent_path() / "../../config/ingestd.example.yaml";
    cfg::Config c;
    try {
      c = cfg::load_config(path.string());
    } catch (const cfg::ConfigError& e) {
      FAIL(e.what());
    }
    CHECK(c.kafka.brokers == "embedded");
    CHECK(c.postgres.url == "postgresql://ingestd@localhost/ingestd");
    REQUIRE(c.datasets.count("ice_leads") == 1);
    const auto& ents = c.datasets.at("ice_leads").entities;
    REQUIRE(ents.size() == 2);
    CHECK(ents[0].name == "person");
    CHECK(ents[0].identity.size() == 4);
    CHECK(ents[1].name == "lead");
    CHECK(ents[1].fields[0].ref == "person");
    for (const auto& [name, job] : c.jobs) CHECK_MESSAGE(c.datasets.count(job.dataset) == 1, name);
    CHECK(c.jobs.count("assign_schools") == 1);
  }

}  // TEST_SUITE
