// shadow-proxy as a program: the relay, the capture's recording queue, the
// recorder and /metrics, wired together; main.cpp only parses options.
#pragma once

#include "shadowpipe/proxy/server.hpp"
#include "shadowpipe/recorder.hpp"

#include <atomic>
#include <ostream>
#include <string>

namespace shadowpipe::proxy {

struct ProgramOptions {
  ProxyOptions relay;
  bool capture = true;                 // false: relay only, nothing recorded
  producer::RecorderConfig recorder;   // Kafka, topic, sampling, normalization
  size_t queue_units = 10'000;         // captured units waiting for the recording thread
  std::string metrics_bind;            // "host:port" for /metrics; empty: not served
  std::string catalog_dsn;             // the proxy's own connections naming user types; empty: none
};

// Serves until `stop` becomes true, then closes every connection, records
// what was captured, flushes, and prints one summary line to `out`
// ("shadow-proxy: connections=... units=... dropped=..."). Throws Failure
// for a configuration that cannot work (a port taken, a broker list empty).
int run(ProgramOptions options, const std::atomic<bool>& stop, std::ostream& out);

}  // namespace shadowpipe::proxy
