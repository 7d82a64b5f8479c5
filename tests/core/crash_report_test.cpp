// A program that dies of a fault says so, with where, and still dies of it.
#include "shadowpipe/crash_report.hpp"

#include <gtest/gtest.h>

#include <csignal>

// Exported (external linkage; the build links with -rdynamic) and not
// inlined, so the backtrace can name it.
// The write after the raise keeps it from being a tail call (whose frame
// would be its caller's).
volatile int crash_report_test_after_the_fault = 0;
[[gnu::noinline]] void crash_report_test_faulting_function() {
  std::raise(SIGSEGV);
  crash_report_test_after_the_fault = 1;
}

namespace {

TEST(CrashReport, AFaultPrintsTheSignalAndABacktraceAndStillDiesOfIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        shadowpipe::install_crash_report("crash-test");
        crash_report_test_faulting_function();
      },
      ::testing::KilledBySignal(SIGSEGV),
      "crash-test: crashed: SEGV \\(Segmentation fault\\); backtrace(.|\n)*crash_report_test_faulting_function");
}

TEST(CrashReport, AnAbortIsReportedToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        shadowpipe::install_crash_report("crash-test");
        std::abort();
      },
      ::testing::KilledBySignal(SIGABRT), "crash-test: crashed: ABRT");
}

}  // namespace
