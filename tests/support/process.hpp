// Child processes of a test: the real program binaries, spawned with their
// stderr in a log, stopped with a signal, and killed and reaped on every path.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace shadowpipe::testing {

// Spawns `binary` with `args`; `log`, when given, receives its stderr.
inline pid_t spawn_process(const std::string& binary, const std::vector<std::string>& args, const std::string& log = {}) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + binary);
  return pid;
}

// Prints every thread's stack of a process that is about to be killed for
// not exiting, on the test's stderr, when gdb is installed: a hang seen once
// in a full suite run then names the wait it was in.
inline void print_stacks(pid_t pid) {
  if (std::system("command -v gdb >/dev/null 2>&1") != 0) return;
  std::fprintf(stderr, "process %d did not exit in time; its threads:\n", static_cast<int>(pid));
  const std::string command = "gdb -p " + std::to_string(pid) + " -batch -nx -ex 'thread apply all bt' 2>&1 1>&2";
  if (std::system(command.c_str()) != 0) std::fprintf(stderr, "(gdb could not attach)\n");
}

// Waits for the process to exit; its exit status, 128 + signal, or -1 when
// it had to be killed at the deadline (its stacks printed first).
inline int wait_exit(pid_t pid, std::chrono::seconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  print_stacks(pid);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// A spawned process that is killed and reaped on every path unless the test
// reaped it itself.
class ChildProcess {
 public:
  ChildProcess() = default;
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  ChildProcess& operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
      reap();
      pid_ = std::exchange(other.pid_, -1);
    }
    return *this;
  }
  ~ChildProcess() { reap(); }
  pid_t pid() const { return pid_; }
  bool alive() {
    if (pid_ <= 0) return false;
    if (waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;  // reaped: nothing left to kill
    return false;
  }
  // SIGTERM, then waits; returns the exit status (see wait_exit).
  int terminate(std::chrono::seconds deadline) {
    kill(pid_, SIGTERM);
    const int status = wait_exit(pid_, deadline);
    pid_ = -1;
    return status;
  }
  void kill_hard() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  void reap() { kill_hard(); }
  pid_t pid_ = -1;
};

}  // namespace shadowpipe::testing
