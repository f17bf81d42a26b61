// For the RabbitMQ tests (tests/rabbitmq_*_test.cc): LocalRabbit runs a real rabbitmq-server of
// its own with scripts/rabbitmq-local.sh in a temporary directory (its own port, node name, data
// and logs), and kills it and removes the directory when destroyed. Starting one takes ~4 s, so
// the tests of one process share one (SharedRabbit) and use queues of their own (UniqueName);
// the tests that stop and start the broker make their own. The script watches this process
// (RABBITMQ_WATCH_PID), so a test that crashes leaves no broker running.
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <string_view>

#include "adapters/rabbitmq_connection.h"

namespace vigil::test {

class LocalRabbit {
 public:
  LocalRabbit() {
    char dir[] = "/tmp/vigil-rabbit-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = dir;
    Start();
  }
  ~LocalRabbit() {
    if (dir_.empty()) return;
    Run("kill");
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  LocalRabbit(const LocalRabbit&) = delete;
  LocalRabbit& operator=(const LocalRabbit&) = delete;

  // Starts the broker (again: on the same port, with the same data); false with error() if it
  // did not come up.
  bool Start() {
    const std::string out = Run("start");
    const size_t at = out.find("amqp_port=");
    if (at == std::string::npos) {
      error_ = "rabbitmq-local.sh start: " + out;
      return false;
    }
    port_ = std::stoi(out.substr(at + 10));
    return true;
  }
  // A clean shutdown (the broker closes its connections with 320 CONNECTION_FORCED).
  void Stop() { Run("stop"); }
  // A crash (SIGKILL): the clients see their sockets close.
  void Kill() { Run("kill"); }

  int port() const { return port_; }
  bool ok() const { return port_ > 0; }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string Run(std::string_view command) {
    const std::string line = "RABBITMQ_WATCH_PID=" + std::to_string(::getpid()) + " " +
                             VIGIL_SOURCE_DIR + "/scripts/rabbitmq-local.sh " +
                             std::string(command) + " " + dir_ + " 2>&1";
    std::string out;
    FILE* pipe = ::popen(line.c_str(), "r");
    if (pipe == nullptr) return "popen failed";
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    ::pclose(pipe);
    return out;
  }

  std::string dir_, error_;
  int port_ = 0;
};

// One broker for every test of this process that does not stop it.
inline LocalRabbit& SharedRabbit() {
  static LocalRabbit rabbit;
  return rabbit;
}

// A queue (or other) name no other test of any process uses.
inline std::string UniqueName(std::string_view prefix) {
  static std::atomic<int> counter{0};
  return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++);
}

// Connection options for a test broker: quick backoff and heartbeats, so losses show soon.
inline RabbitConnectionOptions TestConnection(int port) {
  RabbitConnectionOptions o;
  o.port = port;
  o.heartbeat_s = 2;
  o.connect_timeout_ms = 2000;
  o.rpc_timeout_ms = 5000;
  o.reconnect_initial_ms = 50;
  o.reconnect_max_ms = 800;
  return o;
}

}  // namespace vigil::test
