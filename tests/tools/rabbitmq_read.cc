// vigil_rabbitmq_read: declares or drains a RabbitMQ queue, for the demo of `vigil serve`
// (scripts/serve-demo.sh) and its test. There is no pika or amqp-tools on the machine; this is
// the little of them the demo needs, over our own consumer (adapters/rabbitmq_source.h).
//
//   vigil_rabbitmq_read --declare PORT QUEUE     declares QUEUE (durable) and exits 0, so that
//                                                messages published to it before anyone
//                                                consumes are kept
//   vigil_rabbitmq_read PORT QUEUE N IDLE_S      consumes QUEUE, acking each message, and prints
//                                                one line per message on stdout:
//                                                  MESSAGE_ID <tab> BODY
//                                                ("-" for a message without an id); stops after
//                                                N messages (N = 0: no limit) or when none came
//                                                for IDLE_S seconds
//
// The broker is 127.0.0.1:PORT, user guest (a private broker: scripts/rabbitmq-local.sh). Exit
// 0 when N messages came (any number when N = 0), 1 when fewer did (the count on stderr) or the
// broker cannot be reached, 2 on bad arguments. Bodies are printed as they are: JSON alert lines
// hold no line break. It lives in tests/tools/: a fixture, not part of the product.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "adapters/rabbitmq_source.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: vigil_rabbitmq_read --declare PORT QUEUE\n"
               "       vigil_rabbitmq_read PORT QUEUE N IDLE_S\n");
  return 2;
}

// A non-negative integer up to `limit`, or -1.
long ParseCount(const char* text, long limit) {
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  return *text != '\0' && *end == '\0' && n >= 0 && n <= limit ? n : -1;
}

std::unique_ptr<vigil::RabbitSource> Open(int port, const std::string& queue, bool declare) {
  vigil::RabbitConnectionOptions connection;
  connection.port = port;
  connection.heartbeat_s = 10;
  connection.connect_timeout_ms = 5000;
  vigil::RabbitStatus status;
  auto source = vigil::RabbitSource::Create(
      {.connection = connection, .queue = queue, .prefetch = 1000, .declare_queue = declare}, &status);
  if (source != nullptr) status = source->Connect();
  if (!status.ok()) {
    std::fprintf(stderr, "vigil_rabbitmq_read: %s\n", status.message.c_str());
    return nullptr;
  }
  return source;
}

}  // namespace

int main(int argc, char** argv) {
  const bool declare = argc == 4 && std::string(argv[1]) == "--declare";
  if (!declare && argc != 5) return Usage();
  const int arg = declare ? 2 : 1;
  const long port = ParseCount(argv[arg], 65535);
  if (port <= 0) return Usage();
  const std::string queue = argv[arg + 1];
  if (declare) return Open(static_cast<int>(port), queue, true) != nullptr ? 0 : 1;
  const long want = ParseCount(argv[3], 100000000);
  const long idle_s = ParseCount(argv[4], 3600);
  if (want < 0 || idle_s < 0) return Usage();

  auto source = Open(static_cast<int>(port), queue, false);
  if (source == nullptr) return 1;
  vigil::RabbitBatch batch;
  long got = 0;
  auto last = std::chrono::steady_clock::now();
  while (want == 0 || got < want) {
    if (std::chrono::steady_clock::now() - last > std::chrono::seconds(idle_s)) break;
    // Never more than asked for: what is taken is acked, so it must be printed.
    const size_t room = want == 0 ? 1000 : static_cast<size_t>(std::min(1000L, want - got));
    source->Poll(100, room, batch);
    for (const vigil::RabbitStatus& e : batch.errors) {
      std::fprintf(stderr, "vigil_rabbitmq_read: %s\n", e.message.c_str());
    }
    for (const vigil::RabbitMessage& m : batch.messages) {
      const std::string id = m.message_id.empty() ? "-" : std::string(m.message_id);
      std::fprintf(stdout, "%s\t%.*s\n", id.c_str(), static_cast<int>(m.body.size()), m.body.data());
      source->Ack(m.epoch, m.delivery_tag);
      ++got;
    }
    if (!batch.messages.empty()) last = std::chrono::steady_clock::now();
  }
  std::fflush(stdout);
  source->Close();
  if (want != 0 && got < want) {
    std::fprintf(stderr, "vigil_rabbitmq_read: %ld of %ld messages within %ld s of quiet\n", got, want,
                 idle_s);
    return 1;
  }
  return 0;
}
