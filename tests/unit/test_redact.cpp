// Secrets stay put (issue 16 item 6): config::redact masks passwords in connection strings,
// `password=` pairs and Kafka secret properties, and every secret the config loader read —
// also where libpq quotes a piece of a malformed URL back; a `file:`/`${VAR}` value that fails
// type checking is reported by key path, not by value.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "config/redact.hpp"

namespace cfg = ingestd::config;

namespace {

std::string problems_text(const std::string& text) {
  try {
    cfg::load_config_text(text, "ingestd.yaml");
  } catch (const cfg::ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("redact") {
  TEST_CASE("the password of a URI and of a keyword string is masked wherever it is in a text") {
    CHECK(cfg::redact("cannot connect to postgresql://app:Hunter2x@db:5432/app now") ==
          "cannot connect to postgresql://app:***@db:5432/app now");
    CHECK(cfg::redact("host=db user=app password=Hunter3y dbname=app") == "host=db user=app password=*** dbname=app");
    CHECK(cfg::redact("host=db password='it\\'s secret' port=1") == "host=db password=*** port=1");
    CHECK(cfg::redact("postgresql://db/app?user=a&password=Hunter4z&sslmode=require") ==
          "postgresql://db/app?user=a&password=***&sslmode=require");
    CHECK(cfg::redact("kafka sasl.password=Kpass1 ssl.key.password = Kpass2") ==
          "kafka sasl.password=*** ssl.key.password = ***");
    // nothing secret: unchanged
    CHECK(cfg::redact("file:///var/lib/ingestd/inbox/a.csv: row 3, Email: invalid_value") ==
          "file:///var/lib/ingestd/inbox/a.csv: row 3, Email: invalid_value");
    CHECK(cfg::redact("postgresql://app@db/app") == "postgresql://app@db/app");
  }

  TEST_CASE("a remembered malformed URL's password is masked also where libpq quotes a piece of it") {
    cfg::remember_conninfo_secret("postgresql://bob:SEC/RET7zz@127.0.0.1:1/db");
    // libpq reads "bob:SEC" as host and port
    CHECK(cfg::redact(R"(invalid integer value "SEC" for connection option "port")") ==
          R"(invalid integer value "***" for connection option "port")");
    cfg::remember_conninfo_secret("postgresql://bob:pa%zzSECRET1@127.0.0.1:1/db");
    CHECK(cfg::redact(R"(invalid percent-encoded token: "pa%zzSECRET1")") == R"(invalid percent-encoded token: "***")");
    cfg::remember_conninfo_secret("host=h password=se cretQ9 port=1");
    CHECK(cfg::redact(R"(missing "=" after "cretQ9" in connection info string)") ==
          R"(missing "=" after "***" in connection info string)");
    // a well-formed one: the percent-decoded password too (as libpq reads it)
    cfg::remember_conninfo_secret("postgresql://u:p%40ssW0rd@h/db");
    CHECK(cfg::redact("the password p@ssW0rd or p%40ssW0rd") == "the password *** or ***");
  }

  TEST_CASE("Kafka properties whose value is a secret") {
    CHECK(cfg::secret_kafka_property("sasl.password"));
    CHECK(cfg::secret_kafka_property("ssl.key.password"));
    CHECK(cfg::secret_kafka_property("ssl.keystore.password"));
    CHECK(cfg::secret_kafka_property("sasl.oauthbearer.client.secret"));
    CHECK(cfg::secret_kafka_property("ssl.key.pem"));
    CHECK_FALSE(cfg::secret_kafka_property("sasl.username"));
    CHECK_FALSE(cfg::secret_kafka_property("security.protocol"));
  }

  TEST_CASE("the loader remembers the secrets it reads") {
    const std::string text = R"(postgres:
  url: "postgresql://app:LoaderPw1@db/app"
kafka:
  properties: {sasl.username: ingestd, sasl.password: KafkaPw22}
sources:
  legacy: {url: "host=old password=LegacyPw3"}
)";
    cfg::load_config_text(text, "ingestd.yaml");
    CHECK(cfg::redact("a LoaderPw1 b KafkaPw22 c LegacyPw3") == "a *** b *** c ***");
    CHECK(cfg::redact("user ingestd") == "user ingestd");
  }

  TEST_CASE("a malformed postgres.url is refused at load by key path, its password masked") {
    const std::string out = problems_text("postgres:\n  url: \"postgresql://bob:SECRET5x@[::1/db\"\n");
    CHECK(contains(out, "ingestd.yaml:2: postgres.url: not a connection string libpq can read"));
    CHECK_FALSE(contains(out, "SECRET5x"));
    const std::string src = problems_text("postgres:\n  url: postgresql://h/db\nsources:\n  old:\n    url: "
                                          "\"postgresql://u:pa%zzOLDSECRET@h/db\"\n");
    CHECK(contains(src, "sources.old.url: not a connection string libpq can read"));
    CHECK_FALSE(contains(src, "OLDSECRET"));
  }

  TEST_CASE("a file: or ${VAR} value in a wrongly typed key is named by its reference, not shown") {
    const auto dir = std::filesystem::temp_directory_path() / ("ingestd-redact-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const auto secret = dir / "db_url";
    std::ofstream(secret) << "postgresql://bob:FileSecret9@h/db\n";
    setenv("INGESTD_TEST_SECRET_ENV", "EnvSecret8", 1);
    const std::string out = problems_text("postgres:\n  url: postgresql://h/db\n  pool_size: file:" + secret.string() +
                                          "\nprocessing:\n  max_attempts: ${INGESTD_TEST_SECRET_ENV}\n"
                                          "logging:\n  level: file:" + secret.string() + "\n");
    CHECK(contains(out, "postgres.pool_size: expected an integer, got the value of file:" + secret.string() +
                            " (not shown)"));
    CHECK(contains(out, "processing.max_attempts: expected an integer, got the value of ${INGESTD_TEST_SECRET_ENV} "
                        "(not shown)"));
    CHECK(contains(out, "logging.level: expected one of"));
    CHECK_FALSE(contains(out, "FileSecret9"));
    CHECK_FALSE(contains(out, "EnvSecret8"));
    // a file: value is remembered: masked wherever it turns up later
    CHECK(cfg::redact("listen on postgresql://bob:FileSecret9@h/db") == "listen on ***");
    unsetenv("INGESTD_TEST_SECRET_ENV");
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("files.rejects_group must name a group of this system") {
    const std::string out = problems_text("postgres:\n  url: postgresql://h/db\nfiles:\n  rejects_group: no-such-group-x\n");
    CHECK(contains(out, "ingestd.yaml:4: files.rejects_group: no group 'no-such-group-x' on this system"));
    const cfg::Config c = cfg::load_config_text("postgres:\n  url: postgresql://h/db\nfiles:\n  rejects_group: root\n",
                                                "ingestd.yaml");
    CHECK(c.files.rejects_group == "root");
  }
}

TEST_CASE("http.listen: a unix socket is refused with the key path, naming http.status_socket") {
  const std::string out = problems_text("postgres:\n  url: postgresql://h/db\nhttp:\n  listen: unix:/run/ingestd/http.sock\n");
  CHECK(contains(out, "ingestd.yaml:4: http.listen: listen takes HOST:PORT or PORT; for a unix socket set http.status_socket"));
}
