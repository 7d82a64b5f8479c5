#include "shadowpipe/kafka.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace shadowpipe::kafka {

namespace {

// librdkafka's reason quotes the refused value, or one item of a list value
// ("Invalid value \"...\" for configuration property \"debug\""), and the
// value may be a secret given to the wrong key or a mistyped one. Every
// quoted text but the key is hidden, and so is any remaining occurrence of
// the value or of one of its items (four characters or more).
std::string reason_without_value(std::string reason, const std::string& key, const std::string& value) {
  std::string out;
  for (size_t at = 0; at < reason.size();) {
    const size_t open = reason.find('"', at);
    const size_t close = open == std::string::npos ? open : reason.find('"', open + 1);
    if (close == std::string::npos) {
      out += reason.substr(at);
      break;
    }
    const std::string quoted = reason.substr(open + 1, close - open - 1);
    out += reason.substr(at, open - at) + "\"" + (quoted == key ? quoted : "<value hidden>") + "\"";
    at = close + 1;
  }
  std::vector<std::string> pieces = {value};
  for (size_t start = 0; start <= value.size();) {
    const size_t end = std::min(value.find(',', start), value.size());
    pieces.push_back(value.substr(start, end - start));
    start = end + 1;
  }
  for (const auto& piece : pieces) {
    if (piece.size() < 4) continue;
    for (size_t found; (found = out.find(piece)) != std::string::npos;) out.replace(found, piece.size(), "<value hidden>");
  }
  return out;
}

}  // namespace

ConfPtr make_conf(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      // Never the value: it may be a password (sasl.password, ssl.key.password).
      throw Failure("Kafka property " + key + " was refused: " + reason_without_value(errstr, key, value) +
                    " — fix or remove that -X option (its value is not shown)");
    }
  }
  return conf;
}

Properties live_stream_fetch() { return {{"fetch.wait.max.ms", "20"}, {"fetch.min.bytes", "262144"}}; }

std::string Message::error_text() const {
  if (!handle_) return "";
  if (handle_->payload && handle_->err) return rd_kafka_message_errstr(handle_.get());
  return rd_kafka_err2str(handle_->err);
}

std::string_view Message::topic() const {
  return handle_->rkt ? std::string_view(rd_kafka_topic_name(handle_->rkt)) : std::string_view();
}

int64_t Message::timestamp_ms() const {
  rd_kafka_timestamp_type_t type;
  return rd_kafka_message_timestamp(handle_.get(), &type);
}

rd_kafka_topic_partition_t& PartitionList::add(const std::string& topic, int32_t partition, int64_t offset) {
  auto* entry = rd_kafka_topic_partition_list_add(handle_.get(), topic.c_str(), partition);
  entry->offset = offset;
  return *entry;
}

namespace {
HandlePtr make_handle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  rd_kafka_t* raw = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
  if (!raw) throw Failure(std::string("cannot create the Kafka client: ") + errstr);
  conf.release();  // rd_kafka_new owns it now
  return HandlePtr(raw);
}
}  // namespace

Producer::Producer(const Properties& properties, DeliveryCallback on_delivery)
    : on_delivery_(std::make_unique<DeliveryCallback>(std::move(on_delivery))) {
  auto conf = make_conf(properties);
  rd_kafka_conf_set_opaque(conf.get(), on_delivery_.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::delivery_trampoline);
  handle_ = make_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() = default;

void Producer::delivery_trampoline(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* callback = static_cast<DeliveryCallback*>(opaque);
  if (callback && *callback) (*callback)(*message);
}

rd_kafka_resp_err_t Producer::produce(const std::string& topic, int32_t partition, std::string_view key,
                                      std::string_view payload, void* opaque) {
  return rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()), RD_KAFKA_V_OPAQUE(opaque),
      RD_KAFKA_V_END);
}

rd_kafka_resp_err_t Producer::produce(rd_kafka_topic_t* topic, int32_t partition, std::string_view key,
                                      std::string_view payload, void* opaque) {
  return rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()), RD_KAFKA_V_OPAQUE(opaque),
      RD_KAFKA_V_END);
}

