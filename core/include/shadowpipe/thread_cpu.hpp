// The CPU time of this process's threads, one by one, for the benchmarks that
// say where a program's CPU went (which of its threads, librdkafka's or its own).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace shadowpipe {

struct ThreadCpu {
  pid_t tid = 0;
  std::string name;    // as the thread named itself (pthread_setname_np; "rdk:broker1", ...)
  double seconds = 0;  // user + system time so far
};

// Each live thread of this process, from /proc/self/task/<tid>/stat (clock
// ticks). A thread that ends while it is read is left out.
std::vector<ThreadCpu> threads_cpu();

}  // namespace shadowpipe
