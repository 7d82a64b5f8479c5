#include "shadowctl/pg_tools.hpp"

#include "shadowpipe/result.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace shadowpipe::shadowctl {

using shadowpipe::Failure;

namespace {

// Set by the handler; read by the thread that runs the tools.
volatile std::sig_atomic_t interrupted_by = 0;
volatile std::sig_atomic_t running_tool = 0;  // pid of the tool running, 0 when none
struct sigaction previous_int {}, previous_term {};

extern "C" void on_interrupt(int signal) {
  interrupted_by = signal;
  const pid_t tool = running_tool;
  if (tool > 0) kill(tool, signal);  // async-signal-safe: the tool stops, waitpid returns
}

std::string signal_name(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  return abbreviation ? "SIG" + std::string(abbreviation) : "signal " + std::to_string(signal);
}

// A .pgpass line that matches any server: "*:*:*:*:password", with ':' and
// '\' escaped as libpq reads them.
std::string passfile_line(const std::string& password) {
  std::string line = "*:*:*:*:";
  for (char c : password) {
    if (c == ':' || c == '\\') line += '\\';
    line += c;
  }
  return line + "\n";
}

// The caller's environment, but the password the tool needs comes from our
// file: a PGPASSWORD inherited would win over it.
std::vector<std::string> tool_environment(const std::filesystem::path& passfile) {
  std::vector<std::string> out;
  for (char** entry = environ; *entry; ++entry) {
    const std::string_view variable(*entry);
    if (!passfile.empty() && (variable.starts_with("PGPASSWORD=") || variable.starts_with("PGPASSFILE="))) continue;
    out.emplace_back(variable);
  }
  if (!passfile.empty()) out.push_back("PGPASSFILE=" + passfile.string());
  return out;
}

std::vector<char*> raw(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& value : strings) out.push_back(value.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

PrivateWorkdir::PrivateWorkdir(std::string_view prefix) {
  const auto parent = std::filesystem::temp_directory_path();
  std::string name = (parent / (std::string(prefix) + "-XXXXXX")).string();
  if (!mkdtemp(name.data())) {  // mode 0700 whatever the umask
    throw Failure("cannot create a private directory in " + parent.string() + ": " + std::strerror(errno) +
                  " — set TMPDIR to a writable folder");
  }
  path_ = name;
}

PrivateWorkdir::~PrivateWorkdir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path PrivateWorkdir::private_file(const std::string& name, std::string_view content) const {
  const auto file = path_ / name;
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw Failure("cannot create " + file.string() + ": " + std::strerror(errno));
  const bool written = fchmod(fd, 0600) == 0 &&
                       (content.empty() || write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  const int error = errno;  // before close() may change it
  close(fd);
  if (!written) throw Failure("cannot write " + file.string() + ": " + std::strerror(error));
  return file;
}

InterruptGuard::InterruptGuard() {
  interrupted_by = 0;
  running_tool = 0;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: waitpid returns EINTR and looks again
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
}

void InterruptGuard::check_interrupted(std::string_view after) const {
  if (const int signal = interrupted_by) {
    throw Failure("interrupted by " + signal_name(signal) + " after " + std::string(after) +
                  "; stopped, and the private dump directory was removed");
  }
}

void run_tool(const PrivateWorkdir& workdir, const std::string& pg_bin, const std::string& program,
              const std::vector<std::string>& arguments, const Conninfo& target, const std::string& step) {
  const std::string password = target.get("password");
  std::filesystem::path passfile;
  if (!password.empty()) passfile = workdir.private_file("pgpass", passfile_line(password));
  std::vector<std::string> argv = {pg_bin.empty() ? program : (std::filesystem::path(pg_bin) / program).string()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  argv.push_back("--dbname=" + target.without("password").without("passfile").str());
  auto environment = tool_environment(passfile);
  const auto error_log = workdir.private_file(program + ".err");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, error_log.c_str(), O_WRONLY | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  auto raw_argv = raw(argv);
  auto raw_environment = raw(environment);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, raw_argv[0], &actions, nullptr, raw_argv.data(), raw_environment.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    throw Failure(step + ": cannot run " + argv[0] + " (" + std::strerror(spawned) +
                  ") — install the PostgreSQL client (scripts/bootstrap) or give --pg-bin");
  }
  running_tool = pid;
  if (const int signal = interrupted_by) kill(pid, signal);  // arrived while it was being started
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  running_tool = 0;
  std::ifstream in(error_log);
  std::stringstream errors;
  errors << in.rdbuf();
  if (const int signal = interrupted_by) {
    throw Failure(step + " was interrupted by " + signal_name(signal) + "; " + program +
                  " was stopped and the private dump directory removed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string text = errors.str();
    if (text.size() > 2000) text = text.substr(0, 2000) + "...";
    throw Failure(step + " failed (" + program + " exited " +
                  std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + "): " + text);
  }
}

}  // namespace shadowpipe::shadowctl
