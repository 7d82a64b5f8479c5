// What the executor's integration tests share: unique topics and databases,
// request records built as wire::Request and encoded, a reference database
// that receives the same statements once, serially, and waiting helpers.
#pragma once

#include "shadow_executor/executor.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shadowpipe::testing {

using namespace std::chrono_literals;
using Params = std::vector<std::optional<std::string>>;

inline std::string with_database(const std::string& dsn, const std::string& database) {
  return dsn + " dbname=" + database;  // libpq: the last dbname in a conninfo string wins
}

// A database of its own on one of the stack's servers, dropped at the end.
class ScratchDatabase {
 public:
  ScratchDatabase(const std::string& server_dsn, const std::string& prefix)
      : server_dsn_(server_dsn), name_(database_name(prefix)) {
    pg::Connection(server_dsn_).exec_checked("CREATE DATABASE " + name_ + " TEMPLATE template0");
  }
  ~ScratchDatabase() {
    try {
      pg::Connection(server_dsn_).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
    }
  }
  const std::string& name() const { return name_; }
  std::string dsn() const { return with_database(server_dsn_, name_); }

 private:
  static std::string database_name(const std::string& prefix) {
    std::string name = unique_name(prefix);
    for (auto& c : name) c = c == '-' ? '_' : c;
    return name;
  }
  std::string server_dsn_;
  std::string name_;
};

inline wire::Statement make_statement(const std::string& sql, Params params = {}) {
  wire::Statement statement;
  statement.sql = sql;
  statement.params = std::move(params);
  auto analysis = statement::analyze(sql);
  if (analysis.ok()) statement.fingerprint = analysis->fingerprint;
  return statement;
}

inline wire::Request make_request(const std::string& id, const std::string& key, wire::TxMode tx,
                                  std::vector<wire::Statement> statements) {
  wire::Request request;
  request.request_id = id;
  request.ts_us = wire::now_us();
  request.key = key;
  request.source = "executor-test";
  request.session.time_zone = "UTC";
  request.session.date_style = "ISO, MDY";
  request.session.interval_style = "postgres";
  request.session.search_path = "public";
  request.tx = tx;
  request.statements = std::move(statements);
  return request;
}

// Runs a request on a reference database the plain way (what the primary did).
inline void apply_on_reference(const pg::Connection& conn, const wire::Request& request) {
  const bool block = request.tx != wire::TxMode::autocommit;
  if (block) conn.exec_checked("BEGIN");
  for (const auto& statement : request.statements) conn.exec_checked(statement.sql, statement.params);
  if (block) conn.exec_checked(request.tx == wire::TxMode::commit ? "COMMIT" : "ROLLBACK");
}

// Topics of one test: requests, results, dlq.
class Topics {
 public:
  explicit Topics(int partitions)
      : partitions_(partitions),
        requests_(unique_name("requests")),
        results_(unique_name("results")),
        dlq_(unique_name("dlq")),
        producer_({{"bootstrap.servers", brokers()}, {"enable.idempotence", "true"}, {"linger.ms", "2"}}) {
    kafka::create_topics(producer_.get(),
                         {{requests_, partitions, 1, {}}, {results_, partitions, 1, {}}, {dlq_, 1, 1, {}}}, 20s);
  }

  int partitions() const { return partitions_; }
  const std::string& requests() const { return requests_; }
  const std::string& results() const { return results_; }
  const std::string& dlq() const { return dlq_; }

  void produce(const wire::Request& request) { produce_raw(request.key, wire::encode(request)); }
  void produce_raw(const std::string& key, const std::string& payload, int32_t partition = RD_KAFKA_PARTITION_UA) {
    while (producer_.produce(requests_, partition, key, payload) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      producer_.poll(10ms);
    }
  }
  void flush() { ASSERT_EQ(producer_.flush(30s), 0) << "requests not delivered"; }

  // Sum over partitions of the requests topic's high watermarks.
  int64_t requests_end() {
    int64_t total = 0;
    for (int p = 0; p < partitions_; ++p) {
      int64_t low = 0, high = 0;
      EXPECT_EQ(rd_kafka_query_watermark_offsets(producer_.get(), requests_.c_str(), p, &low, &high, 10000),
                RD_KAFKA_RESP_ERR_NO_ERROR);
      total += high;
    }
    return total;
  }

