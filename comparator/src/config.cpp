#include "comparator/config.hpp"

#include "shadowpipe/instance.hpp"

namespace shadowpipe::comparator {

Options with_instance_id(Options options) {
  if (options.comparator_id.empty()) options.comparator_id = host_pid_id();
  return options;
}

DeciderOptions decider_options(const Options& options) {
  DeciderOptions decider;
  decider.include_params = options.include_params;
  decider.comparator_id = options.comparator_id;
  decider.regression.min_samples = options.min_samples;
  decider.regression.ratio_factor = options.latency_ratio;
  decider.regression.min_difference_us = options.latency_min_difference_ms * 1000.0;
  decider.regression.median_factor = options.latency_median_factor;
  return decider;
}

kafka::Properties producer_properties(const Options& options) {
  // Long enough for a broker pause inside one cycle, short enough that a
  // crashed instance's open transaction does not hold readers for long.
  kafka::Properties properties = {{"linger.ms", "5"}, {"transaction.timeout.ms", "30000"}};
  properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
  return properties;
}

kafka::Properties consumer_properties(const Options& options) {
  kafka::Properties properties = {{"enable.partition.eof", "false"},
                                  // A crashed instance's partitions move within seconds, not 45 s.
                                  {"session.timeout.ms", "6000"},
                                  {"heartbeat.interval.ms", "1500"}};
  const kafka::Properties fetch = kafka::live_stream_fetch();
  properties.insert(properties.end(), fetch.begin(), fetch.end());
  properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
  properties.emplace_back("group.id", options.group);
  // A partition without a committed offset starts at its first record:
  // `latest` would skip what Kafka keeps, uncompared and unreported.
  properties.emplace_back("auto.offset.reset", "earliest");
  properties.emplace_back("partition.assignment.strategy", "range");
  properties.emplace_back("enable.auto.commit", "false");
  properties.emplace_back("enable.auto.offset.store", "false");
  properties.emplace_back("isolation.level", "read_committed");
  return properties;
}

}  // namespace shadowpipe::comparator
