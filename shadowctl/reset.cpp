#include "shadowctl/reset.hpp"

#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"

#include <libpq-fe.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

extern char** environ;

namespace shadowctl {

namespace kafka = shadowpipe::kafka;
namespace pg = shadowpipe::pg;
using shadowpipe::Failure;
using namespace std::chrono_literals;

namespace {

struct ConninfoDeleter {
  void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};

std::string quote_conninfo_value(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string database_of(const std::string& dsn) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoDeleter> options(PQconninfoParse(dsn.c_str(), &error));
  if (!options) {
    std::string why = error ? error : "unparsable";
    PQfreemem(error);
    throw Failure("the DSN '" + dsn + "' does not parse: " + why);
  }
  for (auto* option = options.get(); option->keyword; ++option) {
    if (std::string_view(option->keyword) == "dbname" && option->val) return option->val;
  }
  return "";
}

// Runs a program with arguments (no shell); throws with its stderr on failure.
void run(const std::vector<std::string>& argv, const std::string& step) {
  auto error_log = std::filesystem::temp_directory_path() / ("shadowctl-" + std::to_string(getpid()) + ".err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, error_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> raw;
  for (const auto& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
  raw.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    throw Failure(step + ": cannot run " + argv[0] + " (" + std::strerror(spawned) +
                  ") — install the PostgreSQL client (scripts/bootstrap) or give --pg-bin");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(error_log);
  std::stringstream errors;
  errors << in.rdbuf();
  std::filesystem::remove(error_log);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string text = errors.str();
    if (text.size() > 2000) text = text.substr(0, 2000) + "...";
    throw Failure(step + " failed (" + argv[0] + " exited " +
                  std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + "): " + text);
  }
}

std::string tool(const ResetOptions& options, const std::string& name) {
  return options.pg_bin.empty() ? name : (std::filesystem::path(options.pg_bin) / name).string();
}

struct GroupDescription {
  int members = 0;
  std::string state;
};

GroupDescription describe_group(const kafka::Properties& properties, const std::string& group) {
  kafka::Producer admin(properties);
  std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
      rd_kafka_AdminOptions_new(admin.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS), &rd_kafka_AdminOptions_destroy);
  const char* groups[] = {group.c_str()};
  auto event = kafka::admin_request(
      admin.get(),
      [&](rd_kafka_queue_t* queue) { rd_kafka_DescribeConsumerGroups(admin.get(), groups, 1, options.get(), queue); },
      15s, "describing consumer group " + group);
  size_t count = 0;
  const auto* result = rd_kafka_event_DescribeConsumerGroups_result(event.get());
  const auto** descriptions = rd_kafka_DescribeConsumerGroups_result_groups(result, &count);
  GroupDescription out;
  for (size_t i = 0; i < count; ++i) {
    if (rd_kafka_ConsumerGroupDescription_error(descriptions[i])) continue;
    out.members += static_cast<int>(rd_kafka_ConsumerGroupDescription_member_count(descriptions[i]));
    out.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(descriptions[i]));
  }
  return out;
}

// The first offset at or after the snapshot time on every partition.
kafka::PartitionList offsets_after(const kafka::Properties& properties, const std::string& topic, int64_t time_ms) {
  kafka::Producer client(properties);
  auto partitions = kafka::partition_count(client.get(), topic, 10s);
  if (!partitions) throw Failure("topic " + topic + " does not exist — run `shadowctl topics create` first");
  kafka::PartitionList offsets;
  for (int32_t partition = 0; partition < *partitions; ++partition) offsets.add(topic, partition, time_ms);
  kafka::Consumer consumer(properties);
  if (auto err = rd_kafka_offsets_for_times(consumer.get(), offsets.get(), 15000)) {
    throw Failure("finding the first request after the snapshot in " + topic + " failed: " + rd_kafka_err2str(err));
  }
  for (int i = 0; i < offsets.size(); ++i) {
    auto& entry = offsets[i];
    if (entry.offset < 0) {  // nothing after the snapshot yet: start at the end
      int64_t low = 0, high = 0;
      rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(), entry.partition, &low, &high, 10000);
      entry.offset = high;
    }
  }
  return offsets;
}

