// How the operator commands print rows in a terminal.
#pragma once

#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace ingestd {

/// Prints rows as an aligned table (UTF-8 aware enough for names: counts code points).
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows);

/// A field as text; NULL prints as nothing.
std::string text(const pqxx::field& f);

}  // namespace ingestd
