// Normalizers and typed parsing: raw text -> stored value and identity key (DESIGN §3).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace ingestd::engine {

/// @brief What a normalizer made of one raw value.
struct Normalized {
  std::optional<std::string> value;  // what is stored; nullopt = missing (NULL)
  std::optional<std::string> key;    // identity-key form; nullopt = not usable as a key
  std::string error;                 // non-empty: the row is rejected with this reason
  std::string nulled;                // non-empty: invalid, and `invalid: null` made it NULL (a warning)
};

/// Applies one normalizer. Empty or all-blank input is missing (no error).
Normalized normalize(const config::Normalizer& n, std::string_view raw);

/// The characters the name key treats as white space and strips as marks, as the contents of
/// a PostgreSQL regular-expression bracket for an E'' literal (from ICU's own sets), so the SQL
/// name_key function in the bookkeeping schema computes exactly the C++ key.
std::string name_key_space_class();
std::string name_key_marks_class();

/// The name key of a value as stored in a target's column: what the SQL name_key in the
/// bookkeeping schema computes of it, without asking PostgreSQL (printable ASCII words with one
/// space between them are lowercased, as that function's first branch does; any other value
/// takes the `name` normalizer's path). nullopt for a blank value.
std::optional<std::string> name_key(std::string_view stored);

/// The identity key of a field's typed value: text keys on its normalizer's key form (names
/// case- and accent-folded), other types on their parsed form (19/10/1996 and 1996-10-19 are
/// one birth date). The engine's one rule for field keys.
std::optional<std::string> field_key(const config::Field& f, const Normalized& n, const std::string& typed_value);

/// A value as row errors echo it: quoted, and past 80 bytes cut (on a UTF-8 boundary) with its
/// size, so a 5 MB value makes no 5 MB message, log line or result.
std::string quoted_value(const std::string& v);

/// @brief A value parsed into PostgreSQL text input form (ISO dates, '.' decimals, t/f).
struct Parsed {
  std::optional<std::string> value;  // nullopt = NULL
  std::string error;                 // non-empty: does not parse, with the reason
};

/// Parses a normalized value as `type`; date/timestamp try `formats` in order
/// (strptime-style; defaults: ISO 8601).
Parsed parse_typed(config::FieldType type, const std::vector<std::string>& formats,
                   const std::optional<std::string>& value);

}  // namespace ingestd::engine
