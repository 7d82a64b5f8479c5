// `shadowctl reset` keeps what it handles to itself, against real servers and
// the real binary: the dump is private while it exists and gone on every way
// out (success, a failing tool, SIGTERM), no password appears on any
// process's command line, and a migration that makes the shadow reach
// outside is refused before the executors' group moves.
//
// The hook: --pg-bin points at a folder of wrappers named pg_dump, pg_restore
// and psql that record, while reset is at that step, the command lines of
// every process (ps -eo args) and the modes of everything under reset's
// TMPDIR, then exec the real tool. What they record is what another user
// could have seen at that moment, without sleeps or luck.
#include "shadowpipe/conninfo.hpp"
#include "shadowctl/reset.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"
#include "support/private_cluster.hpp"
#include "support/process.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace shadowctl = shadowpipe::shadowctl;

namespace sp = shadowpipe;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kRealTools = "/usr/lib/postgresql/15/bin";

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string database_name(const std::string& prefix) {
  auto name = sp::testing::unique_name(prefix);
  for (auto& c : name) c = c == '-' ? '_' : c;
  return name;
}

// A fresh folder under /tmp, removed at the end.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    char name[] = "/tmp/shadowctl-hardening-XXXXXX";
    if (!mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path = name;
  }
  ~ScratchDir() { fs::remove_all(path); }
};

// The wrappers: `extra` (per tool) runs after recording, before the real tool.
void write_hooks(const fs::path& hooks, const fs::path& watched, const std::map<std::string, std::string>& extra = {}) {
  for (const std::string tool : {"pg_dump", "pg_restore", "psql"}) {
    const auto script = hooks / tool;
    std::ofstream(script) << "#!/bin/sh\n"
                          << "echo " << tool << " >> '" << (hooks / "calls").string() << "'\n"
                          << "ps -eo args > '" << (hooks / ("ps." + tool)).string() << "'\n"
                          << "find '" << watched.string() << "' -mindepth 1 -printf '%m %p\\n' > '"
                          << (hooks / ("modes." + tool)).string() << "'\n"
                          << (extra.contains(tool) ? extra.at(tool) + "\n" : "")
                          << "exec " << kRealTools << "/" << tool << " \"$@\"\n";
    fs::permissions(script, fs::perms::owner_all);
  }
}

// Runs the shadowctl binary with `environment` added to ours (DSNs with a
// password go through the environment: on shadowctl's own command line they
// would be visible in ps). Returns the exit status; stderr in `log`.
int run_shadowctl(const std::vector<std::string>& args, const std::map<std::string, std::string>& environment,
                  const fs::path& log) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) {
    const std::string variable(*entry);
    if (!environment.contains(variable.substr(0, variable.find('=')))) env.push_back(variable);
  }
  for (const auto& [name, value] : environment) env.push_back(name + "=" + value);
  std::vector<char*> raw_env, raw_args;
  for (auto& value : env) raw_env.push_back(value.data());
  raw_env.push_back(nullptr);
  std::string binary = SHADOWCTL_BINARY;
  raw_args.push_back(binary.data());
  std::vector<std::string> copies = args;
  for (auto& arg : copies) raw_args.push_back(arg.data());
  raw_args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, binary.c_str(), &actions, nullptr, raw_args.data(), raw_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + binary);
  return sp::testing::wait_exit(pid, 150s);
}

// Reads every process's command line (what ps shows) until stopped; counts
// the command lines holding `secret`.
class CommandLineWatch {
 public:
  explicit CommandLineWatch(std::string secret) : secret_(std::move(secret)), thread_([this] { watch(); }) {}
  ~CommandLineWatch() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int leaks() const { return leaks_; }
  int64_t seen() const { return seen_; }

 private:
  void watch() {
    while (!stop_) {
      std::error_code ignored;
      for (const auto& entry : fs::directory_iterator("/proc", ignored)) {
        const auto command_line = read_text(entry.path() / "cmdline");
        if (command_line.empty()) continue;
        ++seen_;
        if (command_line.find(secret_) != std::string::npos) ++leaks_;
      }
      std::this_thread::sleep_for(1ms);  // a scan every millisecond, not a spinning core
    }
  }
  std::string secret_;
  std::atomic<bool> stop_{false};
  std::atomic<int> leaks_{0};
  std::atomic<int64_t> seen_{0};
  std::thread thread_;
};

// Lines "mode path" under `watched` as the hook recorded them.
std::vector<std::pair<std::string, std::string>> modes(const fs::path& file) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream lines(read_text(file));
  for (std::string line; std::getline(lines, line);) out.emplace_back(line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1));
  return out;
}

bool empty_folder(const fs::path& path) { return fs::is_empty(path); }

struct Topic {
  std::string name = sp::testing::unique_name("reset.hardening");
  Topic() {
    sp::kafka::Producer producer({{"bootstrap.servers", sp::testing::brokers()}});
    sp::kafka::create_topics(producer.get(), {{name, 1, 1, {}}}, 15s);
  }
};

}  // namespace

