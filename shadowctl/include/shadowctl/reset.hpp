// `shadowctl reset`: rebuilds the shadow from the primary (a consistent
// snapshot through pg_dump, or a given dump), applies the migration files,
// records the snapshot time in the shadow, and moves the executor group's
// offsets to the first request after the snapshot, so the shadow starts in
// step with the traffic it is about to replay.
#pragma once

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shadowpipe::shadowctl {

struct ResetOptions {
  std::string primary_dsn;
  std::string shadow_dsn;
  std::string dump_file;                   // restore this instead of dumping the primary
  std::optional<int64_t> snapshot_time_ms; // required with dump_file: when the dump was taken
  std::vector<std::string> migrations;     // SQL files applied to the shadow, in order
  std::string group = "shadow-executor";
  std::string requests_topic = shadowpipe::wire::default_topics::requests;
  std::string pg_bin;                      // folder of pg_dump, pg_restore, psql; empty: PATH
  // Objects of the migrated shadow that reach outside it, accepted by name
  // (see shadowpipe/preflight.hpp); any other such object refuses the reset.
  std::vector<std::string> allow_outside_reach;
};

struct ResetOutcome {
  int64_t snapshot_time_ms = 0;
  std::vector<std::string> steps;  // what was done, one line each
};

// Throws shadowpipe::Failure, saying which step failed and why; refuses while
// members of the executor group are running, and when the migrated shadow
// holds an object that can reach outside it (the executor's start-up guard)
// that allow_outside_reach does not name. The dump lives in a private
// directory under TMPDIR, removed on every exit path; passwords never reach
// a command line (see pg_tools.hpp).
ResetOutcome reset_shadow(const shadowpipe::kafka::Properties& kafka, const ResetOptions& options);

// The executor group's live member count (0 when the group is empty or unknown).
int active_members(const shadowpipe::kafka::Properties& kafka, const std::string& group);

}  // namespace shadowpipe::shadowctl
