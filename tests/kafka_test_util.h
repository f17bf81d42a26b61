// For the Kafka tests (tests/kafka_*_test.cc): MockKafkaCluster runs the helper program
// vigil_kafka_mock (tests/tools/kafka_mock_cluster.cc) as a child process, reads the bootstrap
// address it prints, and stops it (SIGTERM) when destroyed, so each test has brokers of its own
// that its clients reach over TCP on 127.0.0.1 like any Kafka cluster. The child gets SIGTERM if
// the test process dies first (PR_SET_PDEATHSIG), so no broker outlives a crashed test.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace vigil::test {

class MockKafkaCluster {
 public:
  // Starts `vigil_kafka_mock [--brokers N] ARGS...`; bootstrap() is empty if it did not come up
  // within 10 s (error() says why).
  explicit MockKafkaCluster(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {VIGIL_KAFKA_MOCK_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    int out[2], in[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) {
      error_ = "pipe failed";
      return;
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::dup2(out[1], 1);
      ::dup2(in[0], 0);
      std::vector<char*> c_argv;
      for (std::string& a : argv) c_argv.push_back(a.data());
      c_argv.push_back(nullptr);
      ::execv(c_argv[0], c_argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    out_ = out[0];
    in_ = in[1];
    if (pid_ < 0) {
      error_ = "fork failed";
      return;
    }
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        error_ = "no bootstrap line within 10 s; got '" + line + "'";
        return;
      }
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) {
        error_ = "vigil_kafka_mock exited; got '" + line + "'";
        return;
      }
      line.append(buf, static_cast<size_t>(n));
    }
    rest_ = line.substr(line.find('\n') + 1);
    line_ = line.substr(0, line.find('\n'));
    if (line_.rfind("bootstrap=", 0) == 0) bootstrap_ = line_.substr(10);
    else error_ = "unexpected first line '" + line_ + "'";
  }

  ~MockKafkaCluster() { Stop(SIGTERM); }

  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& line() const { return line_; }
  const std::string& error() const { return error_; }

  // With --control: sends one command ("down 1", "up 1", "errors 0 6 5") and returns the
  // answer line ("ok", "error ..."), or "" when none came within 5 s.
  std::string Command(const std::string& command) {
    const std::string line = command + "\n";
    if (in_ < 0 || ::write(in_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (rest_.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return "";
      rest_.append(buf, static_cast<size_t>(n));
    }
    const std::string answer = rest_.substr(0, rest_.find('\n'));
    rest_.erase(0, rest_.find('\n') + 1);
    return answer;
  }

  // Sends `signal` and waits for the child; returns its wait status (-1 if none is running).
  int Stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
    out_ = in_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string line_, bootstrap_, error_, rest_;
};

}  // namespace vigil::test
