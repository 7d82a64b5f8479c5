#include "recorder_state.hpp"

#include "shadowpipe/instance.hpp"

#include <pthread.h>

namespace shadowpipe::producer::detail {

RecorderState::RecorderState(RecorderConfig given)
    : config(std::move(given)),
      source(config.source + "@" + host_name()),
      analyzer(config.analyzer_cache),
      seed(config.sampling.seed != 0 ? config.sampling.seed : random_seed()) {
  auto check_rate = [](double rate, const std::string& what) {
    if (!(rate >= 0.0 && rate <= 1.0)) {
      throw Failure("sampling rate " + std::to_string(rate) + " for " + what + " is outside 0..1");
    }
  };
  check_rate(config.sampling.rate, "all statements");
  max_rate = config.sampling.rate;
  for (const auto& [fingerprint, rate] : config.sampling.by_fingerprint) {
    check_rate(rate, "fingerprint " + fingerprint);
    max_rate = std::max(max_rate, rate);
  }
  if (!config.sampling.sample_writes) max_rate = 1.0;
  if (config.topic.empty()) throw Failure("the requests topic name is empty: give one with --topic");

  std::shared_ptr<prometheus::Registry> registry = config.registry;
  if (!registry && !config.metrics_bind.empty()) {
    endpoint = std::make_unique<metrics::Endpoint>(config.metrics_bind);
    registry = endpoint->shared_registry();
  }
  if (registry) {
    Exported out;
    auto& units = prometheus::BuildCounter()
                      .Name("shadowpipe_producer_units_total")
                      .Help("Units of work by outcome: recorded, then published or dropped by reason")
                      .Register(*registry);
    out.recorded = &units.Add({{"outcome", "recorded"}});
    out.published = &units.Add({{"outcome", "published"}});
    auto& dropped_family = prometheus::BuildCounter()
                               .Name("shadowpipe_producer_dropped_total")
                               .Help("Recorded units not published, by reason")
                               .Register(*registry);
    for (auto reason : kDropReasons) {
      out.dropped[static_cast<size_t>(reason)] = &dropped_family.Add({{"reason", std::string(to_string(reason))}});
    }
    auto& left_out = prometheus::BuildCounter()
                         .Name("shadowpipe_producer_units_left_out_total")
                         .Help("Units never handed over for publishing: rolled back (by policy) or abandoned")
                         .Register(*registry);
    out.rollbacks_discarded = &left_out.Add({{"why", "rollback_policy"}});
    out.abandoned = &left_out.Add({{"why", "abandoned"}});
    out.pending = &prometheus::BuildGauge()
                       .Name("shadowpipe_producer_pending")
                       .Help("Units enqueued whose delivery is not yet reported")
                       .Register(*registry)
                       .Add({});
    out.gaps_announced = &prometheus::BuildCounter()
                              .Name("shadowpipe_producer_gaps_announced_total")
                              .Help("Gap records published for dropped write units (one per partition and recovery)")
                              .Register(*registry)
                              .Add({});
    out.gap_units_announced = &prometheus::BuildCounter()
                                   .Name("shadowpipe_producer_gap_units_announced_total")
                                   .Help("Dropped write units announced by gap records")
                                   .Register(*registry)
                                   .Add({});
    out.gap_units_pending = &prometheus::BuildGauge()
                                 .Name("shadowpipe_producer_gap_units_pending")
                                 .Help("Dropped write units waiting for Kafka to accept their gap record")
                                 .Register(*registry)
                                 .Add({});
    exported = std::move(out);
  }

  kafka::Properties properties = default_kafka_properties();
  properties.insert(properties.end(), config.kafka.begin(), config.kafka.end());
  producer = std::make_unique<kafka::Producer>(
      properties, [this](const rd_kafka_message_t& message) { on_delivery(message); });
  topic = producer->topic(config.topic);
}

RecorderState::~RecorderState() {
  settle_undelivered();
  export_metrics();
}

void RecorderState::on_delivery(const rd_kafka_message_t& message) {
  const bool write = message._private == &kWriteUnitTag;
  if (message._private != nullptr && !write) {  // a gap record
    std::unique_ptr<GapTag> gap(static_cast<GapTag*>(message._private));
    if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      gaps_announced.fetch_add(1, std::memory_order_relaxed);
      gap_units_announced.fetch_add(gap->units, std::memory_order_relaxed);
    } else {  // announced again later
      std::lock_guard lock(gap_mutex);
      dropped_writes[gap->partition] += gap->units;
      gap_units_pending.fetch_add(gap->units, std::memory_order_relaxed);
      delivered_since_drop.store(false, std::memory_order_relaxed);
    }
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    published.fetch_add(1, std::memory_order_relaxed);
    delivered_since_drop.store(true, std::memory_order_relaxed);
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
    drop(DropReason::too_large);
  } else {
    // A record sent whose acknowledgement was lost may be in the topic all
    // the same: counted apart, so "failed" means not written.
    const bool maybe = rd_kafka_message_status(&message) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    drop(maybe ? DropReason::possibly_delivered : DropReason::delivery_failed);
    if (write) drop_write({static_cast<const char*>(message.key), message.key_len}, message.partition);
  }
  note_error(std::string("delivery to ") + config.topic + " failed: " + rd_kafka_err2str(message.err));
}

