// KafkaProducer's transactions (adapters/kafka_producer.h, kafka_transactions.h) against
// librdkafka's mock cluster: what read_committed and read_uncommitted readers see of committed
// and aborted transactions, offsets sent to a transaction, a second producer with the same
// transactional.id, and every failure as a KafkaTxnStatus of the right class (retriable,
// abortable, fatal, refused), within its timeout.
//
// Two kinds of mock. Most cases run vigil_kafka_mock (tests/kafka_test_util.h) like the other
// Kafka tests. The fault cases need to inject broker errors at a chosen moment
// (rd_kafka_mock_push_request_errors, rd_kafka_mock_broker_push_request_error_rtts), for which
// vigil_kafka_mock takes no commands, so they start a mock cluster inside the test process
// (InProcessMock); the clients still reach it over TCP on 127.0.0.1.
//
// What librdkafka 2.0.2's mock cluster does not do (read from its handlers and checked by the
// cases below, each behind a k... constant that says what real Kafka does): its EndTxn writes no
// commit or abort markers and its Fetch ignores the isolation level (last stable offset = high
// watermark, no aborted transactions listed), so read_committed readers see aborted messages
// too; its TxnOffsetCommit checks the producer and answers ok but stores nothing, so offsets sent
// to a transaction never become the group's; its InitProducerId gives every new producer a new
// producer id, so a second producer with the same transactional.id neither fences the first nor
// aborts its open transaction. Where a constant is false, the check asserts the mock's behaviour;
// set it true against a broker that implements transactions (or a newer mock) and the same
// check asserts Kafka's.
#include <doctest/doctest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "adapters/kafka_producer.h"
#include "adapters/kafka_source.h"
#include "adapters/kafka_transactions.h"
#include "tests/kafka_test_util.h"

namespace vigil {
namespace {

// Real Kafka: true for all three. librdkafka 2.0.2's mock: false (see the top of the file).
constexpr bool kMockHidesAbortedMessages = false;
constexpr bool kMockCommitsTransactionOffsets = false;
constexpr bool kMockFencesSameTransactionalId = false;

// Kafka protocol API keys, for injecting errors (librdkafka's RD_KAFKAP_* are internal).
constexpr int16_t kApiProduce = 0;
constexpr int16_t kApiAddOffsetsToTxn = 25;
constexpr int16_t kApiEndTxn = 26;

// Seconds since `start`.
double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::unique_ptr<KafkaProducer> TxnProducer(const std::string& bootstrap, const std::string& id,
                                           std::map<std::string, std::string> properties = {}) {
  KafkaStatus status;
  auto producer = KafkaProducer::Create(
      {.bootstrap_servers = bootstrap, .properties = std::move(properties), .transactional_id = id},
      &status);
  REQUIRE_MESSAGE(producer, status.message);
  CHECK(producer->transactional());
  CHECK(producer->txn_state() == KafkaTxnState::kUninitialized);
  return producer;
}

void RequireOk(const KafkaTxnStatus& status) {
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(status.error == KafkaTxnError::kNone);
}

void ProduceAll(KafkaProducer& producer, const std::string& topic,
                const std::vector<std::string>& values) {
  for (const std::string& v : values) {
    const KafkaStatus s = producer.Produce(topic, 0, v, v);
    REQUIRE_MESSAGE(s.ok(), s.message);
  }
}

std::unique_ptr<KafkaSource> Reader(const std::string& bootstrap, const std::string& group,
                                    const std::string& topic, const std::string& isolation) {
  KafkaStatus status;
  auto source = KafkaSource::Create({.bootstrap_servers = bootstrap,
                                     .group_id = group,
                                     .topics = {topic},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"isolation.level", isolation},
                                                    {"session.timeout.ms", "6000"},
                                                    {"heartbeat.interval.ms", "500"}}},
                                    &status);
  REQUIRE_MESSAGE(source, status.message);
  return source;
}

