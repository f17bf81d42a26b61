// The helper program vigil_kafka_mock (tests/tools/kafka_mock_cluster.cc), run as the Kafka tests
// run it (tests/kafka_test_util.h): its one line of output, its brokers on 127.0.0.1, its exit
// codes. Whether the brokers speak Kafka is what tests/kafka_source_test.cc and
// kafka_sink_test.cc check.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "tests/kafka_test_util.h"

namespace vigil {

TEST_CASE("kafka mock cluster: one bootstrap line of brokers on 127.0.0.1, exit 0 on SIGTERM, 2 on bad arguments") {
  test::MockKafkaCluster cluster({"--brokers", "2", "events:3", "alerts"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  // Two brokers on 127.0.0.1, ports of their own.
  const std::string& b = cluster.bootstrap();
  const size_t comma = b.find(',');
  REQUIRE(comma != std::string::npos);
  CHECK(b.rfind("127.0.0.1:", 0) == 0);
  CHECK(b.compare(comma + 1, 10, "127.0.0.1:") == 0);
  CHECK(b.substr(0, comma) != b.substr(comma + 1));
  const int status = cluster.Stop(SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  test::MockKafkaCluster bad({"events:0"});
  CHECK(bad.bootstrap().empty());
  const int bad_status = bad.Stop(SIGTERM);
  CHECK(WIFEXITED(bad_status));
  CHECK(WEXITSTATUS(bad_status) == 2);
}

}  // namespace vigil
