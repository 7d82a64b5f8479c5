#include "shadow_executor/options.hpp"

#include "shadowpipe/instance.hpp"
#include "shadowpipe/result.hpp"

namespace shadowpipe::executor {

std::string_view to_string(WritesMode mode) {
  switch (mode) {
    case WritesMode::apply: return "apply";
    case WritesMode::rollback: return "rollback";
    case WritesMode::skip: return "skip";
  }
  return "unknown";
}

WritesMode parse_writes_mode(std::string_view text) {
  if (text == "apply") return WritesMode::apply;
  if (text == "rollback") return WritesMode::rollback;
  if (text == "skip") return WritesMode::skip;
  throw Failure("--writes " + std::string(text) + " is not one of apply, rollback, skip");
}

std::string default_executor_id() { return host_pid_id(); }

std::optional<DirectBatches> direct_batches_named(std::string_view name) {
  if (name == "off") return DirectBatches::off;
  if (name == "safe") return DirectBatches::safe;
  if (name == "all") return DirectBatches::all;
  return std::nullopt;
}

}  // namespace shadowpipe::executor
