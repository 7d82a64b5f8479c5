// RAII owners for librdkafka handles, shared by every program. Creating a
// handle with a bad property throws shadowpipe::Failure naming the property;
// per-message outcomes (queue full, delivery errors) are returned as values.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowpipe::kafka {

// librdkafka properties in the order given; later entries win. This is how
// TLS and SASL settings reach every program unchanged (-X key=value).
using Properties = std::vector<std::pair<std::string, std::string>>;

struct HandleDeleter {
  void operator()(rd_kafka_t* handle) const noexcept { rd_kafka_destroy(handle); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const noexcept { rd_kafka_conf_destroy(conf); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* message) const noexcept { rd_kafka_message_destroy(message); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const noexcept {
    rd_kafka_topic_partition_list_destroy(list);
  }
};

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* topic) const noexcept { rd_kafka_topic_destroy(topic); }
};

using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
// A topic handle must be destroyed before the client it came from.
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

// Builds a configuration; throws Failure naming the property that was refused.
ConfPtr make_conf(const Properties& properties);

// Fetch settings for a consumer that follows a live stream (the executors'
// requests, the comparator's requests and results). With librdkafka's
// defaults (fetch.min.bytes 1) a fetch returns as soon as any record
// arrives, so behind producers that each send a request per partition per
// linger the comparator fetched ~350 times a second at 2,000 units/s, and
// the broker's CPU follows its requests (docs/BENCHMARKS.md, issue 14, stop
// 16). The broker now answers when 256 KiB have gathered or 20 ms have
// passed: at most 50 fetches a second per consumer and broker below
// ~12 MB/s, for at most 20 ms more between a record's write and its read;
// an idle consumer fetches 50 times a second too. 20 ms, not longer: a fetch
// long-polling idle partitions also holds back the refetch of a partition
// just resumed after a pause. -X settings given after these win.
Properties live_stream_fetch();

class Message {
 public:
  Message() = default;
  explicit Message(rd_kafka_message_t* raw) : handle_(raw) {}
  explicit operator bool() const { return handle_ != nullptr; }
  rd_kafka_message_t* get() const { return handle_.get(); }

  rd_kafka_resp_err_t error() const { return handle_->err; }
  std::string error_text() const;
  std::string_view topic() const;
  int32_t partition() const { return handle_->partition; }
  int64_t offset() const { return handle_->offset; }
  std::string_view key() const {
    return {static_cast<const char*>(handle_->key), handle_->key_len};
  }
  std::string_view payload() const {
    return {static_cast<const char*>(handle_->payload), handle_->len};
  }
  // Record timestamp in milliseconds since the epoch, or -1 when absent.
  int64_t timestamp_ms() const;

 private:
  std::unique_ptr<rd_kafka_message_t, MessageDeleter> handle_;
};

class PartitionList {
 public:
  explicit PartitionList(int capacity = 8) : handle_(rd_kafka_topic_partition_list_new(capacity)) {}
  // Takes ownership of a list librdkafka handed over.
  explicit PartitionList(rd_kafka_topic_partition_list_t* raw) : handle_(raw) {}
  rd_kafka_topic_partition_list_t* get() const { return handle_.get(); }
  rd_kafka_topic_partition_t& add(const std::string& topic, int32_t partition, int64_t offset = RD_KAFKA_OFFSET_INVALID);
  int size() const { return handle_ ? handle_->cnt : 0; }
  rd_kafka_topic_partition_t& operator[](int index) const { return handle_->elems[index]; }

 private:
  std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter> handle_;
};

class Producer {
 public:
  // Called on librdkafka's poll thread for each delivered or failed record.
  using DeliveryCallback = std::function<void(const rd_kafka_message_t&)>;

  Producer(const Properties& properties, DeliveryCallback on_delivery = {});
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  rd_kafka_t* get() const { return handle_.get(); }
  // Enqueues without blocking; RD_KAFKA_RESP_ERR__QUEUE_FULL and the like are
  // returned, never waited out. partition -1 lets the partitioner choose.
  rd_kafka_resp_err_t produce(const std::string& topic, int32_t partition, std::string_view key,
                              std::string_view payload, void* opaque = nullptr);
  // The same through a topic handle kept by the caller (topic()): a hot path
  // skips the lookup of the topic by name, under the client's lock, that
  // every produce by name costs.
  rd_kafka_resp_err_t produce(rd_kafka_topic_t* topic, int32_t partition, std::string_view key,
                              std::string_view payload, void* opaque = nullptr);
  // A handle on `name` with the client's default topic configuration (as a
  // produce by name uses); throws Failure if librdkafka refuses it.
  TopicPtr topic(const std::string& name);
  int poll(std::chrono::milliseconds timeout);
  // Waits up to the deadline; returns what is still undelivered.
  int flush(std::chrono::milliseconds deadline);
  int outstanding() const { return rd_kafka_outq_len(handle_.get()); }

