// How a unit ends other than with its result. A fault that waiting cures is
// shadowpipe::Transient (connection_lost: reconnect and consult
// shadowpipe.applied; refused_for_now: run the same units again after a
// backoff), retried by PartitionWorker; UnitAbandoned is not an error but the
// shutdown: the unit in flight is left to the partition's next owner.
#pragma once

#include <stdexcept>

namespace shadowpipe::executor {

// The executor is shutting down past its deadline: the unit in flight was
// rolled back, not recorded; the partition's next owner runs it again.
class UnitAbandoned : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};


}  // namespace shadowpipe::executor
