#include "shadowctl/reset.hpp"

#include "shadowpipe/conninfo.hpp"
#include "shadowctl/pg_tools.hpp"

#include "shadowpipe/pg.hpp"
#include "shadowpipe/preflight.hpp"
#include "shadowpipe/result.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace shadowpipe::shadowctl {

namespace kafka = shadowpipe::kafka;
namespace pg = shadowpipe::pg;
namespace preflight = shadowpipe::preflight;
using shadowpipe::Failure;
using namespace std::chrono_literals;

namespace {

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
      // An unanswered query must not leave offset 0: that would replay the whole topic.
      entry.offset = kafka::watermarks(consumer.get(), topic, entry.partition).high;
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

// Before anything is dumped: objects the migration files create that reach
// outside the shadow, as far as the parser can name them (the catalog check
// after the migration decides the rest). Overrides that name other objects
// (ones the primary has) are for the catalog check.
void refuse_created_outside_reach(const ResetOptions& options) {
  std::vector<std::string> texts;
  for (const auto& migration : options.migrations) {
    std::ifstream in(migration);
    std::stringstream text;
    if (!(text << in.rdbuf())) throw Failure("cannot read the migration file " + migration);
    texts.push_back(text.str());
  }
  const auto created = preflight::created_outside_reach(texts);
  if (!created) return;
  std::vector<preflight::OutsideReach> found;
  for (const auto& object : *created) found.push_back({object, "created by the migration"});
  std::vector<std::string> allowed;
  for (const auto& name : options.allow_outside_reach) {
    if (std::find(created->begin(), created->end(), name) != created->end()) allowed.push_back(name);
  }
  preflight::check_outside_reach(found, allowed, "the migration (read before it runs)",
                                 "remove it from the migration; nothing was dumped or restored");
}

}  // namespace


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

  refuse_created_outside_reach(options);

  const auto group = describe_group(properties, options.group);
  if (group.members > 0) {
    throw Failure("consumer group " + options.group + " has " + std::to_string(group.members) +
                  " running executors (state " + group.state + "); stop them before resetting the shadow");
  }

  const auto shadow = Conninfo::parse(options.shadow_dsn, "the --shadow DSN");
  const std::string shadow_database = shadow.get("dbname");
  if (shadow_database.empty()) throw Failure("the shadow DSN names no database (dbname=...)");

  // The dump of production data, the password files and the tools' errors:
  // private, and gone on every way out of here (a signal included).
  InterruptGuard interrupts;
  PrivateWorkdir workdir("shadowctl-reset");

  // 1. The snapshot: an exported snapshot keeps pg_dump consistent with the
  //    time we record, while this transaction stays open.
  std::string dump_path = options.dump_file;
  if (dump_path.empty()) {
    const auto primary = Conninfo::parse(options.primary_dsn, "the --primary DSN");
    pg::Connection snapshot_holder(options.primary_dsn);
    snapshot_holder.exec_checked("begin isolation level repeatable read read only");
    auto snapshot = snapshot_holder.exec_checked(
        "select pg_export_snapshot(), (extract(epoch from clock_timestamp()) * 1000)::bigint");
    const std::string snapshot_id(snapshot.value(0, 0));
    outcome.snapshot_time_ms = std::stoll(std::string(snapshot.value(0, 1)));
    // Created 0600 first: pg_dump truncates it and keeps the mode.
    dump_path = workdir.private_file("primary.dump").string();
    run_tool(workdir, options.pg_bin, "pg_dump",
             {"--format=custom", "--no-owner", "--no-privileges", "--snapshot=" + snapshot_id, "--file=" + dump_path},
             primary, "dumping the primary");
    snapshot_holder.exec("commit");
    outcome.steps.push_back("dumped the primary at snapshot " + snapshot_id);
  } else {
    outcome.snapshot_time_ms = *options.snapshot_time_ms;
    outcome.steps.push_back("using the dump " + dump_path);
  }
  interrupts.check_interrupted("the dump");

  // 2. A fresh shadow database: nothing of the old shadow (tables the
  //    migration made, stale applied offsets) survives into the new run.
  {
    pg::Connection maintenance(shadow.with("dbname", "postgres").str());
    std::unique_ptr<char, decltype(&PQfreemem)> quoted(
        PQescapeIdentifier(maintenance.get(), shadow_database.c_str(), shadow_database.size()), &PQfreemem);
    maintenance.exec_checked("drop database if exists " + std::string(quoted.get()) + " with (force)");
    maintenance.exec_checked("create database " + std::string(quoted.get()));
  }
  run_tool(workdir, options.pg_bin, "pg_restore", {"--no-owner", "--no-privileges", "--exit-on-error", dump_path},
           shadow, "restoring into the shadow");
  if (options.dump_file.empty()) std::filesystem::remove(dump_path);  // not needed any more: no copy kept longer
  outcome.steps.push_back("restored the snapshot into the shadow database " + shadow_database);

  // 3. The migration under test, each file in one transaction.
  for (const auto& migration : options.migrations) {
    run_tool(workdir, options.pg_bin, "psql",
             {"-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", migration}, shadow,
             "applying the migration " + migration);
    outcome.steps.push_back("applied " + migration);
  }

  // The shadow the executors will replay into must not reach outside it:
  // the same guard the executor runs at start, before the group is moved.
  {
    pg::Connection shadow_connection(options.shadow_dsn);
    const auto allowed = preflight::refuse_outside_reach(
        shadow_connection, options.allow_outside_reach,
        "e.g. with a migration file that drops it; the executors' group was not moved");
    for (const auto& object : allowed) {
      outcome.steps.push_back("allowed by " + std::string(preflight::kOverrideFlag) + ": " +
                              object.describe());
    }
  }
  interrupts.check_interrupted("the migration");

  // 4. Remember where this shadow starts.
  {
    pg::Connection stamp(options.shadow_dsn);
    stamp.exec_checked("create schema if not exists shadowpipe");
    stamp.exec_checked(
        "create table if not exists shadowpipe.snapshot (taken_at timestamptz not null, source text not null, "
        "migrations text[] not null, recorded_at timestamptz not null default now())");
    std::string migrations = "{";
    for (size_t i = 0; i < options.migrations.size(); ++i) {
      migrations += (i ? "," : "") + std::string("\"") + options.migrations[i] + "\"";
    }
    migrations += "}";
    stamp.exec_checked("insert into shadowpipe.snapshot (taken_at, source, migrations) values "
                        "(to_timestamp($1::bigint / 1000.0), $2, $3::text[])",
                        {std::to_string(outcome.snapshot_time_ms),
                         options.dump_file.empty() ? std::string("pg_dump of the primary") : options.dump_file,
                         migrations});
  }

  interrupts.check_interrupted("stamping the shadow");  // the last moment a signal can still stop it

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

}  // namespace shadowpipe::shadowctl
