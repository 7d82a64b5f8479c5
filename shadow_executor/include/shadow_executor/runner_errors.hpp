// How a unit ends other than with its result: the exceptions the runner
// throws for its caller (PartitionWorker) to retry the unit, never recorded
// as the unit's result.
#pragma once

#include <stdexcept>

namespace shadowpipe::executor {

// The shadow connection broke mid-unit: the transaction did not commit (or
// its outcome is unknown); reconnect and consult shadowpipe.applied.
class ConnectionLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The executor is shutting down past its deadline: the unit in flight was
// rolled back, not recorded; the partition's next owner runs it again.
class UnitAbandoned : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The shadow refused for a passing cause (transient_sqlstate): nothing
// committed; the same units run again after a backoff. Never a unit's
// error, never counted toward its failure limit.
class TransientFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace shadowpipe::executor
