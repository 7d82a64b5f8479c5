// Exactly-once under kill -9: the real shadow-executor binary is killed
// repeatedly while it works through a write-heavy stream, restarted, and at
// the end the shadow's tables equal a reference database that received the
// same statements exactly once. Every request also has its result published.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <iostream>
#include <random>

extern char** environ;

namespace sp = shadowpipe;
using namespace sp::testing;
using sp::wire::TxMode;

namespace {

pid_t spawn_executor(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(SHADOW_EXECUTOR_BINARY));
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, SHADOW_EXECUTOR_BINARY, nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

int wait_exit(pid_t pid, std::chrono::seconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(50ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

}  // namespace

class ExecutorKill : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Modes, ExecutorKill, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "pipeline" : "plain"; });

TEST_P(ExecutorKill, ExactlyOnceUnderRepeatedKill9) {
  Topics topics(3);
  ScratchDatabase shadow(shadow_dsn(), "exec_kill");
  ScratchDatabase reference(primary_dsn(), "exec_kill_ref");
  const std::string schema =
      "CREATE TABLE events (id bigint PRIMARY KEY, key text NOT NULL, amount int NOT NULL);"
      "CREATE TABLE totals (key text PRIMARY KEY, sum bigint NOT NULL, n bigint NOT NULL)";
  sp::pg::Connection(shadow.dsn()).exec_checked(schema);
  sp::pg::Connection ref(reference.dsn());
  ref.exec_checked(schema);

  // Non-idempotent writes: a unit applied twice changes sum, n and the events
  // count; one skipped changes them too.
  std::vector<sp::wire::Request> requests;
  const int keys = 9;
  for (int k = 0; k < keys; ++k) {
    const std::string key = "key" + std::to_string(k);
    requests.push_back(make_request(key + "-init", key, TxMode::autocommit,
                                    {make_statement("INSERT INTO totals VALUES ($1, 0, 0)", {key})}));
  }
  for (int i = 0; i < 16000; ++i) {  // long enough that four kills land mid-stream with group commit
    const std::string key = "key" + std::to_string(i % keys);
    const std::string amount = std::to_string(i % 97);
    requests.push_back(make_request(
        "req-" + std::to_string(i), key, i % 4 == 0 ? TxMode::autocommit : TxMode::commit,
        {make_statement("INSERT INTO events VALUES ($1, $2, $3)", {std::to_string(i), key, amount}),
         make_statement("UPDATE totals SET sum = (sum * 31 + $2::int) % 1000000007, n = n + 1 WHERE key = $1",
                        {key, amount})}));
  }
  for (const auto& request : requests) topics.produce(request);
  topics.flush();
  for (const auto& request : requests) apply_on_reference(ref, request);

  const std::string group = unique_name("kill-group");
  const std::string instance = unique_name("kill-instance");
  auto args = [&](int run) {
    std::vector<std::string> args{"--shadow", shadow.dsn(), "--brokers", brokers(), "--group", group,
                                    "--requests-topic", topics.requests(), "--results-topic", topics.results(),
                                    "--dlq-topic", topics.dlq(), "--executor-id", "run-" + std::to_string(run),
                                    // Static membership: a restarted instance takes its partitions back at once
                                    // instead of waiting out the killed member's session.
                                    "-X", "group.instance.id=" + instance, "-X", "session.timeout.ms=6000"};
    if (GetParam()) args.push_back("--pipeline");
    return args;
  };

  // Each kill lands once the executor applied a random number of units more
  // since the previous one, however slow the machine: a fixed delay may kill
  // a loaded run before it applied anything, or an unloaded one after the end.
  // Four kills of at most 2000 units each stay well inside the stream.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int64_t> advance(200, 2000);
  sp::pg::Connection shadow_conn(shadow.dsn());
  std::vector<int64_t> applied_at_kill;
  const auto overall = std::chrono::steady_clock::now() + 100s;
  int64_t previous = 0;
  for (int run = 0; run < 4; ++run) {
    const pid_t pid = spawn_executor(args(run));
    ASSERT_GT(pid, 0);
    const int64_t target = previous + advance(random);
    const auto until = std::min(overall, std::chrono::steady_clock::now() + 30s);
    while (applied_total(shadow_conn, group, topics.requests()) < target && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    waitpid(pid, nullptr, 0);
    applied_at_kill.push_back(applied_total(shadow_conn, group, topics.requests()));
    previous = applied_at_kill.back();
  }
  const int64_t end = topics.requests_end();
  std::string progress;
  for (auto applied : applied_at_kill) progress += std::to_string(applied) + "/" + std::to_string(end) + " ";
  std::cout << "applied when killed: " << progress << std::endl;
  // The kills must land mid-stream, or the test proves nothing.
  const auto mid_stream = std::count_if(applied_at_kill.begin(), applied_at_kill.end(),
                                        [&](int64_t applied) { return applied > 0 && applied < end; });
  EXPECT_GE(mid_stream, 3) << "too few kills landed while the executor was working";

  const pid_t last = spawn_executor(args(99));
  const bool caught_up = wait_applied(shadow.dsn(), group, topics, 40s);
  // Lossless results: every request has one (duplicates allowed). Read while
  // the last instance runs: when every unit was applied before it started
  // (the last kill landed at the end), its only work is publishing the
  // logged results again, and a SIGTERM right away may leave them in
  // shadowpipe.results_log for the next owner instead of in the topic.
  auto results = topics.results_by_request(requests.size(), 30s);
  kill(last, SIGTERM);
  EXPECT_EQ(wait_exit(last, 20s), 0) << "SIGTERM must end the executor cleanly";
  ASSERT_TRUE(caught_up);

  EXPECT_EQ(table_checksum(shadow.dsn(), "events"), table_checksum(reference.dsn(), "events"));
  EXPECT_EQ(table_checksum(shadow.dsn(), "totals"), table_checksum(reference.dsn(), "totals"));
  EXPECT_EQ(results.size(), requests.size());
}
