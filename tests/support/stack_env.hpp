// How integration tests find the local stack: through the variables that
// `scripts/stack up` prints. A missing variable fails the test (never skips):
// an integration test that did not reach real servers has proven nothing.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace shadowpipe::testing {

inline std::string stack_variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string(name) +
                             " is not set: run the suite through scripts/test, or eval \"$(scripts/stack up)\" first");
  }
  return value;
}

inline std::string brokers() { return stack_variable("SHADOWPIPE_BROKERS"); }
inline std::string primary_dsn() { return stack_variable("PRIMARY_DSN"); }
inline std::string shadow_dsn() { return stack_variable("SHADOW_DSN"); }

// A name no earlier run used, so tests never read each other's records.
// Unique across the test processes ctest runs side by side, too: two of them
// once took the same microsecond and shared each other's topics.
inline std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return prefix + "-" + std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(now).count()) + "-" +
         std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace shadowpipe::testing
