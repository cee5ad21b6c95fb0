// The row builder: header mapping, normalizing, typed parsing and identity keys, without a
// database.
#include <doctest/doctest.h>

#include "config/loader.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/row_builder.hpp"

using namespace ingestd;
using engine::Record;
using engine::Row;
using engine::RowBuilder;
using engine::RowErrors;

namespace {

const char* kConfig = R"(postgres: {url: postgresql://localhost/app}
datasets:
  leads:
    entities:
      person:
        table: persons
        identity: [[cedula], [email], [first_name, birth_date]]
        fields:
          cedula: {column: cedula, from: Cedula, normalize: digits}
          email: {column: email, from: [Email, Correo], normalize: email}
          first_name: {column: first_name, from: Nombre, normalize: name, required: true}
          birth_date: {column: birth_date, from: Fecha, type: date, formats: ["%d/%m/%Y", "%Y-%m-%d"]}
          program: {column: program, from: $program}
          note: {column: note, from: Nota}
)";

config::Config test_config() { return config::load_config_text(kConfig, "test.yaml"); }

Record record(std::vector<std::string> fields) {
  Record r;
  r.raw = "raw";
  r.fields = std::move(fields);
  return r;
}

}  // namespace

TEST_CASE("row builder: header names match exactly, then case-insensitively, first alternative present wins") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars{{"program", "mentors"}};
  RowBuilder b(cfg.datasets.at("leads"), {" cedula ", "CORREO", "Nombre", "Fecha"}, vars);
  const auto& m = b.entities().at(0);
  CHECK(m.source_index == std::vector<int>{0, 1, 2, 3, engine::EntityMapping::kVariable, engine::EntityMapping::kAbsent});
  REQUIRE(b.warnings().size() == 1);  // Nota is optional and absent: the field stays empty
  CHECK(b.warnings()[0].find("'Nota'") != std::string::npos);

  Row row;
  RowErrors errors;
  auto rec = record({"1.023.456.789", " Ana@Example.COM ", "josé  GARCÍA", "19/10/1996"});
  b.build(rec, 7, row, errors);
  REQUIRE(!row.rejected);
  const auto& v = row.values[0];
  CHECK(v[0] == std::optional<std::string>("1023456789"));
  CHECK(v[1] == std::optional<std::string>("ana@example.com"));
  CHECK(v[2] == std::optional<std::string>("José García"));
  CHECK(v[3] == std::optional<std::string>("1996-10-19"));
  CHECK(v[4] == std::optional<std::string>("mentors"));
  CHECK(!v[5]);
  // keys only for identity fields; names keyed folded, dates on their parsed form
  const auto& k = row.keys[0];
  CHECK(k[2] == std::optional<std::string>("jose garcia"));
  CHECK(k[3] == std::optional<std::string>("1996-10-19"));
  CHECK(!k[4]);
}

TEST_CASE("row builder: a missing required column is a batch error naming the field") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars;
  CHECK_THROWS_WITH_AS(RowBuilder(cfg.datasets.at("leads"), {"Cedula", "Email"}, vars),
                       doctest::Contains("missing required column 'Nombre' for field person.first_name"),
                       engine::BatchError);
}

TEST_CASE("row builder: bad values reject the row with column, value and reason; ragged rows too") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars;
  RowBuilder b(cfg.datasets.at("leads"), {"Cedula", "Email", "Nombre", "Fecha"}, vars);
  RowErrors errors;
  Row bad_email, bad_date, empty_name, ragged;
  auto r1 = record({"1", "carlos@example", "Carlos", ""});
  b.build(r1, 2, bad_email, errors);
  auto r2 = record({"2", "", "Ana", "31/02/1990"});
  b.build(r2, 3, bad_date, errors);
  auto r3 = record({"3", "", "  ", ""});
  b.build(r3, 4, empty_name, errors);
  auto r4 = record({"4", "x@y.co"});
  b.build(r4, 5, ragged, errors);
  CHECK(bad_email.rejected);
  CHECK(bad_date.rejected);
  CHECK(empty_name.rejected);
  CHECK(ragged.rejected);
  CHECK(errors.rows == 4);
  REQUIRE(errors.list.size() == 4);
  CHECK(errors.list[0].row == 2);
  CHECK(errors.list[0].field == "Email");
  CHECK(errors.list[0].message.find("carlos@example") != std::string::npos);
  CHECK(errors.list[1].field == "Fecha");
  CHECK(errors.list[2].code == "required");
  CHECK(errors.list[3].code == "ragged_row");
}