void alter_group_offsets(const kafka::Properties& properties, const std::string& group,
                         const kafka::PartitionList& offsets) {
  kafka::Producer admin(properties);
  std::unique_ptr<rd_kafka_AlterConsumerGroupOffsets_t, decltype(&rd_kafka_AlterConsumerGroupOffsets_destroy)> request(
      rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), offsets.get()), &rd_kafka_AlterConsumerGroupOffsets_destroy);
  auto* raw = request.get();
  auto event = kafka::admin_request(
      admin.get(),
      [&](rd_kafka_queue_t* queue) { rd_kafka_AlterConsumerGroupOffsets(admin.get(), &raw, 1, nullptr, queue); },
      15s, "moving the offsets of group " + group);
  size_t count = 0;
  const auto* result = rd_kafka_event_AlterConsumerGroupOffsets_result(event.get());
  const auto** groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &count);
  for (size_t i = 0; i < count; ++i) {
    if (const auto* error = rd_kafka_group_result_error(groups[i])) {
      throw Failure("moving the offsets of group " + group + " failed: " + rd_kafka_error_string(error));
    }
    const auto* partitions = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; partitions && p < partitions->cnt; ++p) {
      if (partitions->elems[p].err) {
        throw Failure("moving the offset of " + std::string(partitions->elems[p].topic) + "[" +
                      std::to_string(partitions->elems[p].partition) + "] failed: " +
                      rd_kafka_err2str(partitions->elems[p].err));
      }
    }
  }
}

}  // namespace

std::string with_database(const std::string& dsn, const std::string& database) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoDeleter> options(PQconninfoParse(dsn.c_str(), &error));
  if (!options) {
    std::string why = error ? error : "unparsable";
    PQfreemem(error);
    throw Failure("the DSN '" + dsn + "' does not parse: " + why);
  }
  std::string out;
  for (auto* option = options.get(); option->keyword; ++option) {
    const bool is_dbname = std::string_view(option->keyword) == "dbname";
    if (!is_dbname && (!option->val || !*option->val)) continue;
    if (!out.empty()) out += ' ';
    out += std::string(option->keyword) + "=" + quote_conninfo_value(is_dbname ? database : option->val);
  }
  return out;
}

int active_members(const kafka::Properties& properties, const std::string& group) {
  return describe_group(properties, group).members;
}