TopicPtr Producer::topic(const std::string& name) {
  TopicPtr handle(rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr));
  if (!handle) {
    throw Failure("cannot open topic " + name + ": " + rd_kafka_err2str(rd_kafka_last_error()));
  }
  return handle;
}

int Producer::poll(std::chrono::milliseconds timeout) {
  return rd_kafka_poll(handle_.get(), static_cast<int>(timeout.count()));
}

int Producer::flush(std::chrono::milliseconds deadline) {
  rd_kafka_flush(handle_.get(), static_cast<int>(deadline.count()));
  return rd_kafka_outq_len(handle_.get());
}

namespace {
// Whether the configured assignors are cooperative (librdkafka requires all
// of them to share one protocol; the last setting of a key wins, and its
// default, range and roundrobin, is eager). Read from the configuration, not
// asked of the group handle, which may have ended (see default_rebalance)
// or, asked just as it ends, never answer (librdkafka #4041).
bool cooperative_assignor(const Properties& properties) {
  bool cooperative = false;
  for (const auto& [key, value] : properties) {
    if (key == "partition.assignment.strategy") cooperative = value.find("cooperative") != std::string::npos;
  }
  return cooperative;
}
}  // namespace

Consumer::Consumer(const Properties& properties, RebalanceCallback on_rebalance)
    : on_rebalance_(std::make_unique<RebalanceCallback>(std::move(on_rebalance))),
      cooperative_(cooperative_assignor(properties)) {
  auto conf = make_conf(properties);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Consumer::rebalance_trampoline);
  handle_ = make_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(handle_.get());
}

Consumer::~Consumer() {
  if (!closed_) close();
}

void Consumer::rebalance_trampoline(rd_kafka_t*, rd_kafka_resp_err_t event,
                                    rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  if (self->on_rebalance_ && *self->on_rebalance_) {
    (*self->on_rebalance_)(event, partitions);
  } else {
    self->default_rebalance(event, partitions);
  }
}

void Consumer::default_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions) {
  // close() can serve a revoke after librdkafka unassigned by itself and
  // ended the group handle (when the revoke was queued before the close and
  // its callback took longer than that, as a last commit on a busy machine
  // can): nothing is left to release then. Every request to an ended handle
  // fails, and librdkafka's answer to rd_kafka_rebalance_protocol() is NULL
  // (the comparator died of SIGSEGV reading its name), which is why the
  // protocol is taken from the configuration instead.
  if (closed_ && rd_kafka_consumer_closed(handle_.get())) return;
  if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative_) {
      if (auto* error = rd_kafka_incremental_assign(handle_.get(), partitions)) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(handle_.get(), partitions);
    }
  } else {
    if (cooperative_) {
      if (auto* error = rd_kafka_incremental_unassign(handle_.get(), partitions)) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(handle_.get(), nullptr);
    }
  }
}

void Consumer::subscribe(const std::vector<std::string>& topics) {
  PartitionList list(static_cast<int>(topics.size()));
  for (const auto& topic : topics) list.add(topic, RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(handle_.get(), list.get())) {
    throw Failure("cannot subscribe to the topics: " + std::string(rd_kafka_err2str(err)));
  }
}

Message Consumer::poll(std::chrono::milliseconds timeout) {
  return Message(rd_kafka_consumer_poll(handle_.get(), static_cast<int>(timeout.count())));
}

rd_kafka_resp_err_t Consumer::commit(const PartitionList& offsets) {
  return rd_kafka_commit(handle_.get(), offsets.get(), 0);
}

void Consumer::close() {
  if (closed_) return;
  closed_ = true;
  rd_kafka_consumer_close(handle_.get());
}

namespace {
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const noexcept { rd_kafka_AdminOptions_destroy(options); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* topic) const noexcept { rd_kafka_NewTopic_destroy(topic); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const noexcept { rd_kafka_metadata_destroy(metadata); }
};
}  // namespace