TEST_CASE("row builder: pass-through columns are copied verbatim for writebacks") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars;
  RowBuilder b(cfg.datasets.at("leads"), {"id", "Nombre"}, vars);
  CHECK(b.pass_through("id", "writeback") == 0);
  CHECK_THROWS_AS(b.pass_through("missing", "writeback"), engine::BatchError);
  Row row;
  RowErrors errors;
  auto rec = record({"42", "Ana"});
  b.build(rec, 1, row, errors);
  CHECK(row.source == std::vector<std::string>{"42"});
}

TEST_CASE("row builder: placeholders are no value, and invalid: null keeps the row with a warning") {
  const std::string text = std::string(R"(postgres: {url: postgresql://localhost/app}
datasets:
  leads:
    null_values: ["N/A", "sin correo", "0000000000"]
    entities:
      person:
        table: persons
        identity: [[phone], [email]]
        fields:
          name: {column: name, from: Nombre, required: true}
          email: {column: email, from: Email, normalize: {email: {invalid: null}}}
          phone: {column: phone, from: Tel, normalize: {digits: {min_digits: 7}}}
          born: {column: born, from: Fecha, type: date, normalize: {trim: {invalid: null}}}
)");
  auto cfg = config::load_config_text(text, "test.yaml");
  const std::map<std::string, std::string> vars;
  RowBuilder b(cfg.datasets.at("leads"), {"Nombre", "Email", "Tel", "Fecha"}, vars);
  RowErrors errors;
  Row row;
  auto rec = record({"Ana", "Sin Correo", " 0000000000 ", "31/02/1990"});
  b.build(rec, 2, row, errors);
  CHECK(!row.rejected);
  CHECK(!row.values[0][1]);
  CHECK(!row.values[0][2]);
  CHECK(!row.keys[0][2]);  // the placeholder phone is no key
  CHECK(!row.values[0][3]);
  REQUIRE(errors.list.size() == 1);  // the impossible date, kept as NULL
  CHECK(errors.list[0].warning);
  CHECK(errors.list[0].code == "invalid_value_nulled");
  CHECK(errors.rows == 0);
  Row bad_mail;
  auto rec2 = record({"Carlos", "carlos@example", "3001234567", ""});
  b.build(rec2, 3, bad_mail, errors);
  CHECK(!bad_mail.rejected);  // the person can still be matched and stored by phone
  CHECK(!bad_mail.values[0][1]);
  CHECK(bad_mail.keys[0][2] == std::optional<std::string>("3001234567"));
  CHECK(errors.list.back().field == "Email");
}

TEST_CASE("row builder: a record its source could not read is rejected with the source's code and reason") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars;
  RowBuilder b(cfg.datasets.at("leads"), {"Cedula", "Email", "Nombre", "Fecha"}, vars);
  Row row;
  RowErrors errors;
  auto rec = record({"", "", "", ""});
  rec.raw = "{\"Nombre\": oops";
  rec.error_code = "invalid_json";
  rec.error = "line 4: not valid JSON: column 12: syntax error";
  b.build(rec, 3, row, errors);
  CHECK(row.rejected);
  REQUIRE(errors.list.size() == 1);  // only the source's reason, not "required field … is empty" too
  CHECK(errors.list[0].row == 3);
  CHECK(errors.list[0].code == "invalid_json");
  CHECK(errors.list[0].message == "line 4: not valid JSON: column 12: syntax error");
  CHECK(errors.list[0].raw == "{\"Nombre\": oops");
  CHECK(errors.rows == 1);
}

TEST_CASE("row builder: a 5 MB invalid value makes a short row error, and a long message is cut") {
  auto cfg = test_config();
  const std::map<std::string, std::string> vars;  // the builder keeps a reference
  RowBuilder b(cfg.datasets.at("leads"), {"Cedula", "Email", "Nombre", "Fecha"}, vars);
  Row row;
  RowErrors errors;
  const std::string email(5 << 20, 'x');
  auto rec = record({"123", email, "Ana", ""});
  rec.raw = std::string(1 << 20, 'r');
  b.build(rec, 3, row, errors);
  REQUIRE(row.rejected);
  REQUIRE(errors.list.size() == 1);
  CHECK(errors.list[0].message == "invalid email: \"" + std::string(80, 'x') + "...\" (5242880 bytes)");
  CHECK(errors.first.at(0) == "row 3, Email: invalid_value");  // results carry codes, not values
  // what processing.chunk_bytes counts: the row's text and its error's copy of it
  CHECK(engine::held_bytes(row, errors, 0) >= size_t(2 << 20));
  CHECK(engine::held_bytes(row, errors, 1) < size_t(1 << 20) + 1024);

  Row other;
  engine::reject(errors, other, "", "db", std::string(10000, 'm'));
  CHECK(errors.list.back().message.size() < engine::kMaxRowErrorMessage + 50);
}
