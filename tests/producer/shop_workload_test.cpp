// The loadgen's estimate of the application threads' CPU inside recorder
// calls: what bench/loadgen_overhead.sh reports as "workers-recording".
#include "shop_workload.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

namespace shadowpipe::shop::workload {
namespace {

TEST(SampledThreadCpu, CallsThatDoNothingAreEstimatedAtNearlyNothing) {
  // Before the clock's own share was taken off, each timed call of nothing
  // counted kTimedEvery times the part of two clock reads inside it: about
  // 500 ns a call on average here, most of the "recording" figure per unit.
  SampledThreadCpu timer;
  constexpr int kCalls = 80'000;
  for (int i = 0; i < kCalls; ++i) timer.run([] {});
  const double per_call_ns = timer.seconds() * 1e9 / kCalls;
  EXPECT_LT(std::abs(per_call_ns), 150.0) << "clock overhead taken off: " << timer.clock_overhead_ns() << " ns";
}

TEST(SampledThreadCpu, CallsThatWorkAreEstimatedAtWhatTheyCost) {
  // The correction must not eat real work: the sampled estimate of calls of
  // about 20 us each is close to the CPU the whole loop took.
  SampledThreadCpu timer;
  volatile uint64_t sink = 0;
  auto work = [&sink] {
    uint64_t value = sink;
    for (int i = 0; i < 20'000; ++i) value = value * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = value;
  };
  constexpr int kCalls = 4'000;
  const int64_t before = SampledThreadCpu::thread_cpu_ns();
  for (int i = 0; i < kCalls; ++i) timer.run(work);
  const double whole_loop = static_cast<double>(SampledThreadCpu::thread_cpu_ns() - before) / 1e9;
  EXPECT_NEAR(timer.seconds(), whole_loop, 0.15 * whole_loop);
}

}  // namespace
}  // namespace shadowpipe::shop::workload
