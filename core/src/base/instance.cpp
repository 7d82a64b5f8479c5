#include "shadowpipe/instance.hpp"

#include <unistd.h>

#include <array>

namespace shadowpipe {

std::string host_name() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) return "unknown";
  return host.data();
}

std::string host_pid_id() { return host_name() + "-" + std::to_string(getpid()); }

}  // namespace shadowpipe