EventPtr admin_request(rd_kafka_t* handle, const std::function<void(rd_kafka_queue_t*)>& issue,
                       std::chrono::milliseconds timeout, const std::string& what) {
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(handle));
  issue(queue.get());
  EventPtr event(rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count())));
  if (!event) throw Failure(what + " timed out after " + std::to_string(timeout.count()) + " ms: is the broker reachable?");
  if (rd_kafka_event_error(event.get())) {
    throw Failure(what + " failed: " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

namespace {

// What a broker answers while a topic was just created, a leader moves or a
// coordinator loads: waiting cures it.
bool is_transient(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
      return true;
    default:
      return false;
  }
}

// Calls `query` with the time left until it succeeds, fails for good, or the
// timeout is spent; transient answers are retried with backoff.
rd_kafka_resp_err_t with_retries(std::chrono::milliseconds timeout,
                                 const std::function<rd_kafka_resp_err_t(int timeout_ms)>& query,
                                 std::chrono::milliseconds first_backoff = std::chrono::milliseconds(100)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto backoff = first_backoff;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto err = query(static_cast<int>(std::max<int64_t>(left.count(), 1)));
    if (!err || !is_transient(err) || std::chrono::steady_clock::now() + backoff >= deadline) return err;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

// What the broker's metadata says of one topic. A topic just created is
// absent from the answers of a broker whose metadata has not caught up with
// its controller, then present without partitions or leaders for a moment.
enum class TopicState { absent, settling, ready };

struct TopicView {
  TopicState state = TopicState::absent;
  int partitions = 0;
  bool every_partition_led = false;
};

TopicView view_topic(rd_kafka_t* handle, const std::string& topic, int timeout_ms) {
  const rd_kafka_metadata_t* raw = nullptr;
  // Every topic, never a named one: asking for a topic by name may create it
  // on a broker with auto.create.topics.enable.
  const auto err = rd_kafka_metadata(handle, 1, nullptr, &raw, timeout_ms);
  if (err) {
    throw Failure("cannot read Kafka metadata: " + std::string(rd_kafka_err2str(err)) + " — is the broker reachable?");
  }
  std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter> metadata(raw);
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const auto& entry = metadata->topics[i];
    if (topic != entry.topic) continue;
    if (entry.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return {};
    if (entry.err != RD_KAFKA_RESP_ERR_NO_ERROR && entry.err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
      throw Failure("the broker refused the metadata of topic " + topic + ": " + rd_kafka_err2str(entry.err) +
                    " — check the client's ACLs for it");
    }
    TopicView view;
    view.partitions = entry.partition_cnt;
    view.state = entry.err == RD_KAFKA_RESP_ERR_NO_ERROR && entry.partition_cnt > 0 ? TopicState::ready
                                                                                     : TopicState::settling;
    view.every_partition_led = view.state == TopicState::ready;
    for (int p = 0; p < entry.partition_cnt; ++p) {
      view.every_partition_led = view.every_partition_led && entry.partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                                 entry.partitions[p].leader >= 0;
    }
    return view;
  }
  return {};
}

// Asks `view_topic` until `done` holds of its answer or the time is spent;
// returns the last answer. A topic that is not done yet is retried as the
// broker's transient answers are (a new topic's leaders take a moment).
TopicView view_topic_until(rd_kafka_t* handle, const std::string& topic, std::chrono::milliseconds timeout,
                           const std::function<bool(const TopicView&)>& done) {
  TopicView view;
  with_retries(
      timeout,
      [&](int timeout_ms) {
        view = view_topic(handle, topic, timeout_ms);
        return done(view) ? RD_KAFKA_RESP_ERR_NO_ERROR : RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
      },
      std::chrono::milliseconds(20));
  return view;
}

}  // namespace

void create_topics(rd_kafka_t* handle, const std::vector<TopicSpec>& topics,
                   std::chrono::milliseconds timeout, bool exists_ok) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char errstr[512];
  std::vector<std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>> owned;
  std::vector<rd_kafka_NewTopic_t*> raw;
  for (const auto& spec : topics) {
    std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter> topic(
        rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions, spec.replication_factor, errstr, sizeof errstr));
    if (!topic) throw Failure("invalid topic " + spec.name + ": " + errstr);
    for (const auto& [key, value] : spec.config) {
      if (rd_kafka_NewTopic_set_config(topic.get(), key.c_str(), value.c_str())) {
        throw Failure("invalid config " + key + "=" + value + " for topic " + spec.name);
      }
    }
    raw.push_back(topic.get());
    owned.push_back(std::move(topic));
  }
  std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter> options(
      rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), static_cast<int>(timeout.count()), errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()), errstr, sizeof errstr);
  auto event = admin_request(
      handle,
      [&](rd_kafka_queue_t* queue) { rd_kafka_CreateTopics(handle, raw.data(), raw.size(), options.get(), queue); },
      timeout + std::chrono::seconds(1), "creating topics");
  const auto* result = rd_kafka_event_CreateTopics_result(event.get());
  size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  std::vector<std::string> created;
  for (size_t i = 0; i < count; ++i) {
    auto err = rd_kafka_topic_result_error(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      created.emplace_back(rd_kafka_topic_result_name(results[i]));
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && exists_ok) continue;
    const char* why = rd_kafka_topic_result_error_string(results[i]);
    throw Failure("creating topic " + std::string(rd_kafka_topic_result_name(results[i])) +
                  " failed: " + (why ? why : rd_kafka_err2str(err)));
  }
  // The controller has the new topics; wait until the broker serves them, so
  // that whoever looks next (this process or another) finds them with
  // leaders. Topics that existed are not waited for: a partition of theirs
  // may be offline for reasons of its own.
  for (const auto& name : created) {
    const auto left = std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                 deadline - std::chrono::steady_clock::now()));
    const auto view =
        view_topic_until(handle, name, left, [](const TopicView& view) { return view.every_partition_led; });
    if (!view.every_partition_led) {
      throw Failure("topic " + name + " was created but the broker did not show it with a leader for every " +
                    "partition within " + std::to_string(timeout.count()) +
                    " ms: check the broker's log for the controller's state");
    }
  }
}