void RecorderState::drop_write(std::string_view key, int32_t partition) {
  constexpr size_t kMaxUnplaced = 1 << 20;
  const int count = partitions.load(std::memory_order_relaxed);
  if (partition < 0 && count > 0) partition = partition_of(key, count);
  std::lock_guard lock(gap_mutex);
  delivered_since_drop.store(false, std::memory_order_relaxed);
  if (partition >= 0) {
    ++dropped_writes[partition];
  } else if (unplaced_writes.size() < kMaxUnplaced) {
    unplaced_writes.push_back(murmur2(key) & 0x7fffffff);
  } else {
    // Never talked to the broker and a million write units dropped: the
    // rest cannot be placed; say so rather than announce a wrong partition.
    note_error("write units dropped before the topic's partition count was known: too many to place");
    return;
  }
  gap_units_pending.fetch_add(1, std::memory_order_relaxed);
}

void RecorderState::place_unplaced() {
  const int count = partitions.load(std::memory_order_relaxed);
  if (count <= 0) return;
  for (uint32_t hash : unplaced_writes) ++dropped_writes[static_cast<int32_t>(hash % static_cast<uint32_t>(count))];
  unplaced_writes.clear();
}

void RecorderState::refresh_partitions() {
  const auto now = std::chrono::steady_clock::now();
  const bool known = partitions.load(std::memory_order_relaxed) > 0;
  if (now - partitions_read < (known ? std::chrono::seconds(10) : std::chrono::seconds(1))) return;
  partitions_read = now;
  try {
    if (auto count = kafka::partition_count(producer->get(), config.topic, std::chrono::milliseconds(2000))) {
      partitions.store(*count, std::memory_order_relaxed);
    }
  } catch (const Failure&) {
    // The broker is not reachable: keep what was known, try again later.
  }
}

// Once Kafka accepts records again, one gap record per partition that lost
// write units, on that partition, announcing how many; the counts restart.
// A gap record that fails is added back and announced again later.
void RecorderState::announce_gaps() {
  if (gap_units_pending.load(std::memory_order_relaxed) == 0) return;
  if (!delivered_since_drop.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(gap_mutex);
  place_unplaced();
  for (auto it = dropped_writes.begin(); it != dropped_writes.end();) {
    const auto [partition, units] = *it;
    if (units == 0) {
      it = dropped_writes.erase(it);
      continue;
    }
    const wire::Gap gap = wire::producer_dropped_gap(source, partition, units);
    auto tag = std::make_unique<GapTag>(GapTag{partition, units});
    if (producer->produce(topic.get(), partition, {}, wire::encode(gap), tag.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++it;  // kept: tried again at the next poll
      continue;
    }
    tag.release();  // owned by the delivery report
    gap_units_pending.fetch_sub(units, std::memory_order_relaxed);
    it = dropped_writes.erase(it);
  }
}

// What is still queued when the recorder goes away is purged; librdkafka then
// reports each purged record as failed, so the counters still add up.
void RecorderState::settle_undelivered() {
  if (!producer) return;
  rd_kafka_purge(producer->get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  producer->poll(std::chrono::milliseconds(0));
  // In-flight purges are reported once their requests return; bound the wait.
  for (int attempt = 0; attempt < 50 && producer->outstanding() > 0; ++attempt) {
    producer->poll(std::chrono::milliseconds(10));
  }
}

Counters RecorderState::snapshot() const {
  Counters out;
  // Settled outcomes first, recorded last: a concurrent recording can then
  // only make pending look larger, never negative.
  out.published = published.load(std::memory_order_relaxed);
  for (size_t i = 0; i < dropped.size(); ++i) out.dropped_by_reason[i] = dropped[i].load(std::memory_order_relaxed);
  out.rollbacks_discarded = rollbacks_discarded.load(std::memory_order_relaxed);
  out.abandoned = abandoned.load(std::memory_order_relaxed);
  out.gaps_announced = gaps_announced.load(std::memory_order_relaxed);
  out.gap_units_announced = gap_units_announced.load(std::memory_order_relaxed);
  out.gap_units_pending = gap_units_pending.load(std::memory_order_relaxed);
  out.recorded = recorded.load(std::memory_order_relaxed);
  return out;
}

void RecorderState::export_metrics() {
  std::lock_guard lock(export_mutex);
  if (!exported) return;
  const Counters now = snapshot();
  auto add = [](prometheus::Counter* counter, uint64_t current, uint64_t& last) {
    if (current > last) counter->Increment(static_cast<double>(current - last));
    last = current;
  };
  auto& last = exported->last;
  add(exported->recorded, now.recorded, last.recorded);
  add(exported->published, now.published, last.published);
  for (size_t i = 0; i < kDropReasons.size(); ++i) {
    add(exported->dropped[i], now.dropped_by_reason[i], last.dropped_by_reason[i]);
  }
  add(exported->rollbacks_discarded, now.rollbacks_discarded, last.rollbacks_discarded);
  add(exported->abandoned, now.abandoned, last.abandoned);
  exported->pending->Set(static_cast<double>(now.pending()));
  add(exported->gaps_announced, now.gaps_announced, last.gaps_announced);
  add(exported->gap_units_announced, now.gap_units_announced, last.gap_units_announced);
  exported->gap_units_pending->Set(static_cast<double>(now.gap_units_pending));
}

void RecorderState::start_polling() {
  poller = std::thread([this] {
    while (!stop_polling.load(std::memory_order_relaxed)) {
      producer->poll(std::chrono::milliseconds(100));
      refresh_partitions();
      announce_gaps();
      export_metrics();
    }
  });
  pthread_setname_np(poller.native_handle(), kPollerThreadName);
}

void RecorderState::finish_polling() {
  stop_polling.store(true, std::memory_order_relaxed);
  rd_kafka_yield(producer->get());  // wakes a poll() that is waiting
  if (poller.joinable()) poller.join();
}

}  // namespace shadowpipe::producer::detail
