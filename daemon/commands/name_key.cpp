// `ingestd name-key` (hidden): the identity key the `name` normalizer makes of each line on
// stdin, so an operator or a test can compare it with the SQL name_key of stored values.
#include <iostream>
#include <string>

#include "daemon/commands/commands.hpp"
#include "handlers/engine/normalize.hpp"

namespace ingestd {

int cmd_name_key() {
  config::Normalizer n;
  n.kind = config::Normalizer::Kind::Name;
  for (std::string line; std::getline(std::cin, line);) {
    const auto r = engine::normalize(n, line);
    std::cout << (r.key ? *r.key : std::string("\\N")) << '\t' << (r.value ? *r.value : std::string("\\N")) << '\n';
  }
  return 0;
}

}  // namespace ingestd
