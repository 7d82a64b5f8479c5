#include "shadowpipe/thread_cpu.hpp"

#include <pthread.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <ctime>

namespace sp = shadowpipe;

// A thread that spins for a while is found under its own name with about
// that much CPU, apart from this (the test's) thread.
TEST(ThreadCpu, AThreadThatSpinsIsFoundByNameWithItsCpuTime) {
  std::atomic<bool> spun{false};
  std::atomic<bool> done{false};
  std::thread spinner([&] {
    pthread_setname_np(pthread_self(), "cpu-spinner");
    // Until its own CPU clock says 200 ms, however loaded the machine.
    timespec used{};
    volatile uint64_t sink = 0;
    do {
      for (int i = 0; i < 100000; ++i) sink = sink + 1;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
    } while (used.tv_sec == 0 && used.tv_nsec < 200'000'000);
    spun = true;
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!spun) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto threads = sp::threads_cpu();
  done = true;
  spinner.join();
  const auto found = std::find_if(threads.begin(), threads.end(), [](const sp::ThreadCpu& t) { return t.name == "cpu-spinner"; });
  ASSERT_NE(found, threads.end());
  EXPECT_NE(found->tid, getpid());
  // 200 ms of CPU, read in clock ticks (10 ms here).
  EXPECT_GE(found->seconds, 0.15);
  EXPECT_LE(found->seconds, 5.0);
  const auto self = std::find_if(threads.begin(), threads.end(), [](const sp::ThreadCpu& t) { return t.tid == getpid(); });
  ASSERT_NE(self, threads.end()) << "the main thread is listed too";
}