TEST(ResetHardening, NoPasswordOnAnyCommandLineAndTheDumpIsPrivateWhileItExists) {
  const std::string password = "pw-" + database_name("secret");
  sp::testing::PrivateCluster cluster(password);
  const std::string server = cluster.dsn() + " password=" + password;
  const auto primary_db = database_name("prim"), shadow_db = database_name("shad");
  {
    sp::pg::Connection admin(server);
    admin.exec_checked("CREATE DATABASE " + primary_db + " TEMPLATE template0");
    admin.exec_checked("CREATE DATABASE " + shadow_db + " TEMPLATE template0");
  }
  EXPECT_THROW(sp::pg::Connection(cluster.dsn()), sp::Failure) << "the cluster must demand the password";
  const auto primary = shadowpipe::pg::with_database(server, primary_db);
  const auto shadow = shadowpipe::pg::with_database(server, shadow_db);
  sp::pg::Connection(primary).exec_checked(
      "CREATE TABLE customers AS SELECT g AS id, 'user' || g AS name FROM generate_series(1, 2000) g");

  ScratchDir hooks, watched, work;
  write_hooks(hooks.path, watched.path);
  const auto migration = work.path / "migration.sql";
  std::ofstream(migration) << "ALTER TABLE customers ADD COLUMN nickname text;\n";
  Topic topic;
  CommandLineWatch watch(password);
  const int status = run_shadowctl(
      {"reset", "--brokers", sp::testing::brokers(), "--group", sp::testing::unique_name("hardening-group"),
       "--requests-topic", topic.name, "--pg-bin", hooks.path.string(), "--migration", migration.string()},
      {{"TMPDIR", watched.path.string()}, {"PRIMARY_DSN", primary}, {"SHADOW_DSN", shadow}}, work.path / "stderr");
  watch.stop();
  ASSERT_EQ(status, 0) << read_text(work.path / "stderr");
  EXPECT_EQ(sp::pg::Connection(shadow).exec_checked("SELECT count(nickname IS NULL) FROM customers").value(0, 0), "2000")
      << "the tools authenticated with the password they were given privately";

  // Each tool ran through the hook, and its snapshot of ps shows the tool's
  // own command line (with the DSN) but never the password.
  EXPECT_EQ(read_text(hooks.path / "calls"), "pg_dump\npg_restore\npsql\n");
  for (const std::string tool : {"pg_dump", "pg_restore", "psql"}) {
    const auto snapshot = read_text(hooks.path / ("ps." + tool));
    EXPECT_NE(snapshot.find("/" + tool + " "), std::string::npos) << snapshot;
    EXPECT_NE(snapshot.find("--dbname=") , std::string::npos) << snapshot;
    EXPECT_EQ(snapshot.find(password), std::string::npos) << tool << " time:\n" << snapshot;
  }
  EXPECT_GT(watch.seen(), 0);
  EXPECT_EQ(watch.leaks(), 0) << "a command line held the password";
  EXPECT_EQ(read_text(work.path / "stderr").find(password), std::string::npos);

  // While pg_restore ran the dump existed, in a 0700 directory, every file 0600.
  const auto at_restore = modes(hooks.path / "modes.pg_restore");
  bool saw_dump = false;
  for (const auto& [mode, path] : at_restore) {
    const bool folder = fs::path(path).parent_path() == watched.path;
    EXPECT_EQ(mode, folder ? "700" : "600") << path;
    saw_dump |= path.ends_with(".dump");
  }
  EXPECT_TRUE(saw_dump) << read_text(hooks.path / "modes.pg_restore");
  for (const auto& [mode, path] : modes(hooks.path / "modes.pg_dump")) {
    EXPECT_EQ(mode, fs::path(path).parent_path() == watched.path ? "700" : "600") << path;
  }
  EXPECT_TRUE(empty_folder(watched.path)) << "the private directory is removed after a reset";
}

TEST(ResetHardening, AResetThatFailsOrIsInterruptedLeavesNoDumpBehind) {
  const auto name = database_name("reset_fail");
  const auto primary = shadowpipe::pg::with_database(sp::testing::primary_dsn(), name);
  const auto shadow = shadowpipe::pg::with_database(sp::testing::shadow_dsn(), name);
  for (const auto& server : {sp::testing::primary_dsn(), sp::testing::shadow_dsn()}) {
    sp::pg::Connection(server).exec_checked("CREATE DATABASE " + name + " TEMPLATE template0");
  }
  sp::pg::Connection(primary).exec_checked("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
  Topic topic;
  const std::map<std::string, std::string> failures = {
      {"a failing pg_restore", "exit 1"},
      {"SIGTERM while pg_restore runs", "kill -TERM $PPID"},
  };
  for (const auto& [what, extra] : failures) {
    ScratchDir hooks, watched, work;
    write_hooks(hooks.path, watched.path, {{"pg_restore", extra}});
    const int status = run_shadowctl({"reset", "--brokers", sp::testing::brokers(), "--group",
                                      sp::testing::unique_name("hardening-group"), "--requests-topic", topic.name,
                                      "--pg-bin", hooks.path.string()},
                                     {{"TMPDIR", watched.path.string()}, {"PRIMARY_DSN", primary}, {"SHADOW_DSN", shadow}},
                                     work.path / "stderr");
    const auto errors = read_text(work.path / "stderr");
    EXPECT_EQ(status, 2) << what << ": " << errors;
    EXPECT_NE(errors.find(what == "a failing pg_restore" ? "restoring into the shadow failed" : "interrupted by SIGTERM"),
              std::string::npos)
        << what << ": " << errors;
    bool saw_dump = false;
    for (const auto& [mode, path] : modes(hooks.path / "modes.pg_restore")) saw_dump |= path.ends_with(".dump");
    EXPECT_TRUE(saw_dump) << what << ": the dump existed when it failed";
    EXPECT_TRUE(empty_folder(watched.path)) << what << ": left behind in TMPDIR: "
                                            << read_text(hooks.path / "modes.pg_restore");
  }
  for (const auto& server : {sp::testing::primary_dsn(), sp::testing::shadow_dsn()}) {
    sp::pg::Connection(server).exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  }
}
