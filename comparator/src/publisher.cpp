#include "comparator/publisher.hpp"

#include "shadowpipe/result.hpp"

#include <functional>
#include <iostream>
#include <thread>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;

namespace {
void log(const std::string& line) { std::cerr << "shadow-comparator: " << line << std::endl; }

struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const noexcept { rd_kafka_error_destroy(error); }
};
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* metadata) const noexcept {
    rd_kafka_consumer_group_metadata_destroy(metadata);
  }
};
}  // namespace

TransactionalPublisher::TransactionalPublisher(kafka::Properties properties, std::string transactional_id)
    : properties_(std::move(properties)), transactional_id_(std::move(transactional_id)) {
  properties_.emplace_back("transactional.id", transactional_id_);
  create_producer();
}

TransactionalPublisher::~TransactionalPublisher() = default;

void TransactionalPublisher::close() {
  if (!producer_) return;
  ErrorPtr error(rd_kafka_abort_transaction(producer_->get(), 10'000));
  if (error) log(std::string("closing: aborting the open transaction: ") + rd_kafka_error_string(error.get()));
  producer_.reset();
}

void TransactionalPublisher::create_producer() {
  producer_.reset();  // the old handle first: its id is about to be fenced
  producer_ = std::make_unique<kafka::Producer>(properties_);
}

// Runs a transactional call until it succeeds, retrying what librdkafka says
// is retriable (timeouts while a broker is away, a coordinator loading).
// Returns false on a non-retriable error (logged) or when stopping.
bool TransactionalPublisher::retry(const char* what, const std::function<rd_kafka_error_t*()>& call) {
  auto backoff = 200ms;
  bool streak = false;
  for (;;) {
    ErrorPtr error(call());
    if (!error) {
      if (streak) log(std::string(what) + " succeeded again");
      return true;
    }
    if (!rd_kafka_error_is_retriable(error.get()) || stop_->load()) {
      log(std::string(what) + " failed: " + rd_kafka_error_string(error.get()) +
          (rd_kafka_error_is_fatal(error.get()) ? " (fatal for this producer)" : ""));
      return false;
    }
    if (!streak) {
      log(std::string(what) + ": " + rd_kafka_error_string(error.get()) + "; retrying until the brokers answer");
      streak = true;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

void TransactionalPublisher::start() {
  if (!open()) throw Failure("stopped before the transactional producer " + transactional_id_ + " was ready");
}

bool TransactionalPublisher::open() {
  for (;;) {
    const bool ready = retry("initializing the transactional producer",
                             [&] { return rd_kafka_init_transactions(producer_->get(), 30'000); }) &&
                       retry("beginning a transaction", [&] { return rd_kafka_begin_transaction(producer_->get()); });
    if (ready) return true;
    if (stop_->load()) return false;
    std::this_thread::sleep_for(1s);
    create_producer();
  }
}

void TransactionalPublisher::publish(const std::string& topic, int32_t partition, std::string_view key,
                                     const std::string& payload) {
  for (;;) {
    auto err = producer_->produce(topic, partition, key, payload);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // The transaction is in an error state; commit() finds out and aborts.
      log("cannot publish to " + topic + ": " + rd_kafka_err2str(err) + " (the transaction will be aborted and redone)");
      return;
    }
    producer_->poll(50ms);  // backpressure: wait for deliveries rather than drop
  }
}

TransactionalPublisher::Outcome TransactionalPublisher::commit(const kafka::PartitionList& offsets,
                                                               rd_kafka_t* consumer) {
  std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter> metadata(
      rd_kafka_consumer_group_metadata(consumer));
  const bool committed =
      (offsets.size() == 0 ||
       retry("adding the offsets to the transaction", [&] {
         return rd_kafka_send_offsets_to_transaction(producer_->get(), offsets.get(), metadata.get(), 30'000);
       })) &&
      retry("committing the transaction", [&] { return rd_kafka_commit_transaction(producer_->get(), 30'000); });
  if (committed) {
    if (retry("beginning a transaction", [&] { return rd_kafka_begin_transaction(producer_->get()); })) {
      ++committed_;
      return Outcome::committed;
    }
  }
  ++aborted_;
  if (stop_->load()) return Outcome::aborted;
  ErrorPtr abort_error(rd_kafka_abort_transaction(producer_->get(), 30'000));
  if (abort_error) {
    log(std::string("aborting the transaction failed: ") + rd_kafka_error_string(abort_error.get()) +
        "; recreating the producer (fences the old one)");
  }
  if (abort_error || !retry("beginning a transaction", [&] { return rd_kafka_begin_transaction(producer_->get()); })) {
    create_producer();
    // A stop that comes meanwhile is not an error (start() would throw one
    // out of the run, for a process that was only asked to stop): the
    // producer is left without a transaction, and what the run still
    // publishes or commits before it ends fails and is redone by the next owner.
    open();
  }
  return Outcome::aborted;
}

}  // namespace shadowpipe::comparator