 private:
  static void delivery_trampoline(rd_kafka_t*, const rd_kafka_message_t*, void*);
  std::unique_ptr<DeliveryCallback> on_delivery_;
  HandlePtr handle_;
};

class Consumer {
 public:
  // Called from poll() on assignment changes; the callback must (incrementally)
  // assign or unassign, or call Consumer::default_rebalance.
  using RebalanceCallback = std::function<void(rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t*)>;

  Consumer(const Properties& properties, RebalanceCallback on_rebalance = {});
  ~Consumer();  // closes (leaves the group) if close() was not called
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  rd_kafka_t* get() const { return handle_.get(); }
  void subscribe(const std::vector<std::string>& topics);
  // Returns an empty Message on timeout.
  Message poll(std::chrono::milliseconds timeout);
  // Commits the given offsets (next offset to read) synchronously; returns the error.
  rd_kafka_resp_err_t commit(const PartitionList& offsets);
  void close();
  // Applies a rebalance event the plain way (eager or cooperative, as the
  // configured assignor is); does nothing once librdkafka has ended the
  // group handle (a revoke close() serves after it unassigned by itself).
  void default_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions);

 private:
  static void rebalance_trampoline(rd_kafka_t*, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t*, void*);
  std::unique_ptr<RebalanceCallback> on_rebalance_;
  bool cooperative_;  // the configured assignor's protocol
  HandlePtr handle_;
  bool closed_ = false;
};

struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
};
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;

// Runs one admin request: `issue` sends it with the reply queue it is given;
// the reply event comes back once the broker answered. Throws Failure saying
// `what` failed on a timeout or a request-level error; per-item errors are in
// the event for the caller to read.
EventPtr admin_request(rd_kafka_t* handle, const std::function<void(rd_kafka_queue_t*)>& issue,
                       std::chrono::milliseconds timeout, const std::string& what);

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  Properties config;  // e.g. retention.ms
};

// Creates topics through the admin API; existing topics are left as they are
// when exists_ok. Throws Failure with the broker's reason otherwise. Returns
// once the broker shows every topic it created with a leader for each
// partition.
void create_topics(rd_kafka_t* handle, const std::vector<TopicSpec>& topics,
                   std::chrono::milliseconds timeout, bool exists_ok = true);
// Stops or restarts fetching one partition of a consumer's assignment (the
// memory bounds of both services). Returns librdkafka's code; a partition
// not assigned is an error there too.
rd_kafka_resp_err_t set_paused(rd_kafka_t* consumer, const std::string& topic, int32_t partition, bool paused);

struct Watermarks {
  int64_t low = 0;   // the first offset retention kept
  int64_t high = 0;  // the offset after the last record
};
// Asked of the partition's leader. Throws Failure naming the topic and
// partition when the broker does not answer within the timeout.
Watermarks watermarks(rd_kafka_t* handle, const std::string& topic, int32_t partition,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The first offset retention kept, for a consumer that just read a record of
// the partition: as the last fetch response reported it (librdkafka stores
// the log start offset of every Fetch v5+ response without an error before
// handing its records over, and Kafka serves no fetch below it, so the
// response that brought the record came after any deletion that made the
// consumer jump), so a check on every skipped offset costs no request. Asks
// the leader, as watermarks() does, when no fetch has reported it (an error
// response leaves it unknown).
int64_t log_start_offset(rd_kafka_t* consumer, const std::string& topic, int32_t partition,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Fills each entry's offset with the handle's group's committed offset
// (RD_KAFKA_OFFSET_INVALID where it committed none). Throws Failure naming
// what could not be read.
void read_committed(rd_kafka_t* handle, PartitionList& partitions,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Partition count of a topic, or nullopt when the broker does not know it.
// A topic the broker shows without partitions yet (being created) is waited
// for up to `timeout`, then a Failure.
std::optional<int> partition_count(rd_kafka_t* handle, const std::string& topic,
                                   std::chrono::milliseconds timeout);

}  // namespace shadowpipe::kafka
