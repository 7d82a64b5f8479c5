// The demo shop's workload, shared by its parts: the shop's shapes, the operation mix, the run's shared counters and one worker connection.
#pragma once

#include "shadowpipe/pg.hpp"
#include "shadowpipe/shop_loadgen.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace shadowpipe::shop::workload {

using Params = std::vector<std::optional<std::string>>;
using Clock = std::chrono::steady_clock;

// The shapes seed.sql creates; shop-loadgen only touches seeded rows in the
// ways README.md describes.
inline constexpr int64_t kCustomers = 20'000;
inline constexpr int64_t kProducts = 2'000;
inline constexpr int64_t kSeededOrders = 240'000;

enum Operation {
  product_by_id, products_page, product_by_sku, category_report, customer_profile, customer_orders,
  order_items, status_report, place_order, pay_order, signup, kOperationCount
};
inline constexpr const char* kOperationNames[kOperationCount] = {
    "product_by_id", "products_page", "product_by_sku", "category_report", "customer_profile", "customer_orders",
    "order_items",   "status_report", "place_order",    "pay_order",       "signup"};

struct Shared {
  Shared(const LoadgenOptions& given, producer::Recorder* recorder_or_null, std::vector<std::string> product_prices,
         uint64_t tag)
      : options(given), recorder(recorder_or_null), prices(std::move(product_prices)), id_tag(tag) {}
  const LoadgenOptions& options;
  producer::Recorder* recorder;             // nullptr when shadowing is off
  std::vector<std::string> prices;          // by product id - 1, as the primary renders them
  uint64_t id_tag;                          // this run's range of new ids
  std::atomic<uint64_t> next_new_id{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::exception_ptr failure;
  std::array<std::atomic<uint64_t>, kOperationCount> units{};
  std::array<std::atomic<uint64_t>, kOperationCount> errors{};
  std::array<std::atomic<uint64_t>, kOperationCount> latency_us{};
  std::atomic<uint64_t> statements{0};
  // Of those, the ones a unit records (BEGIN, COMMIT, ROLLBACK are not), whether shadowing is on or off.
  std::atomic<uint64_t> unit_statements{0};

  // New rows get ids no seeded row and no other run has: this run's random
  // tag in the high bits, a counter below. Never a sequence (README.md).
  int64_t new_id() { return static_cast<int64_t>((id_tag << 40) | next_new_id.fetch_add(1)); }
};

// The thread CPU time spent inside calls, estimated from a sample: one call
// in kTimedEvery, drawn at random (a plain every-eighth would keep landing on
// the same call of a transaction), is timed with the thread's CPU clock and
// counts for that many. Reading that clock is a system call (about 0.5 us on
// this project's VMs) and part of two of them falls inside every timed
// interval: weighted by kTimedEvery, that was 4 us a timed call of nothing.
// So the clock's own share, measured at construction (the mean of empty
// intervals, the highest 2 % left out), is taken off each sample. The draw is a hash of
// a counter, so the caller's random sequence is the same timed or not.
class SampledThreadCpu {
 public:
  static constexpr uint64_t kTimedEvery = 8;

  SampledThreadCpu();

  template <class Call>
  void run(Call&& call) {
    uint64_t draw = ++calls_ * 0x9e3779b97f4a7c15ULL;
    draw ^= draw >> 29;
    if (((draw * 0xbf58476d1ce4e5b9ULL) >> 32) % kTimedEvery != 0) {
      call();
      return;
    }
    const int64_t before = thread_cpu_ns();
    call();
    total_ns_ += (thread_cpu_ns() - before - clock_overhead_ns_) * static_cast<int64_t>(kTimedEvery);
  }

  // The estimate so far; may be slightly negative for calls far cheaper than the clock.
  double seconds() const { return static_cast<double>(total_ns_) / 1e9; }
  // What one timed interval of nothing reads on this thread (taken off each sample).
  int64_t clock_overhead_ns() const { return clock_overhead_ns_; }

  static int64_t thread_cpu_ns();

 private:
  int64_t clock_overhead_ns_ = 0;
  int64_t total_ns_ = 0;
  uint64_t calls_ = 0;
};

// One connection to the primary running the mix: each operation executed,
// recorded (when shadowing) and counted.
class Worker {
 public:
  Worker(Shared& shared, int index, uint64_t seed)
      : shared_(shared), index_(index), random_(seed), connection_(shared.options.primary_dsn) {}

  void run(Clock::time_point start, Clock::time_point end);

  // This thread's CPU time spent inside the recorder's calls (begin, add,
  // record, commit, rollback): the application thread's share of shadowing.
  double recording_cpu_seconds() const { return recording_cpu_.seconds(); }

 private:
  // Customers are split between workers, so every unit of one customer (one
  // consistency key) is run and recorded by one thread, in commit order.
  int64_t customer();
  int64_t product() { return std::uniform_int_distribution<int64_t>(1, kProducts)(random_); }
  static std::string key_of(int64_t customer) { return "customer:" + std::to_string(customer); }

  struct Timed {
    pg::Result result;
    int64_t latency_us;
  };
  Timed exec(const std::string& sql, const Params& params);
  void count(Operation operation, bool failed, int64_t latency_us);
  void autocommit(Operation operation, const std::string& key, const std::string& sql, const Params& params);
  // BEGIN, the statements in order (stopping at the first error), then COMMIT
  // or ROLLBACK; recorded as one unit.
  void transaction(Operation operation, const std::string& key,
                   const std::vector<std::pair<const std::string*, Params>>& statements);
  void execute(Operation operation);
  void place(int64_t c);

  template <class Call>
  void recording(Call&& call) {
    recording_cpu_.run(std::forward<Call>(call));
  }

  Shared& shared_;
  int index_;
  SampledThreadCpu recording_cpu_;
  std::mt19937_64 random_;
  pg::Connection connection_;
  std::map<int64_t, std::vector<int64_t>> placed_by_customer_;
  std::deque<std::pair<int64_t, int64_t>> unpaid_;  // (order, customer)
};

}  // namespace shadowpipe::shop::workload
