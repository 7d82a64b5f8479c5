// The hand-over from the relay to the recorder: finished units go into a
// bounded queue (a full queue drops the unit and counts it; the relay never
// waits), and one thread of its own turns them into shadow.requests records
// through the producer library's Recorder (statement analysis, encoding,
// librdkafka's own bounded queue), off the relay's threads.
#pragma once

#include "shadowpipe/proxy/capture.hpp"
#include "shadowpipe/proxy/type_names.hpp"
#include "shadowpipe/recorder.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace shadowpipe::proxy {

struct RecordingCounters {
  uint64_t units = 0;       // handed to the recorder
  uint64_t statements = 0;  // in those units
  std::array<uint64_t, kUnitDrops.size()> dropped_by_reason{};
  uint64_t write_units_dropped = 0;  // of those, units that wrote: announced as gaps
  uint64_t dropped_total() const;
  uint64_t dropped(UnitDrop why) const { return dropped_by_reason[static_cast<size_t>(why)]; }
};

class RecordingQueue final : public UnitSink {
 public:
  // capacity: units waiting for the recording thread. registry: where the
  // counters are exported (may be null). type_names: names user types from
  // the primary's catalog on the recording thread (may be null: built-in
  // types only, as the in-application recorder does); must outlive this.
  RecordingQueue(producer::Recorder& recorder, size_t capacity, prometheus::Registry* registry,
                 CatalogTypeNames* type_names = nullptr);
  ~RecordingQueue() override;  // records what is queued, then stops
  RecordingQueue(const RecordingQueue&) = delete;
  RecordingQueue& operator=(const RecordingQueue&) = delete;

  void unit(CapturedUnit&& unit) override;
  void dropped(UnitDrop why, std::optional<std::string_view> wrote_under_key) override;

  RecordingCounters counters() const;
  // Waits until every unit queued so far went to the recorder.
  void drain();

 private:
  void record(CapturedUnit& unit);
  void run();

  producer::Recorder& recorder_;
  CatalogTypeNames* type_names_;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<CapturedUnit> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::atomic<uint64_t> units_{0};
  std::atomic<uint64_t> statements_{0};
  std::atomic<uint64_t> write_units_dropped_{0};
  prometheus::Counter* write_units_counter_ = nullptr;
  std::array<std::atomic<uint64_t>, kUnitDrops.size()> dropped_{};
  prometheus::Counter* units_counter_ = nullptr;
  prometheus::Counter* statements_counter_ = nullptr;
  std::array<prometheus::Counter*, kUnitDrops.size()> dropped_counters_{};
  std::thread thread_;
};

}  // namespace shadowpipe::proxy