// The values `source` reads until one equals `last` (included) and there are at least
// `at_least` (partitions arrive independently), or until `seconds` pass.
std::vector<std::string> ReadThrough(KafkaSource& source, const std::string& last, int seconds,
                                     size_t at_least = 0) {
  std::vector<std::string> got;
  bool last_seen = false;
  KafkaBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    const KafkaStatus status = source.Poll(200, 1000, batch);
    REQUIRE_MESSAGE(status.ok(), status.message);
    for (const KafkaStatus& e : batch.errors) FAIL_CHECK(e.message);
    for (const KafkaMessage& m : batch.messages) {
      got.emplace_back(m.value);
      last_seen = last_seen || m.value == last;
    }
    if (last_seen && got.size() >= at_least) return got;
  }
  return got;
}

std::vector<std::string> ReadTopic(const std::string& bootstrap, const std::string& group,
                                   const std::string& topic, const std::string& isolation,
                                   const std::string& last) {
  auto source = Reader(bootstrap, group, topic, isolation);
  return ReadThrough(*source, last, 20);
}

size_t CountOf(const std::vector<std::string>& values, const std::vector<std::string>& wanted) {
  size_t n = 0;
  for (const std::string& w : wanted) n += std::count(values.begin(), values.end(), w);
  return n;
}

// A mock cluster inside the test process, for injecting errors (see the top of the file).
class InProcessMock {
 public:
  InProcessMock(int brokers, const std::string& topic) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    REQUIRE_MESSAGE(handle_ != nullptr, error);
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    REQUIRE(cluster_ != nullptr);
    REQUIRE(rd_kafka_mock_topic_create(cluster_, topic.c_str(), 1, 1) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ~InProcessMock() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
  }
  InProcessMock(const InProcessMock&) = delete;
  InProcessMock& operator=(const InProcessMock&) = delete;

  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  rd_kafka_mock_cluster_t* cluster() { return cluster_; }