ResetOutcome reset_shadow(const kafka::Properties& properties, const ResetOptions& options) {
  ResetOutcome outcome;
  if (options.shadow_dsn.empty()) throw Failure("--shadow DSN is required");
  if (options.dump_file.empty() && options.primary_dsn.empty()) throw Failure("give --primary DSN or --dump FILE");
  if (!options.dump_file.empty() && !options.snapshot_time_ms) {
    throw Failure("--dump needs --snapshot-time (when the dump was taken), so the executors start after it");
  }
  for (const auto& migration : options.migrations) {
    if (!std::filesystem::is_regular_file(migration)) throw Failure("migration file " + migration + " does not exist");
  }

  const auto group = describe_group(properties, options.group);
  if (group.members > 0) {
    throw Failure("consumer group " + options.group + " has " + std::to_string(group.members) +
                  " running executors (state " + group.state + "); stop them before resetting the shadow");
  }

  // 1. The snapshot: an exported snapshot keeps pg_dump consistent with the
  //    time we record, while this transaction stays open.
  const std::string shadow_database = database_of(options.shadow_dsn);
  if (shadow_database.empty()) throw Failure("the shadow DSN names no database (dbname=...)");
  std::string dump_path = options.dump_file;
  std::unique_ptr<pg::Connection> snapshot_holder;
  std::filesystem::path temporary_dump;
  if (dump_path.empty()) {
    snapshot_holder = std::make_unique<pg::Connection>(options.primary_dsn);
    snapshot_holder->exec_checked("begin isolation level repeatable read read only");
    auto snapshot = snapshot_holder->exec_checked(
        "select pg_export_snapshot(), (extract(epoch from clock_timestamp()) * 1000)::bigint");
    const std::string snapshot_id(snapshot.value(0, 0));
    outcome.snapshot_time_ms = std::stoll(std::string(snapshot.value(0, 1)));
    temporary_dump = std::filesystem::temp_directory_path() / ("shadowctl-reset-" + std::to_string(getpid()) + ".dump");
    run({tool(options, "pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--snapshot=" + snapshot_id,
         "--file=" + temporary_dump.string(), "--dbname=" + options.primary_dsn},
        "dumping the primary");
    snapshot_holder->exec("commit");
    dump_path = temporary_dump.string();
    outcome.steps.push_back("dumped the primary at snapshot " + snapshot_id);
  } else {
    outcome.snapshot_time_ms = *options.snapshot_time_ms;
    outcome.steps.push_back("using the dump " + dump_path);
  }

  // 2. A fresh shadow database: nothing of the old shadow (tables the
  //    migration made, stale applied offsets) survives into the new run.
  {
    pg::Connection maintenance(with_database(options.shadow_dsn, "postgres"));
    const auto quoted = std::string(PQescapeIdentifier(maintenance.get(), shadow_database.c_str(), shadow_database.size()));
    maintenance.exec_checked("drop database if exists " + quoted + " with (force)");
    maintenance.exec_checked("create database " + quoted);
  }
  try {
    run({tool(options, "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
         "--dbname=" + options.shadow_dsn, dump_path},
        "restoring into the shadow");
  } catch (...) {
    if (!temporary_dump.empty()) std::filesystem::remove(temporary_dump);
    throw;
  }
  if (!temporary_dump.empty()) std::filesystem::remove(temporary_dump);
  outcome.steps.push_back("restored the snapshot into the shadow database " + shadow_database);

  // 3. The migration under test, each file in one transaction.
  for (const auto& migration : options.migrations) {
    run({tool(options, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", migration,
         "--dbname=" + options.shadow_dsn},
        "applying the migration " + migration);
    outcome.steps.push_back("applied " + migration);
  }

  // 4. Remember where this shadow starts.
  {
    pg::Connection shadow(options.shadow_dsn);
    shadow.exec_checked("create schema if not exists shadowpipe");
    shadow.exec_checked(
        "create table if not exists shadowpipe.snapshot (taken_at timestamptz not null, source text not null, "
        "migrations text[] not null, recorded_at timestamptz not null default now())");
    std::string migrations = "{";
    for (size_t i = 0; i < options.migrations.size(); ++i) {
      migrations += (i ? "," : "") + std::string("\"") + options.migrations[i] + "\"";
    }
    migrations += "}";
    shadow.exec_checked("insert into shadowpipe.snapshot (taken_at, source, migrations) values "
                        "(to_timestamp($1::bigint / 1000.0), $2, $3::text[])",
                        {std::to_string(outcome.snapshot_time_ms),
                         options.dump_file.empty() ? std::string("pg_dump of the primary") : options.dump_file,
                         migrations});
  }

  // 5. The executors start with the first request after the snapshot.
  auto offsets = offsets_after(properties, options.requests_topic, outcome.snapshot_time_ms);
  alter_group_offsets(properties, options.group, offsets);
  std::string where;
  for (int i = 0; i < offsets.size(); ++i) {
    where += (i ? ", " : "") + std::to_string(offsets[i].partition) + ":" + std::to_string(offsets[i].offset);
  }
  outcome.steps.push_back("moved group " + options.group + " on " + options.requests_topic + " to offsets " + where);
  return outcome;
}

}  // namespace shadowctl
