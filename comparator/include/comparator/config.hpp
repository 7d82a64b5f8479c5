// What the comparator's options turn into: its instance id, the decider's
// rules and the Kafka properties of its consumer and transactional producer.
#pragma once

#include "comparator/decider.hpp"
#include "comparator/service.hpp"

namespace shadowpipe::comparator {

// The options with an instance id filled in (host-pid when none was given).
Options with_instance_id(Options options);

DeciderOptions decider_options(const Options& options);

// The transactional producer's properties; -X settings apply on top.
kafka::Properties producer_properties(const Options& options);

// The group consumer's properties; the ones the join and the lossless commit
// depend on are set after -X settings, so those cannot override them.
kafka::Properties consumer_properties(const Options& options);

}  // namespace shadowpipe::comparator
