// `ingestd embedded-broker`: librdkafka's mock cluster in a process of its own, for the
// integration tests and the demo.
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "daemon/commands/commands.hpp"
#include "daemon/kafka.hpp"
#include "daemon/signals.hpp"

namespace ingestd {

int cmd_embedded_broker(const EmbeddedBrokerOptions& o) {
  EmbeddedBroker b(o.brokers, o.topics, o.partitions);
  std::cout << b.bootstrap() << std::endl;
  if (!o.address_file.empty()) std::ofstream(o.address_file) << b.bootstrap() << "\n";
  // Fault injection for tests: one command a line on stdin, one answer a line on stdout.
  // At EOF (stdin closed or /dev/null) the broker just runs on until SIGTERM.
  std::thread([&b] {
    for (std::string line; std::getline(std::cin, line);) std::cout << b.control(line) << std::endl;
  }).detach();
  while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace ingestd