std::optional<int> partition_count(rd_kafka_t* handle, const std::string& topic,
                                   std::chrono::milliseconds timeout) {
  const auto view =
      view_topic_until(handle, topic, timeout, [](const TopicView& view) { return view.state != TopicState::settling; });
  if (view.state == TopicState::settling) {
    throw Failure("topic " + topic + " exists but the broker gave no partitions for it within " +
                  std::to_string(timeout.count()) + " ms: it may still be being created or deleted; try again");
  }
  if (view.state == TopicState::absent) return std::nullopt;
  return view.partitions;
}


rd_kafka_resp_err_t set_paused(rd_kafka_t* consumer, const std::string& topic, int32_t partition, bool paused) {
  PartitionList list(1);
  list.add(topic, partition);
  const auto err = paused ? rd_kafka_pause_partitions(consumer, list.get()) : rd_kafka_resume_partitions(consumer, list.get());
  return err ? err : list[0].err;
}

Watermarks watermarks(rd_kafka_t* handle, const std::string& topic, int32_t partition,
                      std::chrono::milliseconds timeout) {
  Watermarks marks;
  const auto err = with_retries(timeout, [&](int timeout_ms) {
    return rd_kafka_query_watermark_offsets(handle, topic.c_str(), partition, &marks.low, &marks.high, timeout_ms);
  });
  if (err) {
    throw Failure("cannot read the offsets of " + topic + "[" + std::to_string(partition) + "]: " +
                  rd_kafka_err2str(err) + " — is the broker reachable?");
  }
  return marks;
}

int64_t log_start_offset(rd_kafka_t* consumer, const std::string& topic, int32_t partition,
                         std::chrono::milliseconds timeout) {
  int64_t low = -1;
  int64_t high = -1;
  if (rd_kafka_get_watermark_offsets(consumer, topic.c_str(), partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      low >= 0) {
    return low;
  }
  return watermarks(consumer, topic, partition, timeout).low;
}

void read_committed(rd_kafka_t* handle, PartitionList& partitions, std::chrono::milliseconds timeout) {
  const auto err =
      with_retries(timeout, [&](int timeout_ms) { return rd_kafka_committed(handle, partitions.get(), timeout_ms); });
  if (err) {
    const std::string topic = partitions.size() > 0 ? partitions[0].topic : "";
    throw Failure("cannot read the committed offsets of " + topic + ": " + rd_kafka_err2str(err) +
                  " — is the broker reachable?");
  }
}

}  // namespace shadowpipe::kafka
