// vigil_kafka_produce: loads lines into a Kafka topic, for the demo of `vigil serve`
// (scripts/serve-demo.sh) and its test. There is no kcat on the machine; this is the few lines
// of it the demo needs, over our own producer (adapters/kafka_producer.h: idempotent, every
// delivery checked).
//
//   vigil_kafka_produce BOOTSTRAP TOPIC < LINES
//
// Each non-empty line of stdin becomes one message (the value; no key) on partition 0, in
// order, so a one-partition topic holds the lines as read. Waits until every message is
// acknowledged by the brokers, prints "produced N messages to TOPIC" on stderr and exits 0; a
// message refused or not delivered within 30 s: the reason on stderr, exit 1. Bad arguments:
// exit 2. It lives in tests/tools/ with vigil_kafka_mock: a fixture, not part of the product.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "adapters/kafka_producer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: vigil_kafka_produce BOOTSTRAP TOPIC < lines\n");
    return 2;
  }
  const std::string topic = argv[2];
  vigil::KafkaStatus status;
  auto producer = vigil::KafkaProducer::Create({.bootstrap_servers = argv[1]}, &status);
  if (producer == nullptr) {
    std::fprintf(stderr, "vigil_kafka_produce: %s\n", status.message.c_str());
    return 1;
  }
  size_t count = 0;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    status = producer->Produce(topic, 0, std::nullopt, line);
    if (!status.ok()) {
      std::fprintf(stderr, "vigil_kafka_produce: line %zu: %s\n", count + 1, status.message.c_str());
      return 1;
    }
    ++count;
    producer->Poll(0);
  }
  status = producer->Flush(30000);
  if (!status.ok()) {
    std::fprintf(stderr, "vigil_kafka_produce: %s\n", status.message.c_str());
    return 1;
  }
  std::fprintf(stderr, "produced %zu messages to %s\n", count, topic.c_str());
  return 0;
}
