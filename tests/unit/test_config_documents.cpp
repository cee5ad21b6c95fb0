// `kind: documents` datasets (issue 17): what loads, and the errors that name the key path.
#include <doctest/doctest.h>

#include "config/loader.hpp"

using namespace ingestd::config;

namespace {

const std::string kBase =
    "postgres: {url: postgresql://x/y}\n"
    "datasets:\n"
    "  people:\n"
    "    entities:\n"
    "      person:\n"
    "        table: persons\n"
    "        identity: [[cedula], [email]]\n"
    "        fields:\n"
    "          cedula: {from: Cedula, normalize: digits}\n"
    "          email: {from: Email, normalize: email}\n"
    "          name: {from: Nombre, normalize: name}\n";

std::string problems_of(const std::string& datasets_tail) {
  try {
    load_config_text(kBase + datasets_tail, "t.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const std::string kDocs =
    "  docs:\n"
    "    kind: documents\n"
    "    target: {table: person_documents, owner_column: person_id, sha256: sha256, media_type: media_type}\n"
    "    owner: {dataset: people, match: {cedula: cedula, email: correo}}\n"
    "    store_dir: /var/lib/ingestd/store\n";

}  // namespace

TEST_CASE("a documents dataset loads its table, columns, owner and store") {
  const Config c = load_config_text(kBase + kDocs, "t.yaml");
  const Dataset& ds = c.datasets.at("docs");
  REQUIRE(ds.documents);
  CHECK(ds.entities.empty());
  CHECK(ds.documents->table == "person_documents");
  CHECK(ds.documents->id_column == "id");
  CHECK(ds.documents->media_type == "media_type");
  CHECK(ds.documents->uri.empty());               // a column not named is not stored
  CHECK(ds.documents->owner_entity == "person");  // the owner dataset's only entity
  const std::vector<std::pair<std::string, std::string>> match{{"cedula", "cedula"}, {"email", "correo"}};
  CHECK(ds.documents->match == match);
  CHECK(ds.documents->store_dir == "/var/lib/ingestd/store");
}

TEST_CASE("documents config errors name the key path") {
  auto with = [](std::string from, std::string to) {
    std::string d = kDocs;
    d.replace(d.find(from), from.size(), to);
    return problems_of(d);
  };
  CHECK(with("owner_column: person_id, ", "").find("datasets.docs.target.owner_column: required key is missing") !=
        std::string::npos);
  CHECK(with("dataset: people", "dataset: nobody").find("datasets.docs.owner.dataset: 'nobody' is no dataset") !=
        std::string::npos);
  CHECK(
      with("cedula: cedula,", "dni: cedula,").find("datasets.docs.owner.match.dni: entity person has no field 'dni'") !=
      std::string::npos);
  CHECK(with("{cedula: cedula, email: correo}", "{}").find("datasets.docs.owner.match") != std::string::npos);
  CHECK(with("/var/lib", "var/lib").find("datasets.docs.store_dir: expected an absolute path") != std::string::npos);
  CHECK(with("kind: documents", "kind: papers").find("datasets.docs.kind: expected one of records, documents") !=
        std::string::npos);
  CHECK(problems_of(kDocs + "    entities: {}\n")
            .find("datasets.docs.entities: entities applies to datasets of records") != std::string::npos);
  CHECK(problems_of("  more:\n    store_dir: /x\n    entities: {}\n")
            .find("datasets.more.store_dir: store_dir applies to "
                  "kind: documents") != std::string::npos);
}

TEST_CASE("a documents owner must be matched by a whole identity tier") {
  std::string d = kDocs;
  const std::string part = "match: {cedula: cedula, email: correo}";
  d.replace(d.find(part), part.size(), "match: {}");
  CHECK(problems_of(d).find("expected at least one owner field") != std::string::npos);
  d = kDocs;
  d.replace(d.find(part), part.size(), "match: {name: nombre}");
  CHECK(problems_of(d).find("datasets.docs.owner.match: matches no identity tier of people.person whole") !=
        std::string::npos);
  // a job cannot map rows through a documents dataset
  CHECK(problems_of(kDocs + "jobs:\n  j: {source: {sql: SELECT 1}, dataset: docs}\n")
            .find("jobs.j.dataset: dataset 'docs' "
                  "is of kind documents") != std::string::npos);
}
