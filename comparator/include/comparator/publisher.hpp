// Everything the comparator publishes (discrepancies, summaries, dead letters)
// goes into one Kafka transaction per commit cycle, together with the consumer
// offsets that cycle reached. A crash or a fault between two cycles aborts the
// records with the offsets, and the requests are decided again from the last
// committed position: a decision is published, and a request counted, exactly
// once. Readers use isolation.level=read_committed (librdkafka's default).
#pragma once

#include "shadowpipe/kafka.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace shadowpipe::comparator {

class TransactionalPublisher {
 public:
  // transactional_id: one per live instance; an instance restarted with the
  // same id fences its predecessor's open transaction at once, otherwise the
  // broker aborts it after transaction.timeout.ms.
  TransactionalPublisher(kafka::Properties properties, std::string transactional_id);
  ~TransactionalPublisher();

  // Retries give up once this flag is set (the service's stop flag).
  void follow_stop(const std::atomic<bool>& stop) { stop_ = &stop; }
  // Opens the first transaction; transient broker faults are waited out.
  void start();
  // Enqueues into the open transaction, waiting out a full local queue.
  void publish(const std::string& topic, int32_t partition, std::string_view key, const std::string& payload);

  enum class Outcome { committed, aborted };
  // Adds the consumer's offsets to the transaction and commits it, then opens
  // the next one. Retriable faults are retried with backoff (logged once per
  // streak). Anything else aborts the transaction (a fatal producer error
  // recreates the producer, fencing the old one) and returns aborted: the
  // caller must rewind its consumer to the committed offsets and forget what
  // it decided since. Returns aborted without a rewind need when stopping.
  Outcome commit(const kafka::PartitionList& offsets, rd_kafka_t* consumer);

  // At a clean stop, after the last commit: aborts the transaction opened
  // after it (what it holds was not committed with offsets, so the next owner
  // decides it again) and releases the producer, so nothing of it is left to
  // tear down with the process.
  void close();

  uint64_t aborted_transactions() const { return aborted_; }
  uint64_t committed_transactions() const { return committed_; }

 private:
  void create_producer();
  // Initializes the producer and opens a transaction, waiting out transient
  // faults and recreating the producer after a refusal; false when the stop
  // came first.
  bool open();
  bool retry(const char* what, const std::function<rd_kafka_error_t*()>& call);

  kafka::Properties properties_;
  std::string transactional_id_;
  std::atomic<bool> never_{false};
  const std::atomic<bool>* stop_ = &never_;
  std::unique_ptr<kafka::Producer> producer_;
  uint64_t aborted_ = 0;
  uint64_t committed_ = 0;
};

}  // namespace shadowpipe::comparator
