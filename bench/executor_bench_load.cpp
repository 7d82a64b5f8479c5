// shadow-executor-bench-load: fills a requests topic with the statement mix
// of bench/executor_vs_pgbench.sh (one statement per unit, half
// "UPDATE accounts ... WHERE id = $2", half "SELECT balance ... WHERE id = $1"),
// encoded by the core wire writer, keyed so units spread over the partitions.
// Units are keyed "session-<i % 64>" and by default draw their row from all
// rows, so units of different keys (partitions) update the same rows, as
// pgbench's clients do. --rows-by-key draws each key's rows from its own
// share instead (id = key + 1 + 64 k), as a recorder keyed by the tenant or
// account that owns the rows produces: the shadow's partitions then never
// touch the same row.
#include "shadowpipe/cli.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <chrono>
#include <random>

int main(int argc, char** argv) {
  using namespace shadowpipe;
  CLI::App app{"fills a requests topic with the executor benchmark's statement mix", "shadow-executor-bench-load"};
  cli::KafkaOptions kafka;
  cli::add_kafka_options(app, kafka);
  std::string topic;
  int partitions = 4;
  int count = 20000;
  int rows = 10000;
  app.add_option("--topic", topic)->required();
  app.add_option("--partitions", partitions)->capture_default_str();
  app.add_option("--count", count)->capture_default_str();
  app.add_option("--rows", rows, "ids are drawn from 1..rows")->capture_default_str();
  bool rows_by_key = false;
  app.add_flag("--rows-by-key", rows_by_key, "each key updates and reads only its own rows (id = key + 1 + 64 k)");
  return cli::run_main(app, argc, argv, [&] {
    using namespace std::chrono_literals;
    kafka::Producer producer(kafka.to_properties());
    kafka::create_topics(producer.get(), {{topic, partitions, 1, {}}}, 20s);
    const std::string update = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
    const std::string select = "SELECT balance FROM accounts WHERE id = $1";
    const std::string update_fp = statement::analyze(update)->fingerprint;
    const std::string select_fp = statement::analyze(select)->fingerprint;
    std::mt19937 random(42);
    constexpr int kKeys = 64;
    if (rows_by_key && rows < kKeys) throw Failure("--rows-by-key needs at least 64 rows");
    std::uniform_int_distribution<int> id(1, rows), share(0, rows / kKeys - 1), delta(-100, 100);
    for (int i = 0; i < count; ++i) {
      wire::Request request;
      request.request_id = "bench-" + std::to_string(i);
      request.ts_us = wire::now_us();
      const int key = i % kKeys;
      request.key = "session-" + std::to_string(key);
      request.source = "bench";
      wire::Statement statement;
      const std::string row = std::to_string(rows_by_key ? key + 1 + kKeys * share(random) : id(random));
      if (i % 2 == 0) {
        statement.sql = update;
        statement.fingerprint = update_fp;
        statement.params = {std::to_string(delta(random)), row};
      } else {
        statement.sql = select;
        statement.fingerprint = select_fp;
        statement.params = {row};
      }
      request.statements.push_back(std::move(statement));
      const std::string payload = wire::encode(request);
      while (producer.produce(topic, RD_KAFKA_PARTITION_UA, request.key, payload) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        producer.poll(10ms);
      }
    }
    if (producer.flush(60s) != 0) throw Failure("requests were not delivered to " + topic);
    return 0;
  });
}
