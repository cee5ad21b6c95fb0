#include "daemon/commands/table.hpp"

#include <algorithm>
#include <iostream>

namespace ingestd {

void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  auto width = [](const std::string& s) {
    size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = width(head[i]);
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < head.size(); ++i) {
      std::string v = i < r.size() ? r[i] : "";
      std::cout << v << std::string(w[i] - width(v) + 2, ' ');
    }
    std::cout << "\n";
  };
  line(head);
  for (auto& r : rows) line(r);
}

std::string text(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

}  // namespace ingestd
