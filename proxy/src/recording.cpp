#include "shadowpipe/proxy/recording.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/resource.h>
#include <unistd.h>

namespace shadowpipe::proxy {

uint64_t RecordingCounters::dropped_total() const {
  uint64_t total = 0;
  for (auto count : dropped_by_reason) total += count;
  return total;
}

RecordingQueue::RecordingQueue(producer::Recorder& recorder, size_t capacity, prometheus::Registry* registry,
                               CatalogTypeNames* type_names)
    : recorder_(recorder), type_names_(type_names), capacity_(capacity) {
  if (registry != nullptr) {
    units_counter_ = &prometheus::BuildCounter()
                          .Name("shadowpipe_proxy_units_recorded_total")
                          .Help("Units captured and handed to the recorder (its own counters follow them to Kafka)")
                          .Register(*registry)
                          .Add({});
    statements_counter_ = &prometheus::BuildCounter()
                               .Name("shadowpipe_proxy_statements_recorded_total")
                               .Help("Statements in the units handed to the recorder")
                               .Register(*registry)
                               .Add({});
    write_units_counter_ = &prometheus::BuildCounter()
                                .Name("shadowpipe_proxy_write_units_dropped_total")
                                .Help("Dropped units that wrote on the primary: announced downstream as gaps")
                                .Register(*registry)
                                .Add({});
    auto& family = prometheus::BuildCounter()
                       .Name("shadowpipe_proxy_units_dropped_total")
                       .Help("Units captured but not recorded, by reason")
                       .Register(*registry);
    for (auto why : kUnitDrops) {
      dropped_counters_[static_cast<size_t>(why)] = &family.Add({{"reason", std::string(to_string(why))}});
    }
  }
  thread_ = std::thread([this] { run(); });
}

RecordingQueue::~RecordingQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void RecordingQueue::unit(CapturedUnit&& unit) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() < capacity_ && !stopping_) {
      queue_.push_back(std::move(unit));
      wake_.notify_one();
      return;
    }
  }
  const bool wrote = unit.writes && unit.tx != wire::TxMode::rollback;
  dropped(UnitDrop::queue_full, wrote ? std::optional<std::string_view>(unit.key) : std::nullopt);
}

void RecordingQueue::dropped(UnitDrop why, std::optional<std::string_view> wrote_under_key) {
  dropped_[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  if (auto* counter = dropped_counters_[static_cast<size_t>(why)]) counter->Increment();
  if (wrote_under_key) {
    // The recorder announces it (a gap record on the key's partition) once
    // Kafka takes records; the relay's thread only notes it.
    recorder_.announce_dropped_write(*wrote_under_key);
    write_units_dropped_.fetch_add(1, std::memory_order_relaxed);
    if (write_units_counter_) write_units_counter_->Increment();
  }
}

RecordingCounters RecordingQueue::counters() const {
  RecordingCounters out;
  out.units = units_.load(std::memory_order_relaxed);
  out.statements = statements_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kUnitDrops.size(); ++i) out.dropped_by_reason[i] = dropped_[i].load(std::memory_order_relaxed);
  out.write_units_dropped = write_units_dropped_.load(std::memory_order_relaxed);
  return out;
}

void RecordingQueue::drain() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void RecordingQueue::record(CapturedUnit& unit) {
  std::vector<producer::ParamView> params;
  producer::Unit recorded = recorder_.begin(unit.session, unit.key, unit.autocommit);
  for (auto& statement : unit.statements) {
    params.clear();
    for (const auto& param : statement.params) {
      params.push_back(param ? producer::ParamView(*param) : std::nullopt);
    }
    if (type_names_) type_names_->name(unit.database, statement.result.columns);
    if (statement.binding.empty() && !statement.copy_data) {
      recorded.add_result(statement.sql, params, std::move(statement.result));
    } else {
      recorded.add_result(statement.sql, params, std::move(statement.result), std::move(statement.binding),
                          std::move(statement.copy_data));
    }
  }
  if (unit.tx == wire::TxMode::rollback) {
    recorded.rollback();
  } else {
    recorded.commit();
  }
  units_.fetch_add(1, std::memory_order_relaxed);
  statements_.fetch_add(unit.statements.size(), std::memory_order_relaxed);
  if (units_counter_) units_counter_->Increment();
  if (statements_counter_) statements_counter_->Increment(static_cast<double>(unit.statements.size()));
}

void RecordingQueue::run() {
  // The relay's threads come first: when the CPU is short, recording falls
  // behind (and its queue drops, counted) rather than the application's
  // traffic waiting. Linux applies a nice value to the calling thread alone.
  [[maybe_unused]] int ignored = setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    CapturedUnit unit = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    record(unit);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
}

}  // namespace shadowpipe::proxy
