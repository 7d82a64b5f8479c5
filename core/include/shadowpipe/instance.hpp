// How a running program names itself when no id is configured: the default
// executor and comparator ids, and the "@<host>" of a recorder's source.
#pragma once

#include <string>

namespace shadowpipe {

// This machine's host name; "unknown" when it cannot be read.
std::string host_name();

// "<host>-<pid>": unique among the running instances of a program, and never
// reused by a restarted one (so a restart is a new member, not a return).
std::string host_pid_id();

}  // namespace shadowpipe
