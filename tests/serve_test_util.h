// For the tests of `vigil serve` as a process (tests/serve_kafka_test.cc,
// tests/serve_rabbitmq_test.cc): a child process, a temporary directory, the expected alerts of
// `vigil run` on the sample stream, and alert lines compared with or without what depends on
// arrival order (match ids, arrival seqs).
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace vigil::test {

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A child process with its stderr appended to a file.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& err_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 2);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  int Signal(int sig) {
    ::kill(pid_, sig);
    return Wait();
  }
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    // 128 + N for a death by signal N, as a shell reports it (exit codes here are below 128).
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/vigil-serve-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (std::getenv("KEEP_TMP") == nullptr) std::filesystem::remove_all(path);
  }
};

// `vigil run` on the sample: the expected alert lines.
inline std::vector<std::string> RunAlerts(const TempDir& dir) {
  const std::string out = dir.path + "/run.jsonl";
  Child run({VIGIL_BINARY_PATH, "run", "--rules", std::string(VIGIL_SOURCE_DIR) + "/rules", "--input",
             std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl", "--out-of-orderness", "5s",
             "--quiet", "--out", out, "--late", "/dev/null", "--dead-letter", "/dev/null"},
            dir.path + "/run.err");
  REQUIRE(run.Wait() == 0);
  std::vector<std::string> lines = ReadLines(out);
  REQUIRE(lines.size() > 10);
  return lines;
}

// On a mismatch, what is only on one side (a few lines of each).
inline void ShowDifference(const std::multiset<std::string>& want, const std::multiset<std::string>& got) {
  int shown = 0;
  for (const std::string& line : want) {
    if (got.count(line) < want.count(line) && shown++ < 3) MESSAGE("missing: " << line);
  }
  shown = 0;
  for (const std::string& line : got) {
    if (want.count(line) < got.count(line) && shown++ < 3) MESSAGE("unexpected: " << line);
  }
}

inline std::string MatchId(const std::string& line) {
  static const std::regex id("\"match_id\":\"([0-9a-f]{16})\"");
  std::smatch m;
  return std::regex_search(line, m, id) ? m[1].str() : "";
}

// The line without what depends on arrival order across partitions: the match id and the
// bound events' arrival seqs.
inline std::string WithoutMatchId(const std::string& line) {
  static const std::regex id("\"match_id\":\"[0-9a-f]{16}\"|\"seq\":[0-9]+");
  return std::regex_replace(line, id, "");
}

}  // namespace vigil::test
