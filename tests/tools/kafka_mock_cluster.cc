// vigil_kafka_mock: a local Kafka cluster for tests and demos, librdkafka's mock cluster
// (<librdkafka/rdkafka_mock.h>) in a process of its own.
//
//   vigil_kafka_mock [--brokers N] [--control] TOPIC[:PARTITIONS] ...
//
// Starts N brokers (default 1) listening on 127.0.0.1 (ports picked by the system), creates each
// named topic with PARTITIONS partitions (default 1; replication factor min(N, 3)), prints
//   bootstrap=127.0.0.1:PORT[,127.0.0.1:PORT...]
// as one line on stdout and flushes it, then serves until SIGTERM or SIGINT and exits 0. Bad
// arguments: a message on stderr, exit 2; a cluster that cannot start: exit 1.
//
// Why a program of its own rather than a mock cluster inside each test: the brokers speak the
// real Kafka protocol over TCP whichever way, but a separate process is what `vigil serve` and
// the demo scripts will talk to (issue 5), clients in the test process share nothing with the
// brokers but sockets, and a test can stop the whole cluster (SIGTERM, SIGKILL) to see what a
// client does when its brokers vanish. It lives in tests/tools/ because it is a test fixture,
// not part of the product: nothing installs it. With --control it takes commands on stdin (see
// Control below): single brokers down and up, request errors injected.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace {

struct TopicSpec {
  std::string name;
  int partitions = 1;
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "vigil_kafka_mock: %s\nusage: vigil_kafka_mock [--brokers N] [--control] TOPIC[:PARTITIONS] ...\n",
               why);
  return 2;
}

// A positive int in [1, limit], or 0.
int ParseCount(const std::string& text, int limit) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  const int n = std::atoi(text.c_str());
  return n >= 1 && n <= limit ? n : 0;
}

// --control: commands on stdin, one per line, each answered on stdout with "ok" or "error ...":
//   down ID                  broker ID (1..N) stops answering (rd_kafka_mock_broker_set_down)
//   up ID                    and comes back
//   errors API CODE COUNT    the next COUNT requests of Kafka API key API (0 Produce, 1 Fetch,
//                            8 OffsetCommit, ...) fail with error code CODE
//                            (rd_kafka_mock_push_request_errors)
void Control(rd_kafka_mock_cluster_t* cluster) {
  char line[256];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    char verb[32] = {0};
    int a = 0, b = 0, c = 0;
    const int n = std::sscanf(line, "%31s %d %d %d", verb, &a, &b, &c);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    bool known = true;
    if (n == 2 && std::strcmp(verb, "down") == 0) {
      err = rd_kafka_mock_broker_set_down(cluster, a);
    } else if (n == 2 && std::strcmp(verb, "up") == 0) {
      err = rd_kafka_mock_broker_set_up(cluster, a);
    } else if (n == 4 && std::strcmp(verb, "errors") == 0 && c > 0 && c <= 1000) {
      std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(c), static_cast<rd_kafka_resp_err_t>(b));
      rd_kafka_mock_push_request_errors_array(cluster, static_cast<int16_t>(a), errors.size(), errors.data());
    } else {
      known = false;
    }
    if (!known) {
      std::printf("error unknown command\n");
    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::printf("error %s\n", rd_kafka_err2str(err));
    } else {
      std::printf("ok\n");
    }
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  bool control = false;
  std::vector<TopicSpec> topics;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--control") {
      control = true;
      continue;
    }
    if (arg == "--brokers") {
      if (i + 1 == argc || (brokers = ParseCount(argv[++i], 16)) == 0)
        return Usage("--brokers takes a count from 1 to 16");
      continue;
    }
    if (arg.empty() || arg[0] == '-') return Usage(("unknown option '" + arg + "'").c_str());
    TopicSpec spec;
    const size_t colon = arg.rfind(':');
    spec.name = arg.substr(0, colon);
    if (colon != std::string::npos &&
        (spec.partitions = ParseCount(arg.substr(colon + 1), 1000)) == 0)
      return Usage(("bad partition count in '" + arg + "' (1 to 1000)").c_str());
    if (spec.name.empty()) return Usage(("empty topic name in '" + arg + "'").c_str());
    topics.push_back(spec);
  }

  // Block the signals before librdkafka starts its threads, so they inherit the mask and only
  // sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  // The mock cluster needs a client instance to run on; a producer that never produces.
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "vigil_kafka_mock: %s\n", error);
    return 1;
  }
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (handle == nullptr) {
    std::fprintf(stderr, "vigil_kafka_mock: cannot create a client: %s\n", error);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(handle, brokers);
  if (cluster == nullptr) {
    std::fprintf(stderr, "vigil_kafka_mock: cannot start a mock cluster of %d brokers\n", brokers);
    rd_kafka_destroy(handle);
    return 1;
  }
  const int replication = brokers < 3 ? brokers : 3;
  for (const TopicSpec& topic : topics) {
    const rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(cluster, topic.name.c_str(), topic.partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "vigil_kafka_mock: cannot create topic '%s': %s\n", topic.name.c_str(),
                   rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(handle);
      return 1;
    }
  }
  std::printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  std::fflush(stdout);
  if (control) std::thread(Control, cluster).detach();   // ends with the process

  int signal_number = 0;
  while (sigwait(&stop, &signal_number) != 0) {
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(handle);
  return 0;
}