 private:
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace

TEST_CASE("kafka transactions: read_committed sees committed transactions, read_uncommitted also aborted ones") {
  test::MockKafkaCluster cluster({"--brokers", "3", "out"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  auto producer = TxnProducer(cluster.bootstrap(), "vigil-visibility");
  RequireOk(producer->InitTransactions(10000));
  CHECK(producer->txn_state() == KafkaTxnState::kReady);

  const std::vector<std::string> first = {"c1", "c2", "c3"};
  const std::vector<std::string> delivered_aborted = {"a1", "a2", "a3"};
  const std::vector<std::string> queued_aborted = {"q1", "q2"};
  const std::vector<std::string> second = {"c4", "c5", "end"};

  RequireOk(producer->BeginTransaction());
  CHECK(producer->txn_state() == KafkaTxnState::kInTransaction);
  ProduceAll(*producer, "out", first);
  RequireOk(producer->CommitTransaction(10000));
  CHECK(producer->txn_state() == KafkaTxnState::kReady);
  CHECK(producer->counters().delivered == 3);

  // Aborted: three messages in the log already (flushed), two still queued.
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", delivered_aborted);
  REQUIRE(producer->Flush(10000).ok());
  CHECK(producer->counters().delivered == 6);
  // The queued ones cannot leave before the abort: a send that waits in the client queue.
  KafkaStatus s = producer->Produce("out", 0, std::nullopt, "q1");
  REQUIRE(s.ok());
  s = producer->Produce("out", 0, std::nullopt, "q2");
  REQUIRE(s.ok());
  RequireOk(producer->AbortTransaction(10000));
  CHECK(producer->txn_state() == KafkaTxnState::kReady);
  CHECK(producer->counters().transactions_aborted == 1);
  CHECK(producer->outstanding() == 0);
  // Purged by the abort, or delivered just before it; never a failure.
  CHECK(producer->counters().purged + producer->counters().delivered == 8);
  CHECK(producer->counters().failed == 0);
  const uint64_t queued_delivered = producer->counters().delivered - 6;
  CHECK(producer->Flush(1000).ok());

  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", second);
  RequireOk(producer->CommitTransaction(10000));
  CHECK(producer->counters().transactions_committed == 2);

  const std::vector<std::string> uncommitted =
      ReadTopic(cluster.bootstrap(), "reader-uncommitted", "out", "read_uncommitted", "end");
  CHECK(CountOf(uncommitted, first) == 3);
  CHECK(CountOf(uncommitted, delivered_aborted) == 3);
  CHECK(CountOf(uncommitted, queued_aborted) == queued_delivered);
  CHECK(CountOf(uncommitted, second) == 3);

  const std::vector<std::string> committed =
      ReadTopic(cluster.bootstrap(), "reader-committed", "out", "read_committed", "end");
  CHECK(CountOf(committed, first) == 3);
  CHECK(CountOf(committed, second) == 3);
  // The committed ones in the order produced.
  std::vector<std::string> committed_only;
  for (const std::string& v : committed) {
    if (v[0] == 'c' || v == "end") committed_only.push_back(v);
  }
  CHECK(committed_only == std::vector<std::string>{"c1", "c2", "c3", "c4", "c5", "end"});
  // Real Kafka hides the aborted transaction's messages from read_committed readers; the mock
  // shows those in its log.
  CHECK(CountOf(committed, delivered_aborted) == (kMockHidesAbortedMessages ? 0 : 3));
  CHECK(CountOf(committed, queued_aborted) == (kMockHidesAbortedMessages ? 0 : queued_delivered));
}

TEST_CASE("kafka transactions: offsets sent to a transaction are the group's once it commits, not after an abort") {
  test::MockKafkaCluster cluster({"in:2", "out"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  {
    KafkaStatus status;
    auto loader = KafkaProducer::Create({.bootstrap_servers = cluster.bootstrap()}, &status);
    REQUIRE_MESSAGE(loader, status.message);
    for (int i = 0; i < 10; ++i) {
      const std::string v = "e" + std::to_string(i);
      REQUIRE(loader->Produce("in", i % 2, v, v).ok());
    }
    REQUIRE(loader->Produce("in", 0, std::string("last"), "last").ok());
    REQUIRE(loader->Flush(10000).ok());
  }
  auto source = Reader(cluster.bootstrap(), "pipeline", "in", "read_committed");
  const std::vector<std::string> values = ReadThrough(*source, "last", 20, 11);
  REQUIRE(values.size() == 11);
  // The positions after the first 3 messages of partition 0 and the first 2 of partition 1.
  const std::vector<KafkaPosition> checkpoint = {{"in", 0, 3}, {"in", 1, 2}};
  std::vector<KafkaPosition> asked = {{"in", 0, -1}, {"in", 1, -1}};
  const std::vector<KafkaPosition> none = {{"in", 0, RD_KAFKA_OFFSET_INVALID},
                                           {"in", 1, RD_KAFKA_OFFSET_INVALID}};

  auto producer = TxnProducer(cluster.bootstrap(), "vigil-offsets");
  RequireOk(producer->InitTransactions(10000));
  // Aborted: the group has still no committed offsets.
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", {"x1"});
  KafkaGroupMetadata group = source->GroupMetadata();
  REQUIRE(!group.empty());
  RequireOk(producer->SendOffsetsToTransaction(checkpoint, group, 10000));
  RequireOk(producer->AbortTransaction(10000));
  REQUIRE(source->Committed(asked, 5000).ok());
  CHECK(asked == none);

  // Committed: the offsets become the group's, with the transaction.
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", {"x2"});
  RequireOk(producer->SendOffsetsToTransaction(checkpoint, source->GroupMetadata(), 10000));
  REQUIRE(source->Committed(asked, 5000).ok());
  CHECK(asked == none);   // not before the commit
  RequireOk(producer->CommitTransaction(10000));
  REQUIRE(source->Committed(asked, 5000).ok());
  CHECK(asked == (kMockCommitsTransactionOffsets ? checkpoint : none));

  // A consumer of the group resumes there (real Kafka), or at the beginning (the mock).
  REQUIRE(source->Close().ok());
  CHECK(source->GroupMetadata().empty());
  source.reset();
  auto next = Reader(cluster.bootstrap(), "pipeline", "in", "read_committed");
  const size_t expected = kMockCommitsTransactionOffsets ? 11 - 5 : 11;
  const std::vector<std::string> resumed = ReadThrough(*next, "last", 20, expected);
  CHECK(resumed.size() == expected);
  CHECK(std::count(resumed.begin(), resumed.end(), "e0") == (kMockCommitsTransactionOffsets ? 0 : 1));
  CHECK(std::count(resumed.begin(), resumed.end(), "e6") == 1);
}

TEST_CASE("kafka transactions: a second producer with the same transactional.id, and the first one's open transaction") {
  test::MockKafkaCluster cluster({"out"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  // The first producer leaves a transaction open, its messages in the log (a daemon killed
  // with kill -9 after a flush and before its commit).
  auto first = TxnProducer(cluster.bootstrap(), "vigil-daemon");
  RequireOk(first->InitTransactions(10000));
  RequireOk(first->BeginTransaction());
  ProduceAll(*first, "out", {"zombie1", "zombie2"});
  REQUIRE(first->Flush(10000).ok());

  auto second = TxnProducer(cluster.bootstrap(), "vigil-daemon");
  RequireOk(second->InitTransactions(10000));
  RequireOk(second->BeginTransaction());
  ProduceAll(*second, "out", {"new1", "end"});
  RequireOk(second->CommitTransaction(10000));

  // Real Kafka: the first is fenced, its commit fails as fatal and it stays failed.
  (void)first->Produce("out", 0, std::nullopt, "zombie3");
  const KafkaTxnStatus zombie = first->CommitTransaction(10000);
  if (kMockFencesSameTransactionalId) {
    CHECK(!zombie.ok());
    CHECK(zombie.error == KafkaTxnError::kFatal);
    CHECK(zombie.fatal);
    CHECK(first->txn_state() == KafkaTxnState::kFailed);
  } else {
    CHECK_MESSAGE(zombie.ok(), zombie.message);
  }

  const std::vector<std::string> seen =
      ReadTopic(cluster.bootstrap(), "reader", "out", "read_committed", "end");
  CHECK(CountOf(seen, {"new1", "end"}) == 2);
  // Real Kafka: the second's InitTransactions aborted the first's open transaction.
  CHECK(CountOf(seen, {"zombie1", "zombie2"}) == (kMockFencesSameTransactionalId ? 0 : 2));
}

TEST_CASE("kafka transactions: a fenced producer fails as fatal") {
  // What a broker answers a fenced producer (PRODUCER_FENCED, Kafka 2.7+; older ones say
  // INVALID_PRODUCER_EPOCH), injected into the commit.
  for (const rd_kafka_resp_err_t answer :
       {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH}) {
    CAPTURE(rd_kafka_err2name(answer));
    InProcessMock mock(1, "out");
    auto producer = TxnProducer(mock.bootstrap(), "vigil-fenced");
    RequireOk(producer->InitTransactions(10000));
    RequireOk(producer->BeginTransaction());
    ProduceAll(*producer, "out", {"m1"});
    REQUIRE(producer->Flush(10000).ok());
    rd_kafka_mock_push_request_errors(mock.cluster(), kApiEndTxn, 1, answer);
    const KafkaTxnStatus commit = producer->CommitTransaction(10000);
    CHECK(!commit.ok());
    CHECK_MESSAGE(commit.error == KafkaTxnError::kFatal, commit.message);
    CHECK(commit.fatal);
    CHECK(producer->txn_state() == KafkaTxnState::kFailed);
    // Every later transactional call says so too.
    const KafkaTxnStatus begin = producer->BeginTransaction();
    CHECK(begin.error == KafkaTxnError::kFatal);
    const KafkaTxnStatus abort = producer->AbortTransaction(1000);
    CHECK(abort.error == KafkaTxnError::kFatal);
  }
}

TEST_CASE("kafka transactions: abortable errors, then abort, redo and commit") {
  InProcessMock mock(1, "out");
  auto producer = TxnProducer(mock.bootstrap(), "vigil-abortable");
  RequireOk(producer->InitTransactions(10000));

  // The group coordinator refuses the offsets.
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", {"m1"});
  rd_kafka_mock_push_request_errors(mock.cluster(), kApiAddOffsetsToTxn, 1,
                                    RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  const std::vector<KafkaPosition> positions = {{"in", 0, 5}};
  const KafkaTxnStatus offsets = producer->SendOffsetsToTransaction(
      positions, KafkaGroupMetadata::ForGroup("pipeline"), 10000);
  CHECK(!offsets.ok());
  CHECK_MESSAGE(offsets.error == KafkaTxnError::kAbortable, offsets.message);
  CHECK(offsets.abortable());
  CHECK(!offsets.fatal);
  CHECK(producer->txn_state() == KafkaTxnState::kAbortRequired);
  // Committing now is refused the same way; the abort is what is left.
  const KafkaTxnStatus refused_commit = producer->CommitTransaction(5000);
  CHECK(refused_commit.error == KafkaTxnError::kAbortable);
  RequireOk(producer->AbortTransaction(10000));
  CHECK(producer->txn_state() == KafkaTxnState::kReady);

  // A message the partition leader refuses for good: the commit is abortable.
  RequireOk(producer->BeginTransaction());
  rd_kafka_mock_push_request_errors(mock.cluster(), kApiProduce, 1,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ProduceAll(*producer, "out", {"m2"});
  const KafkaTxnStatus commit = producer->CommitTransaction(10000);
  CHECK(!commit.ok());
  CHECK_MESSAGE(commit.error == KafkaTxnError::kAbortable, commit.message);
  CHECK(producer->counters().failed == 1);
  CHECK(producer->txn_state() == KafkaTxnState::kAbortRequired);
  RequireOk(producer->AbortTransaction(10000));
  CHECK(producer->Flush(1000).ok());   // the aborted transaction's failure is not Flush's news
  CHECK(producer->TakeDeliveryErrors().size() == 1);   // but kept for the log

  // Redone from the checkpoint, as the daemon does it: on an abortable error, abort and redo.
  // (The message refused for good left a gap in the partition's sequence numbers that
  // librdkafka 2.0.2's abort does not close: the next transaction's first produce finds it,
  // "skipped sequence numbers" (OUT_OF_ORDER_SEQUENCE_NUMBER, requires an epoch bump), and fails
  // abortably once; that abort bumps the producer epoch and the redo after it commits.)
  int attempts = 0;
  KafkaTxnStatus last;
  while (attempts < 3) {
    ++attempts;
    RequireOk(producer->BeginTransaction());
    ProduceAll(*producer, "out", {"m1", "m2"});
    last = producer->SendOffsetsToTransaction(positions, KafkaGroupMetadata::ForGroup("pipeline"),
                                              10000);
    if (last.ok()) last = producer->CommitTransaction(10000);
    if (last.ok()) break;
    MESSAGE("attempt " << attempts << ": " << last.message);
    REQUIRE(last.abortable());
    RequireOk(producer->AbortTransaction(10000));
  }
  CHECK_MESSAGE(last.ok(), last.message);
  CHECK(producer->txn_state() == KafkaTxnState::kReady);
  CHECK(producer->counters().transactions_committed == 1);
  CHECK(producer->counters().transactions_aborted == static_cast<uint64_t>(2 + attempts - 1));
}

TEST_CASE("kafka transactions: a commit that times out is retriable and the retry commits") {
  InProcessMock mock(1, "out");
  auto producer = TxnProducer(mock.bootstrap(), "vigil-retriable");
  RequireOk(producer->InitTransactions(10000));
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", {"m1"});
  REQUIRE(producer->Flush(10000).ok());
  // The coordinator answers the commit after 3 s.
  REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(mock.cluster(), 1, kApiEndTxn, 1,
                                                       RD_KAFKA_RESP_ERR_NO_ERROR, 3000) ==
          RD_KAFKA_RESP_ERR_NO_ERROR);
  const auto start = std::chrono::steady_clock::now();
  const KafkaTxnStatus first = producer->CommitTransaction(1000);
  CHECK(Since(start) < 2.5);
  CHECK(!first.ok());
  CHECK_MESSAGE(first.error == KafkaTxnError::kRetriable, first.message);
  CHECK(first.code == RD_KAFKA_RESP_ERR__TIMED_OUT);
  CHECK(producer->txn_state() == KafkaTxnState::kInTransaction);
  // The same call again waits for the commit in progress.
  RequireOk(producer->CommitTransaction(10000));
  CHECK(producer->txn_state() == KafkaTxnState::kReady);
  CHECK(producer->counters().transactions_committed == 1);
}

TEST_CASE("kafka transactions: with the brokers gone, init and commit fail with a retriable status within their timeout") {
  // No broker at all.
  {
    auto producer = TxnProducer("127.0.0.1:1", "vigil-nobody");
    const auto start = std::chrono::steady_clock::now();
    const KafkaTxnStatus init = producer->InitTransactions(1500);
    CHECK(Since(start) < 4.0);
    CHECK(!init.ok());
    CHECK_MESSAGE(init.error == KafkaTxnError::kRetriable, init.message);
    CHECK(producer->txn_state() == KafkaTxnState::kUninitialized);
  }
  // The cluster killed in the middle of a transaction.
  test::MockKafkaCluster cluster({"out"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  auto producer = TxnProducer(cluster.bootstrap(), "vigil-down");
  RequireOk(producer->InitTransactions(10000));
  RequireOk(producer->BeginTransaction());
  ProduceAll(*producer, "out", {"m1"});
  REQUIRE(producer->Flush(10000).ok());
  cluster.Stop(SIGKILL);
  ProduceAll(*producer, "out", {"m2"});
  const auto start = std::chrono::steady_clock::now();
  const KafkaTxnStatus commit = producer->CommitTransaction(2000);
  const double waited = Since(start);
  CHECK(waited < 5.0);
  CHECK(!commit.ok());
  CHECK(!commit.fatal);
  CHECK_MESSAGE(commit.error == KafkaTxnError::kRetriable, commit.message);
  CHECK(commit.code == RD_KAFKA_RESP_ERR__TIMED_OUT);
  MESSAGE("commit with the brokers gone: " << commit.message << " after " << waited << " s");
  const auto abort_start = std::chrono::steady_clock::now();
  const KafkaTxnStatus abort = producer->AbortTransaction(2000);
  CHECK(Since(abort_start) < 5.0);
  // The timed-out commit goes on in the background: an abort now conflicts with it (retriable;
  // the caller calls CommitTransaction again).
  CHECK(abort.code == RD_KAFKA_RESP_ERR__CONFLICT);
  CHECK_MESSAGE(abort.error == KafkaTxnError::kRetriable, abort.message);
  CHECK(producer->txn_state() == KafkaTxnState::kInTransaction);
}

TEST_CASE("kafka transactions: calls in the wrong state are refused, configurations checked") {
  // A producer without transactional.id refuses the transactional calls.
  KafkaStatus status;
  auto plain = KafkaProducer::Create({.bootstrap_servers = "127.0.0.1:1"}, &status);
  REQUIRE_MESSAGE(plain, status.message);
  CHECK(!plain->transactional());
  CHECK(plain->txn_state() == KafkaTxnState::kNotTransactional);
  for (const KafkaTxnStatus& s :
       {plain->InitTransactions(100), plain->BeginTransaction(), plain->CommitTransaction(100),
        plain->AbortTransaction(100),
        plain->SendOffsetsToTransaction({}, KafkaGroupMetadata::ForGroup("g"), 100)}) {
    CHECK(s.error == KafkaTxnError::kRefused);
    CHECK(s.code == RD_KAFKA_RESP_ERR__NOT_CONFIGURED);
    CHECK(s.message.find("no transactional.id") != std::string::npos);
  }

  // Out of order on a transactional producer: refused, state unchanged.
  test::MockKafkaCluster cluster({"out"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  auto producer = TxnProducer(cluster.bootstrap(), "vigil-order");
  const KafkaTxnStatus early = producer->BeginTransaction();
  CHECK(early.error == KafkaTxnError::kRefused);
  CHECK(early.code == RD_KAFKA_RESP_ERR__STATE);
  CHECK(producer->txn_state() == KafkaTxnState::kUninitialized);
  RequireOk(producer->InitTransactions(10000));
  const KafkaStatus outside = producer->Produce("out", 0, std::nullopt, "m");
  CHECK(!outside.ok());
  CHECK(outside.code == RD_KAFKA_RESP_ERR__STATE);
  CHECK(producer->counters().refused == 1);
  const KafkaTxnStatus commit = producer->CommitTransaction(1000);
  CHECK(commit.error == KafkaTxnError::kRefused);
  CHECK(commit.code == RD_KAFKA_RESP_ERR__STATE);
  const KafkaTxnStatus offsets_outside =
      producer->SendOffsetsToTransaction({}, KafkaGroupMetadata::ForGroup("g"), 1000);
  CHECK(offsets_outside.error == KafkaTxnError::kRefused);
  CHECK(offsets_outside.code == RD_KAFKA_RESP_ERR__STATE);
  RequireOk(producer->BeginTransaction());
  const KafkaTxnStatus twice = producer->BeginTransaction();
  CHECK(twice.error == KafkaTxnError::kRefused);
  CHECK(producer->txn_state() == KafkaTxnState::kInTransaction);
  const KafkaTxnStatus no_group =
      producer->SendOffsetsToTransaction(std::vector<KafkaPosition>{{"in", 0, 1}},
                                         KafkaGroupMetadata(), 1000);
  CHECK(no_group.error == KafkaTxnError::kRefused);
  CHECK(no_group.code == RD_KAFKA_RESP_ERR__INVALID_ARG);
  RequireOk(producer->SendOffsetsToTransaction({}, KafkaGroupMetadata::ForGroup("g"), 1000));
  RequireOk(producer->CommitTransaction(10000));   // an empty transaction commits

  // Configuration: transactional.id as a property also makes a transactional producer; given
  // twice with different values it is refused; isolation.level passes through to librdkafka.
  auto by_property = KafkaProducer::Create(
      {.bootstrap_servers = "127.0.0.1:1", .properties = {{"transactional.id", "p"}}}, &status);
  REQUIRE_MESSAGE(by_property, status.message);
  CHECK(by_property->transactional());
  CHECK(!KafkaProducer::Create({.bootstrap_servers = "127.0.0.1:1",
                                .properties = {{"transactional.id", "p"}},
                                .transactional_id = "q"},
                               &status));
  CHECK(status.code == KafkaStatus::kConfigError);
  CHECK(status.message.find("'transactional.id': must be q here") != std::string::npos);
  CHECK(!KafkaSource::Create({.bootstrap_servers = "127.0.0.1:1",
                              .group_id = "g",
                              .topics = {"in"},
                              .properties = {{"isolation.level", "sometimes"}}},
                             &status));
  CHECK(status.code == KafkaStatus::kConfigError);
  CHECK(status.message.find("isolation.level") != std::string::npos);
}

}  // namespace vigil
