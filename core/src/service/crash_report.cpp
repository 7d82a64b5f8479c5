#include "shadowpipe/crash_report.hpp"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstring>

namespace shadowpipe {

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr std::array<int, 5> kFatalSignals = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

char program_name[128] = "shadowpipe";
// A stack of its own: a fault from a stack overflow has none left.
alignas(16) char alternate_stack[64 * 1024];

void write_text(const char* text) {
  size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t written = ::write(STDERR_FILENO, text, left);
    if (written <= 0) return;
    text += written;
    left -= static_cast<size_t>(written);
  }
}

// Only async-signal-safe calls, but for backtrace(), whose first call loads
// libgcc: install_crash_report() makes that call before any fault can come.
void on_fatal_signal(int signal) {
  write_text(program_name);
  write_text(": crashed: ");
  write_text(sigabbrev_np(signal) != nullptr ? sigabbrev_np(signal) : "signal");
  write_text(" (");
  write_text(sigdescr_np(signal) != nullptr ? sigdescr_np(signal) : "?");
  write_text("); backtrace, innermost first (please report it with the log):\n");
  std::array<void*, 64> frames{};
  const int depth = backtrace(frames.data(), static_cast<int>(frames.size()));
  backtrace_symbols_fd(frames.data(), depth, STDERR_FILENO);
  // SA_RESETHAND put the default action back: dying of the same signal
  // keeps the exit status (and a core, where cores are kept).
  raise(signal);
}

}  // namespace

void install_crash_report(const char* program) {
  if constexpr (kSanitized) return;
  std::strncpy(program_name, program, sizeof(program_name) - 1);
  program_name[sizeof(program_name) - 1] = '\0';
  std::array<void*, 1> warm{};
  backtrace(warm.data(), 1);
  stack_t stack{};
  stack.ss_sp = alternate_stack;
  stack.ss_size = sizeof(alternate_stack);
  sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int signal : kFatalSignals) sigaction(signal, &action, nullptr);
}

}  // namespace shadowpipe