  // Reads a topic from the start until `at_least` records — distinct ones by
  // `id_of` when given, since duplicates are allowed — or the deadline.
  std::vector<std::string> read_all(const std::string& topic, size_t at_least, std::chrono::seconds deadline,
                                    const std::function<std::string(const std::string&)>& id_of = {}) {
    kafka::Consumer consumer({{"bootstrap.servers", brokers()},
                              {"group.id", unique_name("reader")},
                              {"auto.offset.reset", "earliest"},
                              {"enable.auto.commit", "false"}});
    consumer.subscribe({topic});
    std::vector<std::string> payloads;
    std::set<std::string> ids;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while ((id_of ? ids.size() : payloads.size()) < at_least && std::chrono::steady_clock::now() < until) {
      auto message = consumer.poll(200ms);
      if (!message || message.error()) continue;
      payloads.emplace_back(message.payload());
      if (id_of) ids.insert(id_of(payloads.back()));
    }
    // Drain a little more: duplicates may follow.
    for (auto message = consumer.poll(300ms); message; message = consumer.poll(300ms)) {
      if (!message.error()) payloads.emplace_back(message.payload());
    }
    consumer.close();
    return payloads;
  }

  // One record as read, with where it stands.
  struct Placed {
    int32_t partition = -1;
    int64_t offset = -1;
    std::string payload;
  };
  // Reads a topic from the start until it holds `at_least` records or the
  // deadline, then drains what follows.
  std::vector<Placed> read_placed(const std::string& topic, size_t at_least, std::chrono::seconds deadline) {
    kafka::Consumer consumer({{"bootstrap.servers", brokers()},
                              {"group.id", unique_name("reader")},
                              {"auto.offset.reset", "earliest"},
                              {"enable.auto.commit", "false"}});
    consumer.subscribe({topic});
    std::vector<Placed> records;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (records.size() < at_least && std::chrono::steady_clock::now() < until) {
      auto message = consumer.poll(200ms);
      if (!message || message.error()) continue;
      records.push_back({message.partition(), message.offset(), std::string(message.payload())});
    }
    for (auto message = consumer.poll(500ms); message; message = consumer.poll(500ms)) {
      if (!message.error()) records.push_back({message.partition(), message.offset(), std::string(message.payload())});
    }
    consumer.close();
    return records;
  }

  std::map<std::string, wire::ShadowResult> results_by_request(size_t expected, std::chrono::seconds deadline) {
    std::map<std::string, wire::ShadowResult> by_id;
    const auto request_id = [](const std::string& payload) {
      auto decoded = wire::decode_result(payload);
      return decoded.ok() ? decoded->request_id : std::string();
    };
    for (const auto& payload : read_all(results_, expected, deadline, request_id)) {
      auto decoded = wire::decode_result(payload);
      EXPECT_TRUE(decoded.ok()) << (decoded.ok() ? "" : decoded.error().describe());
      if (decoded.ok()) by_id[decoded->request_id] = decoded.value();
    }
    return by_id;
  }

 private:
  int partitions_;
  std::string requests_, results_, dlq_;
  kafka::Producer producer_;
};

