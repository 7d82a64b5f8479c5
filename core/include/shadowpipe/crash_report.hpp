// What a program says when it dies of a fault (SIGSEGV, SIGBUS, SIGILL,
// SIGFPE, SIGABRT): "<program>: crashed: <signal>" and a backtrace on
// stderr, then it dies of the same signal, so its exit status is unchanged.
// A crash in a service then names where it happened in the log the operator
// (or a CI run) has, instead of an exit status alone. Not installed in a
// sanitizer build, whose own report is better.
#pragma once

namespace shadowpipe {

// Installs the handlers; `program` is copied. Safe to call more than once.
void install_crash_report(const char* program);

}  // namespace shadowpipe
