#include "shadowpipe/proxy/program.hpp"

#include "shadowpipe/metrics.hpp"
#include "shadowpipe/proxy/recording.hpp"

#include <chrono>
#include <iostream>
#include <optional>
#include <thread>

namespace shadowpipe::proxy {

int run(ProgramOptions options, const std::atomic<bool>& stop, std::ostream& out) {
  std::optional<metrics::Endpoint> endpoint;
  auto registry = std::make_shared<prometheus::Registry>();
  if (!options.metrics_bind.empty()) {
    endpoint.emplace(options.metrics_bind);
    registry = endpoint->shared_registry();
  }
  RelayMetrics relay_metrics(*registry);
  std::optional<producer::Recorder> recorder;
  std::optional<CatalogTypeNames> type_names;
  std::optional<RecordingQueue> queue;
  const digest::NormalizationConfig normalization = options.recorder.normalization;
  if (options.capture) {
    options.recorder.registry = registry;
    recorder.emplace(options.recorder);
    if (!options.catalog_dsn.empty()) type_names.emplace(options.catalog_dsn, std::cerr);
    queue.emplace(*recorder, options.queue_units, registry.get(), type_names ? &*type_names : nullptr);
  }
  {
    Server server(options.relay, queue ? &*queue : nullptr, normalization, &relay_metrics);
    server.start();
    out << "shadow-proxy: listening on " << options.relay.listen_host << ":" << server.port() << ", primary "
        << options.relay.primary_host << ":" << options.relay.primary_port
        << (options.capture ? ", recording to " + options.recorder.topic : std::string(", not recording")) << std::endl;
    while (!stop.load(std::memory_order_relaxed)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  }
  out << "shadow-proxy: connections=" << static_cast<uint64_t>(relay_metrics.connections->Value())
      << " protocol_errors=" << static_cast<uint64_t>(relay_metrics.protocol_errors->Value());
  if (queue) {
    queue->drain();
    recorder->flush(options.recorder.flush_timeout);
    const auto captured = queue->counters();
    const auto recorded = recorder->counters();
    out << " units=" << captured.units << " statements=" << captured.statements;
    for (auto why : kUnitDrops) out << " dropped_" << to_string(why) << "=" << captured.dropped(why);
    out << " write_units_dropped=" << captured.write_units_dropped << " gaps_announced=" << recorded.gaps_announced
        << " gap_units_announced=" << recorded.gap_units_announced;
    if (type_names) out << " catalog_queries=" << type_names->queries() << " catalog_failures=" << type_names->failures();
    out << " published=" << recorded.published << " recorder_dropped=" << recorded.dropped()
        << " pending=" << recorded.pending();
  }
  out << std::endl;
  return 0;
}

}  // namespace shadowpipe::proxy