// Checks the results topic's progress stamps, in partition order: every
// result carries one, and every source offset below it (but those in
// `without_result`, dead-lettered) has a result or a gap record standing
// earlier in the partition. Returns the highest stamp per partition.
inline std::map<int32_t, int64_t> check_progress_stamps(const std::vector<Topics::Placed>& records,
                                                        const std::set<std::pair<int32_t, int64_t>>& without_result = {}) {
  std::map<int32_t, std::vector<const Topics::Placed*>> by_partition;
  for (const auto& record : records) by_partition[record.partition].push_back(&record);
  std::map<int32_t, int64_t> highest;
  for (auto& [partition, placed] : by_partition) {
    std::sort(placed.begin(), placed.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    std::set<int64_t> seen;
    int64_t contiguous = 0;  // every source offset below it was seen
    for (const auto* record : placed) {
      if (wire::is_gap_record(record->payload)) {
        // A retention gap stands for the offsets it announces.
        auto gap = wire::decode_gap(record->payload);
        EXPECT_TRUE(gap.ok()) << record->payload;
        if (gap.ok()) {
          EXPECT_GE(gap->from_offset, 0) << record->payload;
          for (int64_t offset = gap->from_offset; offset < gap->to_offset; ++offset) seen.insert(offset);
        }
        continue;
      }
      auto result = wire::decode_result(record->payload);
      EXPECT_TRUE(result.ok()) << record->payload;
      if (!result.ok()) continue;
      EXPECT_GE(result->published_below, 0) << "no progress stamp: " << record->payload;
      while (seen.contains(contiguous) || without_result.contains({partition, contiguous})) ++contiguous;
      EXPECT_LE(result->published_below, contiguous)
          << "partition " << partition << " offset " << record->offset << ": stamped "
          << result->published_below << " but the result of source offset " << contiguous
          << " does not stand before it";
      highest[partition] = std::max(highest[partition], result->published_below);
      seen.insert(result->source_offset);
    }
  }
  return highest;
}

inline executor::Options base_options(const Topics& topics, const std::string& shadow_dsn, const std::string& group) {
  executor::Options options;
  options.shadow_dsn = shadow_dsn;
  options.group = group;
  options.requests_topic = topics.requests();
  options.results_topic = topics.results();
  options.dlq_topic = topics.dlq();
  options.kafka = {{"bootstrap.servers", brokers()},
                   {"session.timeout.ms", "6000"},
                   {"heartbeat.interval.ms", "500"},
                   {"topic.metadata.refresh.interval.ms", "1000"}};
  options.commit_interval = 200ms;
  options.shutdown_deadline = 10s;
  return options;
}

// An executor on a thread of the test process.
class RunningExecutor {
 public:
  explicit RunningExecutor(executor::Options options)
      : executor_(std::make_unique<executor::Executor>(std::move(options))),
        thread_([this] { status_ = executor_->run(stop_); }) {}
  ~RunningExecutor() { stop(); }
  int stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  executor::Executor& executor() { return *executor_; }

 private:
  std::atomic<bool> stop_{false};
  int status_ = -1;
  std::unique_ptr<executor::Executor> executor_;
  std::thread thread_;
};

inline int64_t applied_total(const pg::Connection& shadow, const std::string& group, const std::string& topic) {
  auto result = shadow.exec(
      "SELECT coalesce(sum(next_offset), 0) FROM shadowpipe.applied WHERE consumer_group = $1 AND topic = $2",
      {group, topic});
  if (!result.succeeded() || result.rows() != 1) return -1;
  return std::stoll(std::string(result.value(0, 0)));
}

// Waits until shadowpipe.applied reaches the end of every partition.
inline bool wait_applied(const std::string& shadow_dsn, const std::string& group, Topics& topics,
                         std::chrono::seconds deadline) {
  const int64_t end = topics.requests_end();
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    try {
      pg::Connection shadow(shadow_dsn);
      while (std::chrono::steady_clock::now() < until) {
        if (applied_total(shadow, group, topics.requests()) >= end) return true;
        std::this_thread::sleep_for(100ms);
      }
    } catch (const std::exception&) {
      std::this_thread::sleep_for(200ms);
    }
  }
  return false;
}

inline std::string table_checksum(const std::string& dsn, const std::string& table) {
  pg::Connection conn(dsn);
  auto result = conn.exec_checked("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM " +
                                  table + " AS t");
  return std::string(result.value(0, 0));
}

// Deletes the records of `topic`[partition] below `before` (what retention
// does to old segments), through the admin API.
inline void delete_records(const std::string& topic, int32_t partition, int64_t before) {
  kafka::Producer admin({{"bootstrap.servers", brokers()}});
  kafka::PartitionList offsets(1);
  offsets.add(topic, partition, before);
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(offsets.get());
  auto event = kafka::admin_request(
      admin.get(), [&](rd_kafka_queue_t* queue) { rd_kafka_DeleteRecords(admin.get(), &request, 1, nullptr, queue); },
      30s, "deleting records");
  rd_kafka_DeleteRecords_destroy(request);
  const auto* result = rd_kafka_event_DeleteRecords_result(event.get());
  ASSERT_NE(result, nullptr);
  const auto* deleted = rd_kafka_DeleteRecords_result_offsets(result);
  ASSERT_EQ(deleted->cnt, 1);
  ASSERT_EQ(deleted->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(deleted->elems[0].err);
}

}  // namespace shadowpipe::testing
