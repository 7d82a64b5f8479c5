// Statement analysis on libpg_query: fingerprint and normalized text come from
// libpg_query directly; kind, ordering, volatility and the outside-reach guard
// come from walking the JSON parse tree (simdjson DOM).
//
// Kind rules (the strongest kind across statements wins, in this order:
// read < transaction_control < utility < write < ddl):
//  * read: SELECT / VALUES / TABLE, SHOW, EXPLAIN without ANALYZE, COPY ... TO,
//    DECLARE CURSOR over a read, FETCH.
//  * write: INSERT / UPDATE / DELETE / MERGE, SELECT ... INTO, anything with a
//    data-modifying CTE, SELECT ... FOR UPDATE/SHARE (anywhere in the tree),
//    calls to nextval()/setval(), COPY ... FROM, REFRESH MATERIALIZED VIEW,
//    CALL and DO (they run arbitrary code). The rule is PostgreSQL's own: what
//    a read-only transaction refuses is not a read.
//  * EXPLAIN ANALYZE executes its statement, so it takes that statement's kind.
//  * ddl: CREATE / ALTER / DROP / TRUNCATE / COMMENT / GRANT / REVOKE /
//    SECURITY LABEL and other schema changes, CREATE TABLE AS.
//  * transaction_control: BEGIN / START / COMMIT / ROLLBACK / SAVEPOINT /
//    RELEASE / PREPARE TRANSACTION..., SET TRANSACTION, SET CONSTRAINTS.
//  * utility: SET / RESET, VACUUM, ANALYZE, CLUSTER, REINDEX, LISTEN / NOTIFY,
//    LOCK, CHECKPOINT, DISCARD, LOAD, PREPARE / EXECUTE / DEALLOCATE, CLOSE.
//  Functions that write (a user function called from SELECT) are invisible to
//  the parser; such a SELECT stays a read.
//
// top_level_order_by looks at the last statement of the text, the one whose
// rows a simple-protocol client keeps: a SELECT (or COPY (SELECT ...) TO) whose
// outermost query has ORDER BY. ORDER BY inside a subquery, CTE or a
// parenthesized UNION arm does not order the result.
#include "shadowpipe/statement.hpp"

#include <pg_query.h>
#include <pthread.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <exception>
#include <list>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace shadowpipe::statement {

std::string_view to_string(Kind kind) {
  switch (kind) {
    case Kind::read: return "read";
    case Kind::write: return "write";
    case Kind::ddl: return "ddl";
    case Kind::transaction_control: return "transaction_control";
    case Kind::utility: return "utility";
  }
  return "unknown";
}

namespace {

// ---- libpg_query results, freed on every path --------------------------------

template <class R, void (*Free)(R)>
class Owned {
 public:
  explicit Owned(R result) : result_(result) {}
  ~Owned() { Free(result_); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  const R* operator->() const { return &result_; }

 private:
  R result_;
};

using ParseResult = Owned<PgQueryParseResult, pg_query_free_parse_result>;
using FingerprintResult = Owned<PgQueryFingerprintResult, pg_query_free_fingerprint_result>;
using NormalizeResult = Owned<PgQueryNormalizeResult, pg_query_free_normalize_result>;

Error syntax_error(const PgQueryError& error) {
  std::string message = error.message != nullptr ? error.message : "the parser refused the statement";
  // cursorpos is PostgreSQL's 1-based character position; 0 means unknown.
  if (error.cursorpos > 0) message += " at position " + std::to_string(error.cursorpos);
  return Error{ErrorCode::sql_syntax, "sql", std::move(message)};
}

// ---- name tables -----------------------------------------------------------

int strength(Kind kind) {
  switch (kind) {
    case Kind::read: return 0;
    case Kind::transaction_control: return 1;
    case Kind::utility: return 2;
    case Kind::write: return 3;
    case Kind::ddl: return 4;
  }
  return 0;
}

Kind stronger(Kind a, Kind b) { return strength(a) >= strength(b) ? a : b; }

using NameSet = std::unordered_set<std::string_view>;

// Functions whose value differs between the primary and the shadow even on
// identical data. now() and friends are STABLE in PostgreSQL, yet the two
// sides run at different times; the inet_* and user functions differ because
// the shadow runs on another server and connection.
const NameSet& volatile_functions() {
  static const NameSet names{
      "now", "current_timestamp", "transaction_timestamp", "statement_timestamp", "clock_timestamp",
      "timeofday", "localtimestamp", "current_date", "current_time", "localtime",
      "random", "random_normal", "setseed", "nextval", "currval", "lastval", "setval",
      "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
      "gen_random_bytes", "gen_salt",
      "txid_current", "txid_current_if_assigned", "txid_current_snapshot", "pg_current_xact_id",
      "pg_current_xact_id_if_assigned", "pg_current_snapshot", "pg_current_wal_lsn",
      "pg_current_wal_insert_lsn", "pg_backend_pid", "pg_postmaster_start_time", "pg_conf_load_time",
      "inet_client_addr", "inet_client_port", "inet_server_addr", "inet_server_port",
      "current_database", "pg_my_temp_schema"};
  return names;
}

// Calls that advance a sequence change database state: the SELECT is a write.
bool writes_sequence(std::string_view name) { return name == "nextval" || name == "setval"; }

// Functions with effects outside the shadow database: other servers, the
// server's file system, other sessions and the cluster's processes.
const NameSet& outside_functions() {
  static const NameSet names{
      "pg_notify", "lo_import", "lo_export",
      "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_file_write",
      "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "pg_ls_logdir",
      "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir",
      "pg_ls_logicalmapdir", "pg_ls_replslotdir",
      "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
      "pg_switch_wal", "pg_create_restore_point", "pg_promote", "pg_backup_start", "pg_backup_stop",
      "pg_start_backup", "pg_stop_backup", "pg_logical_emit_message",
      "pg_create_logical_replication_slot", "pg_create_physical_replication_slot",
      "pg_drop_replication_slot", "pg_replication_origin_create"};
  return names;
}

bool reaches_outside_by_name(std::string_view name) {
  return name.starts_with("dblink") || outside_functions().contains(name);
}

// Languages whose functions can touch the server's file system, network and
// processes; "c" loads a shared library.
bool untrusted_language(std::string_view language) {
  static const NameSet names{"plperlu", "plpythonu", "plpython2u", "plpython3u", "pltclu",
                             "plsh", "plr", "javau", "c"};
  return names.contains(language);
}

// Statements that change the cluster (roles, databases, tablespaces are shared
// by every database on the server) or reach another server.
const std::unordered_map<std::string_view, std::string_view>& outside_statements() {
  static const std::unordered_map<std::string_view, std::string_view> reasons{
      {"AlterSystemStmt", "ALTER SYSTEM"},
      {"LoadStmt", "LOAD"},
      {"CreateExtensionStmt", "CREATE EXTENSION"},
      {"CreatePLangStmt", "CREATE LANGUAGE"},
      {"CreateRoleStmt", "CREATE ROLE (cluster-wide)"},
      {"AlterRoleStmt", "ALTER ROLE (cluster-wide)"},
      {"AlterRoleSetStmt", "ALTER ROLE SET (cluster-wide)"},
      {"DropRoleStmt", "DROP ROLE (cluster-wide)"},
      {"GrantRoleStmt", "GRANT/REVOKE role membership (cluster-wide)"},
      {"CreatedbStmt", "CREATE DATABASE (cluster-wide)"},
      {"AlterDatabaseStmt", "ALTER DATABASE (cluster-wide)"},
      {"AlterDatabaseSetStmt", "ALTER DATABASE SET (cluster-wide)"},
      {"AlterDatabaseRefreshCollStmt", "ALTER DATABASE REFRESH COLLATION VERSION (cluster-wide)"},
      {"DropdbStmt", "DROP DATABASE (cluster-wide)"},
      {"CreateTableSpaceStmt", "CREATE TABLESPACE (cluster-wide)"},
      {"AlterTableSpaceOptionsStmt", "ALTER TABLESPACE (cluster-wide)"},
      {"DropTableSpaceStmt", "DROP TABLESPACE (cluster-wide)"},
      {"CreateFdwStmt", "CREATE FOREIGN DATA WRAPPER"},
      {"AlterFdwStmt", "ALTER FOREIGN DATA WRAPPER"},
      {"CreateForeignServerStmt", "CREATE SERVER"},
      {"AlterForeignServerStmt", "ALTER SERVER"},
      {"CreateForeignTableStmt", "CREATE FOREIGN TABLE"},
      {"CreateUserMappingStmt", "CREATE USER MAPPING"},
      {"AlterUserMappingStmt", "ALTER USER MAPPING"},
      {"ImportForeignSchemaStmt", "IMPORT FOREIGN SCHEMA"},
      {"CreateSubscriptionStmt", "CREATE SUBSCRIPTION"},
      {"AlterSubscriptionStmt", "ALTER SUBSCRIPTION"},
      {"DropSubscriptionStmt", "DROP SUBSCRIPTION"},
      {"NotifyStmt", "NOTIFY"},
      {"ListenStmt", "LISTEN"},
      {"UnlistenStmt", "UNLISTEN"},
  };
  return reasons;
}

// Kinds of the top-level statement nodes whose kind does not depend on their
// contents. Unknown future node types fall back by prefix (see base_kind).
const std::unordered_map<std::string_view, Kind>& fixed_kinds() {
  static const std::unordered_map<std::string_view, Kind> kinds{
      {"InsertStmt", Kind::write},
      {"UpdateStmt", Kind::write},
      {"DeleteStmt", Kind::write},
      {"MergeStmt", Kind::write},
      {"CallStmt", Kind::write},
      {"DoStmt", Kind::write},
      {"RefreshMatViewStmt", Kind::write},
      {"VariableShowStmt", Kind::read},
      {"FetchStmt", Kind::read},
      {"TransactionStmt", Kind::transaction_control},
      {"ConstraintsSetStmt", Kind::transaction_control},
      {"VariableSetStmt", Kind::utility},
      {"VacuumStmt", Kind::utility},
      {"ClusterStmt", Kind::utility},
      {"ReindexStmt", Kind::utility},
      {"NotifyStmt", Kind::utility},
      {"ListenStmt", Kind::utility},
      {"UnlistenStmt", Kind::utility},
      {"LockStmt", Kind::utility},
      {"CheckPointStmt", Kind::utility},
      {"DiscardStmt", Kind::utility},
      {"LoadStmt", Kind::utility},
      {"AlterSystemStmt", Kind::utility},
      {"PrepareStmt", Kind::utility},
      {"ExecuteStmt", Kind::utility},
      {"DeallocateStmt", Kind::utility},
      {"ClosePortalStmt", Kind::utility},
      {"TruncateStmt", Kind::ddl},
      {"CommentStmt", Kind::ddl},
      {"SecLabelStmt", Kind::ddl},
      {"GrantStmt", Kind::ddl},
      {"GrantRoleStmt", Kind::ddl},
      {"DropOwnedStmt", Kind::ddl},
      {"ReassignOwnedStmt", Kind::ddl},
      {"IndexStmt", Kind::ddl},
      {"ViewStmt", Kind::ddl},
      {"RuleStmt", Kind::ddl},
      {"DefineStmt", Kind::ddl},
      {"RenameStmt", Kind::ddl},
      {"CompositeTypeStmt", Kind::ddl},
      {"ImportForeignSchemaStmt", Kind::ddl},
      {"CreateTableAsStmt", Kind::ddl},
  };
  return kinds;
}

// ---- the parse tree walk ---------------------------------------------------

using simdjson::dom::element;
using simdjson::dom::object;

std::string_view string_field(object node, std::string_view key) {
  std::string_view out;
  if (node[key].get_string().get(out) != simdjson::SUCCESS) return {};
  return out;
}

bool bool_field(object node, std::string_view key) {
  bool out = false;
  if (node[key].get_bool().get(out) != simdjson::SUCCESS) return false;
  return out;
}

bool has_nonempty_array(object node, std::string_view key) {
  simdjson::dom::array items;
  return node[key].get_array().get(items) == simdjson::SUCCESS && items.size() > 0;
}

// {"String":{"sval":"x"}} -> x
std::string_view string_node(element node) {
  std::string_view out;
  if (node["String"]["sval"].get_string().get(out) != simdjson::SUCCESS) return {};
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The single {"NodeType": {...}} pair of a wrapped node.
std::pair<std::string_view, object> unwrap(element node) {
  object wrapper;
  if (node.get_object().get(wrapper) != simdjson::SUCCESS) return {};
  for (auto field : wrapper) {
    object inner;
    if (field.value.get_object().get(inner) == simdjson::SUCCESS) return {field.key, inner};
  }
  return {};
}

void add_unique(std::vector<std::string>& list, std::string value) {
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(std::move(value));
}

// What a walk over one statement's tree found.
struct Findings {
  bool modifies_data = false;  // a nested INSERT/UPDATE/DELETE/MERGE, INTO, FOR UPDATE, nextval()
};

class Walker {
 public:
  explicit Walker(Analysis& analysis) : analysis_(analysis) {}

  // Iterative, because parse trees of long expressions (1+1+...+1) nest
  // tens of thousands of levels deep.
  Findings walk(element root) {
    Findings findings;
    stack_.clear();
    stack_.push_back(root);
    while (!stack_.empty()) {
      const element current = stack_.back();
      stack_.pop_back();
      // Children are pushed reversed so they pop in source order: names are
      // reported in the order they appear in the statement.
      const size_t first_child = stack_.size();
      if (current.is_array()) {
        simdjson::dom::array items;
        if (current.get_array().get(items) != simdjson::SUCCESS) continue;
        for (element item : items) {
          if (item.is_object() || item.is_array()) stack_.push_back(item);
        }
        std::reverse(stack_.begin() + static_cast<std::ptrdiff_t>(first_child), stack_.end());
        continue;
      }
      object fields;
      if (current.get_object().get(fields) != simdjson::SUCCESS) continue;
      for (auto field : fields) {
        // Node types are capitalized ("FuncCall"); struct fields are not.
        if (!field.key.empty() && std::isupper(static_cast<unsigned char>(field.key.front()))) {
          object node;
          if (field.value.get_object().get(node) == simdjson::SUCCESS) visit(field.key, node, findings);
        } else if (field.key == "intoClause") {
          findings.modifies_data = true;  // SELECT ... INTO creates and fills a table
        }
        if (field.value.is_object() || field.value.is_array()) stack_.push_back(field.value);
      }
      std::reverse(stack_.begin() + static_cast<std::ptrdiff_t>(first_child), stack_.end());
    }
    return findings;
  }

 private:
  void visit(std::string_view type, object node, Findings& findings) {
    if (type == "FuncCall") {
      visit_call(node, findings);
    } else if (type == "SQLValueFunction") {
      visit_sql_value_function(string_field(node, "op"));
    } else if (type == "TypeCast") {
      visit_cast(node);
    } else if (type == "LockingClause" || type == "InsertStmt" || type == "UpdateStmt" ||
               type == "DeleteStmt" || type == "MergeStmt") {
      findings.modifies_data = true;
    } else if (type == "ExecuteStmt" || type == "DeallocateStmt") {
      // At any depth: EXPLAIN ANALYZE EXECUTE p and CREATE TABLE ... AS
      // EXECUTE p run p too. pg_query gives the name as the server folds it.
      const std::string_view name = string_field(node, "name");
      if (!name.empty()) add_unique(analysis_.prepared_names_used, std::string(name));
    }
  }

  void visit_call(object node, Findings& findings) {
    simdjson::dom::array names;
    if (node["funcname"].get_array().get(names) != simdjson::SUCCESS || names.size() == 0) return;
    element last;
    for (element part : names) last = part;
    const std::string name = lowercase(string_node(last));
    if (name.empty()) return;
    if (names.size() == 1 || lowercase(string_node(names.at(0).value_unsafe())) != "pg_catalog") {
      add_unique(analysis_.called_functions, name);
    }
    simdjson::dom::array args;
    const size_t arg_count = node["args"].get_array().get(args) == simdjson::SUCCESS ? args.size() : 0;
    // age(x) with one argument measures from current_date; age(a, b) is immutable.
    if (volatile_functions().contains(name) || (name == "age" && arg_count == 1)) {
      add_unique(analysis_.volatile_calls, name);
    }
    if (writes_sequence(name)) findings.modifies_data = true;
    if (reaches_outside_by_name(name)) add_unique(analysis_.outside_reasons, "calls " + name);
    if (name == "set_config") visit_set_config(node);
    // Session-level advisory locks outlive the transaction (the _xact_ ones do not).
    if (name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" || name == "pg_try_advisory_lock" ||
        name == "pg_try_advisory_lock_shared") {
      add_unique(analysis_.session_reasons, "session-level advisory lock " + name);
    }
    if (name == "pg_advisory_unlock" || name == "pg_advisory_unlock_shared" || name == "pg_advisory_unlock_all") {
      add_unique(analysis_.session_uses, "releases a session-level advisory lock (" + name + ")");
    }
  }

  // set_config(name, value, is_local): with is_local false (or not a
  // constant, so not provably true) the setting outlives the transaction. A
  // role change through it (or a name the text does not fix, which may be
  // one) is refused like SET ROLE; any other setting is replayed like a
  // plain SET, which the executor resets after the unit (RESET ALL).
  void visit_set_config(object node) {
    simdjson::dom::array args;
    if (node["args"].get_array().get(args) != simdjson::SUCCESS || args.size() != 3) return;
    const element name_arg = args.at(0).value_unsafe(), value_arg = args.at(1).value_unsafe();
    const std::optional<bool> is_local = constant_bool(args.at(2).value_unsafe());
    const std::string setting = lowercase(constant_text(name_arg));
    SettingChange change;
    change.name = setting;
    change.value = std::string(constant_text(value_arg));
    change.local = is_local == std::optional<bool>(true);
    change.name_param = setting.empty() ? param_number(name_arg) : 0;
    change.value_param = change.value.empty() ? param_number(value_arg) : 0;
    change.known = is_local.has_value() && (!setting.empty() || change.name_param > 0) &&
                   (is_constant(value_arg) || change.value_param > 0);
    analysis_.setting_changes.push_back(std::move(change));
    if (is_local == std::optional<bool>(true)) return;
    if (setting == "role" || setting == "session_authorization") {
      add_unique(analysis_.session_reasons, "set_config('" + setting + "', ..., false) changes the role, like SET ROLE");
    } else if (setting.empty()) {
      add_unique(analysis_.session_reasons,
                 "set_config(...) with a name the text does not fix, past its transaction (it may change the role)");
    }
  }

  // $n, or $n::type: n; 0 when not a parameter.
  static int param_number(element value) {
    const auto [type, node] = unwrap(value);
    if (type == "TypeCast") {
      element arg;
      return node["arg"].get(arg) == simdjson::SUCCESS ? param_number(arg) : 0;
    }
    int64_t number = 0;
    if (type != "ParamRef" || node["number"].get_int64().get(number) != simdjson::SUCCESS) return 0;
    return static_cast<int>(number);
  }

  static bool is_constant(element value) {
    const auto [type, node] = unwrap(value);
    if (type == "TypeCast") {
      element arg;
      return node["arg"].get(arg) == simdjson::SUCCESS && is_constant(arg);
    }
    return type == "A_Const" && !node["isnull"].is_bool();
  }

  // A constant's text: 'x', or 'x'::type.
  static std::string_view constant_text(element value) {
    const auto [type, node] = unwrap(value);
    if (type == "TypeCast") {
      element arg;
      return node["arg"].get(arg) == simdjson::SUCCESS ? constant_text(arg) : std::string_view();
    }
    if (type != "A_Const") return {};
    std::string_view text;
    if (node["sval"]["sval"].get_string().get(text) != simdjson::SUCCESS) return {};
    return text;
  }

  // A constant boolean (true, false, 'on'::bool, ...); nullopt when not a constant.
  static std::optional<bool> constant_bool(element value) {
    const auto [type, node] = unwrap(value);
    if (type == "A_Const") {
      object boolean;
      if (node["boolval"].get_object().get(boolean) == simdjson::SUCCESS) {
        bool flag = false;  // false is written as an empty object
        if (boolean["boolval"].get_bool().get(flag) != simdjson::SUCCESS) flag = false;
        return flag;
      }
    }
    const std::string text = lowercase(constant_text(value));
    if (text == "true" || text == "t" || text == "on" || text == "yes" || text == "y" || text == "1") return true;
    if (text == "false" || text == "f" || text == "off" || text == "no" || text == "n" || text == "0") return false;
    return std::nullopt;
  }

  void visit_sql_value_function(std::string_view op) {
    static const std::array<std::pair<std::string_view, std::string_view>, 15> names{{
        {"SVFOP_CURRENT_DATE", "current_date"},
        {"SVFOP_CURRENT_TIME", "current_time"},
        {"SVFOP_CURRENT_TIME_N", "current_time"},
        {"SVFOP_CURRENT_TIMESTAMP", "current_timestamp"},
        {"SVFOP_CURRENT_TIMESTAMP_N", "current_timestamp"},
        {"SVFOP_LOCALTIME", "localtime"},
        {"SVFOP_LOCALTIME_N", "localtime"},
        {"SVFOP_LOCALTIMESTAMP", "localtimestamp"},
        {"SVFOP_LOCALTIMESTAMP_N", "localtimestamp"},
        // The executor may log in as another role and to a database of
        // another name: these render differently on the shadow.
        {"SVFOP_CURRENT_ROLE", "current_role"},
        {"SVFOP_CURRENT_USER", "current_user"},
        {"SVFOP_USER", "user"},
        {"SVFOP_SESSION_USER", "session_user"},
        {"SVFOP_CURRENT_CATALOG", "current_catalog"},
        {"SVFOP_CURRENT_SCHEMA", ""},  // search_path is replayed: same on both sides
    }};
    for (const auto& [code, name] : names) {
      if (code == op) {
        if (!name.empty()) add_unique(analysis_.volatile_calls, std::string(name));
        return;
      }
    }
  }

  // 'now'::timestamp, date 'today' and the like are evaluated at run time.
  void visit_cast(object node) {
    static const NameSet time_types{"timestamp", "timestamptz", "date", "time", "timetz"};
    simdjson::dom::array type_names;
    if (node["typeName"]["names"].get_array().get(type_names) != simdjson::SUCCESS) return;
    element last_type;
    for (element part : type_names) last_type = part;
    if (!time_types.contains(string_node(last_type))) return;
    std::string_view literal;
    if (node["arg"]["A_Const"]["sval"]["sval"].get_string().get(literal) != simdjson::SUCCESS) return;
    std::string text = lowercase(literal);
    text.erase(0, text.find_first_not_of(" \t\n"));
    text.erase(text.find_last_not_of(" \t\n") + 1);
    if (text == "now" || text == "today" || text == "tomorrow" || text == "yesterday") {
      add_unique(analysis_.volatile_calls, "'" + text + "'");
    }
  }

  Analysis& analysis_;
  std::vector<element> stack_;
};

// ---- per statement rules -----------------------------------------------------

std::string_view cluster_object(std::string_view object_type) {
  if (object_type == "OBJECT_DATABASE") return "DATABASE";
  if (object_type == "OBJECT_ROLE") return "ROLE";
  if (object_type == "OBJECT_TABLESPACE") return "TABLESPACE";
  return {};
}

std::string_view defelem_string(object options_owner, std::string_view list_key, std::string_view name) {
  simdjson::dom::array options;
  if (options_owner[list_key].get_array().get(options) != simdjson::SUCCESS) return {};
  for (element option : options) {
    object def;
    if (option["DefElem"].get_object().get(def) != simdjson::SUCCESS) continue;
    if (string_field(def, "defname") != name) continue;
    element arg;
    if (def["arg"].get(arg) != simdjson::SUCCESS) return {};
    return string_node(arg);
  }
  return {};
}

// EXPLAIN executes its statement only with ANALYZE (ANALYZE, ANALYZE true/on/1).
bool explain_executes(object explain) {
  simdjson::dom::array options;
  if (explain["options"].get_array().get(options) != simdjson::SUCCESS) return false;
  bool executes = false;
  for (element option : options) {
    object def;
    if (option["DefElem"].get_object().get(def) != simdjson::SUCCESS) continue;
    if (string_field(def, "defname") != "analyze") continue;
    element arg;
    if (def["arg"].get(arg) != simdjson::SUCCESS) {
      executes = true;
      continue;
    }
    const auto [type, value] = unwrap(arg);
    if (type == "Integer") {
      int64_t number = 0;  // zero is omitted from the JSON
      executes = value["ival"].get_int64().get(number) == simdjson::SUCCESS && number != 0;
    } else {
      const std::string text = lowercase(string_node(arg));
      executes = !(text == "false" || text == "off" || text == "no" || text == "0");
    }
  }
  return executes;
}

// The kind of one statement node; `findings` covers the whole statement tree.
Kind statement_kind(std::string_view type, object node, const Findings& findings) {
  if (type == "SelectStmt" || type == "DeclareCursorStmt") {
    return findings.modifies_data ? Kind::write : Kind::read;
  }
  if (type == "CopyStmt") {
    if (bool_field(node, "is_from")) return Kind::write;
    return findings.modifies_data ? Kind::write : Kind::read;  // COPY (INSERT ... RETURNING) TO
  }
  if (type == "ExplainStmt") {
    if (!explain_executes(node)) return Kind::read;
    element query;
    if (node["query"].get(query) != simdjson::SUCCESS) return Kind::read;
    const auto [inner_type, inner] = unwrap(query);
    return statement_kind(inner_type, inner, findings);
  }
  if (type == "VariableSetStmt") {
    const std::string_view name = string_field(node, "name");
    if (name == "TRANSACTION" || name == "SESSION CHARACTERISTICS") return Kind::transaction_control;
    return Kind::utility;
  }
  if (const auto fixed = fixed_kinds().find(type); fixed != fixed_kinds().end()) return fixed->second;
  if (type.starts_with("Create") || type.starts_with("Alter") || type.starts_with("Drop")) return Kind::ddl;
  return Kind::utility;
}

// An identifier as the server writes it into a list setting (quote_identifier,
// without its keyword list): plain when lowercase letters, digits and _.
std::string quoted_identifier(std::string_view name) {
  const bool plain = !name.empty() && !std::isdigit(static_cast<unsigned char>(name.front())) &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                     });
  if (plain) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The value SET gives a setting, as set_config would take it (the server's
// flatten_set_variable_args); nullopt when the text does not fix it (SET
// TIME ZONE INTERVAL ..., FROM CURRENT).
std::optional<std::string> set_value(std::string_view name, object node, std::string_view sql) {
  simdjson::dom::array args;
  if (node["args"].get_array().get(args) != simdjson::SUCCESS || args.size() == 0) return std::nullopt;
  const bool quote = name == "search_path" || name == "temp_tablespaces" || name.ends_with("_preload_libraries");
  std::string out;
  for (element arg : args) {
    const auto [type, constant] = unwrap(arg);
    if (type != "A_Const") return std::nullopt;
    std::string_view text;
    int64_t number = 0;
    object integer;
    std::string piece;
    if (constant["sval"]["sval"].get_string().get(text) == simdjson::SUCCESS) {
      piece = quote ? quoted_identifier(text) : std::string(text);
    } else if (constant["fval"]["fval"].get_string().get(text) == simdjson::SUCCESS) {
      piece = std::string(text);
    } else if (constant["ival"].get_object().get(integer) == simdjson::SUCCESS) {
      if (integer["ival"].get_int64().get(number) == simdjson::SUCCESS) {
        piece = std::to_string(number);
      } else {
        // 0, and (libpg_query 15) any negative value, is written as an empty
        // object: the text at the constant's location says which.
        int64_t location = -1;
        if (constant["location"].get_int64().get(location) != simdjson::SUCCESS || location < 0) return std::nullopt;
        size_t at = static_cast<size_t>(location);
        if (at < sql.size() && (sql[at] == '-' || sql[at] == '+')) {
          if (sql[at] == '-') piece = "-";
          ++at;
        }
        while (at < sql.size() && std::isspace(static_cast<unsigned char>(sql[at]))) ++at;
        const size_t digits = at;
        while (at < sql.size() && std::isdigit(static_cast<unsigned char>(sql[at]))) ++at;
        if (at == digits) return std::nullopt;
        piece += std::string(sql.substr(digits, at - digits));
        if (piece.find_first_not_of("-0") == std::string::npos) piece = "0";
      }
    } else {
      return std::nullopt;
    }
    out += (out.empty() ? "" : ", ") + piece;
  }
  return out;
}

void add_setting_change(object node, std::string_view sql, Analysis& analysis) {
  const std::string_view kind = string_field(node, "kind");
  SettingChange change;
  change.name = lowercase(string_field(node, "name"));
  change.local = bool_field(node, "is_local");
  if (kind == "VAR_RESET_ALL") {
    change.kind = SettingChange::Kind::reset_all;
  } else if (kind == "VAR_RESET" || kind == "VAR_SET_DEFAULT") {
    change.kind = SettingChange::Kind::reset;
  } else if (kind == "VAR_SET_VALUE") {
    auto value = set_value(change.name, node, sql);
    change.known = value.has_value();
    change.value = value.value_or("");
  } else if (kind == "VAR_SET_CURRENT") {
    change.known = false;
  } else {
    return;  // SET TRANSACTION, SET SESSION CHARACTERISTICS: transaction modes, not settings
  }
  analysis.setting_changes.push_back(std::move(change));
}

// What a statement leaves in the session after its transaction ends (RESET
// ALL does not undo it).
void add_session_reasons(std::string_view type, object node, std::string_view sql, Analysis& analysis) {
  if (type == "VariableSetStmt") add_setting_change(node, sql, analysis);
  if (type == "DiscardStmt") {
    const std::string_view target = string_field(node, "target");
    SettingChange change;
    change.kind = target == "DISCARD_ALL" ? SettingChange::Kind::discard_all : SettingChange::Kind::discard_temp;
    if (target == "DISCARD_ALL" || target == "DISCARD_TEMP") analysis.setting_changes.push_back(std::move(change));
    if (target == "DISCARD_ALL") analysis.drops_prepared_statements = true;
  }
  if (type == "ExecuteStmt") add_unique(analysis.session_uses, "EXECUTE of a statement PREPAREd by the session");
  if (type == "DeallocateStmt") {
    add_unique(analysis.session_uses, "DEALLOCATE of a statement PREPAREd by the session");
    analysis.drops_prepared_statements = true;
  }
  if (type == "ListenStmt") add_unique(analysis.session_reasons, "LISTEN");
  if (type == "UnlistenStmt") add_unique(analysis.session_uses, "UNLISTEN");
  if (type == "VariableSetStmt" && !bool_field(node, "is_local")) {
    const std::string_view name = string_field(node, "name");
    if (name == "role") add_unique(analysis.session_reasons, "SET/RESET ROLE");
    if (name == "session_authorization") add_unique(analysis.session_reasons, "SET/RESET SESSION AUTHORIZATION");
  } else if (type == "PrepareStmt") {
    add_unique(analysis.session_reasons, "PREPARE");
  } else if (type == "CreateStmt" || type == "CreateTableAsStmt" || type == "SelectStmt" || type == "ViewStmt" ||
             type == "CreateSeqStmt") {
    // A temporary object lives as long as the session: on the shadow's shared
    // connection other sessions' units would see it. ON COMMIT DROP keeps it
    // inside the unit's transaction.
    object relation, into;
    const bool has_into = node[type == "SelectStmt" ? "intoClause" : "into"].get_object().get(into) == simdjson::SUCCESS;
    const std::string_view key = type == "CreateStmt" ? "relation" : type == "ViewStmt" ? "view" : "sequence";
    const bool found = has_into ? into["rel"].get_object().get(relation) == simdjson::SUCCESS
                                : node[key].get_object().get(relation) == simdjson::SUCCESS;
    const std::string_view on_commit = has_into ? string_field(into, "onCommit") : string_field(node, "oncommit");
    if (found && string_field(relation, "relpersistence") == "t" && on_commit != "ONCOMMIT_DROP") {
      analysis.makes_temporary_objects = true;
      add_unique(analysis.session_reasons, "a temporary " + std::string(type == "ViewStmt" ? "view" : type == "CreateSeqStmt" ? "sequence" : "table") +
                                               " outlives the unit (only ON COMMIT DROP is replayed)");
    }
  } else if (type == "DeclareCursorStmt") {
    constexpr int64_t kCursorOptHold = 0x0020;  // CURSOR_OPT_HOLD
    int64_t options = 0;
    if (node["options"].get_int64().get(options) == simdjson::SUCCESS && (options & kCursorOptHold) != 0) {
      add_unique(analysis.session_reasons, "DECLARE ... WITH HOLD");
    }
  }
}

void add_outside_reasons(std::string_view type, object node, Analysis& analysis) {
  if (const auto found = outside_statements().find(type); found != outside_statements().end()) {
    add_unique(analysis.outside_reasons, std::string(found->second));
  }
  if (type == "CopyStmt") {
    const bool program = bool_field(node, "is_program");
    if (!program && string_field(node, "filename").empty()) {
      analysis.copies_client_data = true;
      analysis.copies_from_client = analysis.copies_from_client || bool_field(node, "is_from");
    }
    // No filename means STDIN/STDOUT: the data stays on the client connection.
    if (program || !string_field(node, "filename").empty()) {
      std::string reason = bool_field(node, "is_from") ? "COPY FROM " : "COPY TO ";
      reason += program ? "PROGRAM" : "file";
      add_unique(analysis.outside_reasons, std::move(reason));
    }
  } else if (type == "DoStmt") {
    // A DO body is procedural code the parser does not look into: PL/pgSQL
    // can PERFORM pg_notify() or dblink_exec() as easily as untrusted code
    // can open files, so no DO block is run on the shadow.
    std::string language = lowercase(defelem_string(node, "args", "language"));
    if (untrusted_language(language)) {
      add_unique(analysis.outside_reasons, "DO block in untrusted language " + language);
    } else {
      add_unique(analysis.outside_reasons, "DO block (its body cannot be checked)");
    }
  } else if (type == "CreateFunctionStmt") {
    std::string language = lowercase(defelem_string(node, "options", "language"));
    const std::string what = bool_field(node, "is_procedure") ? "CREATE PROCEDURE" : "CREATE FUNCTION";
    element sql_body;
    const bool standard_body = node["sql_body"].get(sql_body) == simdjson::SUCCESS;
    if (untrusted_language(language)) {
      add_unique(analysis.outside_reasons, what + " in untrusted language " + language);
    } else if (!standard_body) {
      // As with DO: a body kept as a string (PL/pgSQL, or SQL in quotes) is
      // not parsed here, and a later call would run whatever it holds. A
      // SQL-standard body (RETURN / BEGIN ATOMIC) is part of the parse tree
      // and checked like any statement.
      add_unique(analysis.outside_reasons,
                 what + " in language " + (language.empty() ? std::string("sql") : language) +
                     " with a string body (its body cannot be checked)");
    }
  } else if (type == "RenameStmt" || type == "AlterOwnerStmt" || type == "CommentStmt" || type == "SecLabelStmt") {
    const std::string_view key = type == "RenameStmt"       ? "renameType"
                                 : type == "AlterOwnerStmt" ? "objectType"
                                                            : "objtype";
    const std::string_view object_name = cluster_object(string_field(node, key));
    if (!object_name.empty()) {
      const std::string_view verb = type == "RenameStmt"       ? "RENAME"
                                    : type == "AlterOwnerStmt" ? "ALTER OWNER of"
                                    : type == "CommentStmt"    ? "COMMENT ON"
                                                               : "SECURITY LABEL ON";
      add_unique(analysis.outside_reasons,
                 std::string(verb) + " " + std::string(object_name) + " (cluster-wide)");
    }
  }
}

// ---- the rows of a SELECT: ORDER BY keys, limits, outputs ---------------------

std::vector<std::string> column_ref_fields(object column_ref, bool& star) {
  std::vector<std::string> out;
  star = false;
  simdjson::dom::array fields;
  if (column_ref["fields"].get_array().get(fields) != simdjson::SUCCESS) return out;
  for (element field : fields) {
    if (field["A_Star"].is_object()) {
      star = true;
    } else {
      out.push_back(std::string(string_node(field)));
    }
  }
  return out;
}

// The name PostgreSQL gives an unnamed select-list entry (FigureColname),
// for the expressions whose name is the obvious one.
std::string figure_column_name(element value) {
  const auto [type, node] = unwrap(value);
  if (type == "ColumnRef") {
    bool star = false;
    auto fields = column_ref_fields(node, star);
    return star || fields.empty() ? "?column?" : fields.back();
  }
  if (type == "FuncCall") {
    simdjson::dom::array names;
    if (node["funcname"].get_array().get(names) != simdjson::SUCCESS || names.size() == 0) return "?column?";
    element last;
    for (element part : names) last = part;
    return std::string(string_node(last));
  }
  if (type == "TypeCast") {
    element arg;
    if (node["arg"].get(arg) == simdjson::SUCCESS) {
      std::string inner = figure_column_name(arg);
      if (inner != "?column?") return inner;
    }
    simdjson::dom::array type_names;
    if (node["typeName"]["names"].get_array().get(type_names) != simdjson::SUCCESS) return "?column?";
    element last;
    for (element part : type_names) last = part;
    return std::string(string_node(last));
  }
  return "?column?";
}

void describe_select(object select, Analysis& analysis) {
  std::string_view op = string_field(select, "op");
  const bool set_operation = !op.empty() && op != "SETOP_NONE";
  analysis.limited = select["limitCount"].is_object() || select["limitOffset"].is_object();
  simdjson::dom::array distinct;
  if (select["distinctClause"].get_array().get(distinct) == simdjson::SUCCESS) {
    for (element item : distinct) {
      if (item.is_object() && item.get_object().value_unsafe().size() > 0) analysis.distinct_on = true;
    }
  }

  // The select list: names, positions, and what each entry calls.
  std::vector<std::string> alias_names;  // explicit AS names, which shadow a star's columns
  bool star_seen = false;
  if (!set_operation) {
    simdjson::dom::array targets;
    if (select["targetList"].get_array().get(targets) == simdjson::SUCCESS) {
      int position = 0;
      for (element target : targets) {
        object res_target;
        if (target["ResTarget"].get_object().get(res_target) != simdjson::SUCCESS) continue;
        ++position;
        OutputExpression output;
        element value;
        const bool has_value = res_target["val"].get(value) == simdjson::SUCCESS;
        const auto [value_type, value_node] = has_value ? unwrap(value) : std::pair<std::string_view, object>{};
        if (value_type == "ColumnRef") column_ref_fields(value_node, output.star);
        output.position = star_seen ? 0 : position;
        output.output_name = std::string(string_field(res_target, "name"));
        if (!output.output_name.empty()) {
          alias_names.push_back(output.output_name);
        } else if (has_value) {
          output.output_name = figure_column_name(value);
        }
        if (has_value) {
          Analysis scratch;
          Walker(scratch).walk(value);
          output.volatile_calls = std::move(scratch.volatile_calls);
          output.called_functions = std::move(scratch.called_functions);
        }
        if (output.star) star_seen = true;
        analysis.outputs.push_back(std::move(output));
      }
    }
  }

  // Everything else the statement evaluates: a volatile call there changes
  // which rows come back.
  Analysis elsewhere;
  Walker walker(elsewhere);
  for (auto field : select) {
    if (!set_operation && field.key == "targetList") continue;
    if (field.value.is_object() || field.value.is_array()) walker.walk(field.value);
  }
  analysis.volatile_outside_outputs = !elsewhere.volatile_calls.empty();
  analysis.functions_outside_outputs = std::move(elsewhere.called_functions);

  // FROM: exactly one table, no join, no function, no subquery.
  simdjson::dom::array from;
  std::string relation_name;
  if (select["fromClause"].get_array().get(from) == simdjson::SUCCESS && from.size() == 1) {
    object range_var;
    if (from.at(0)["RangeVar"].get_object().get(range_var) == simdjson::SUCCESS) {
      relation_name = std::string(string_field(range_var, "relname"));
      const std::string_view schema = string_field(range_var, "schemaname");
      analysis.single_relation = schema.empty() ? relation_name : std::string(schema) + "." + relation_name;
      object alias;
      if (range_var["alias"].get_object().get(alias) == simdjson::SUCCESS) {
        analysis.single_relation_alias = std::string(string_field(alias, "aliasname"));
      }
    }
  }

  simdjson::dom::array sorts;
  if (select["sortClause"].get_array().get(sorts) != simdjson::SUCCESS) return;
  for (element sort : sorts) {
    element key_node;
    SortKey key;
    if (sort["SortBy"]["node"].get(key_node) != simdjson::SUCCESS) {
      analysis.sort_keys.push_back(std::move(key));
      continue;
    }
    const auto [type, node] = unwrap(key_node);
    if (type == "A_Const") {
      int64_t number = 0;
      if (node["ival"]["ival"].get_int64().get(number) == simdjson::SUCCESS && number > 0) {
        key.position = static_cast<int>(number);
      }
    } else if (type == "ColumnRef") {
      bool star = false;
      auto fields = column_ref_fields(node, star);
      if (!star && !fields.empty() && fields.size() <= 2) {
        key.column = fields.back();
        if (fields.size() == 2) key.qualifier = fields.front();
        if (fields.size() == 1) {
          // PostgreSQL's rule: a bare name is an output column's name first;
          // when an alias takes it, it may not be the table's column at all.
          key.output_name = key.column;
          if (std::find(alias_names.begin(), alias_names.end(), key.column) != alias_names.end()) key.column.clear();
        } else if (!set_operation) {
          // t.c is the output column that is that very column: a select-list
          // entry c or t.c kept under its own name, or a star's column when no
          // alias takes the name.
          const bool aliased = std::find(alias_names.begin(), alias_names.end(), key.column) != alias_names.end();
          for (const auto& output : analysis.outputs) {
            if (output.star && !aliased) key.output_name = key.column;
          }
          simdjson::dom::array targets;
          if (select["targetList"].get_array().get(targets) == simdjson::SUCCESS) {
            for (element target : targets) {
              object res_target;
              if (target["ResTarget"].get_object().get(res_target) != simdjson::SUCCESS) continue;
              element target_value;
              if (res_target["val"].get(target_value) != simdjson::SUCCESS) continue;
              const auto [value_type, value_node] = unwrap(target_value);
              if (value_type != "ColumnRef") continue;
              bool target_star = false;
              auto target_fields = column_ref_fields(value_node, target_star);
              if (target_star || target_fields.empty() || target_fields.back() != key.column) continue;
              if (target_fields.size() == 2 && target_fields.front() != key.qualifier) continue;
              const std::string_view alias = string_field(res_target, "name");
              key.output_name = alias.empty() ? key.column : std::string(alias);
            }
          }
        }
      }
    }
    analysis.sort_keys.push_back(std::move(key));
  }

  // GROUP BY columns that are all ORDER BY keys: each group is one row, so
  // the keys order the rows totally.
  simdjson::dom::array groups;
  if (select["groupClause"].get_array().get(groups) == simdjson::SUCCESS && groups.size() > 0) {
    bool covered = true;
    for (element group : groups) {
      const auto [type, node] = unwrap(group);
      bool star = false;
      auto fields = type == "ColumnRef" ? column_ref_fields(node, star) : std::vector<std::string>{};
      const bool found = !star && !fields.empty() &&
                         std::any_of(analysis.sort_keys.begin(), analysis.sort_keys.end(), [&](const SortKey& key) {
                           return key.column == fields.back();
                         });
      covered = covered && found;
    }
    analysis.order_total_by_grouping = covered;
  }
}

bool orders_result(std::string_view type, object node) {
  if (type == "SelectStmt") return has_nonempty_array(node, "sortClause") && !node["intoClause"].is_object();
  if (type == "CopyStmt") {
    element query;
    if (node["query"].get(query) != simdjson::SUCCESS) return false;
    const auto [inner_type, inner] = unwrap(query);
    return inner_type == "SelectStmt" && has_nonempty_array(inner, "sortClause");
  }
  return false;
}

// One parser per thread: simdjson reuses its buffers between documents.
simdjson::dom::parser& json_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Result<element> parse_tree_json(const char* json) {
  auto& parser = json_parser();
  const size_t length = std::strlen(json);
  element root;
  auto error = parser.parse(json, length).get(root);
  if (error == simdjson::DEPTH_ERROR) {
    // A JSON document cannot nest deeper than it is long.
    if (parser.allocate(length, length) == simdjson::SUCCESS) error = parser.parse(json, length).get(root);
  }
  if (error != simdjson::SUCCESS) {
    // libpg_query wrote the JSON itself; failing here is a broken invariant
    // only for absurd inputs (memory), so report it as the statement's error.
    return Error{ErrorCode::too_large, "sql",
                 std::string("cannot read the parse tree: ") + simdjson::error_message(error)};
  }
  return root;
}

// libpg_query's tree walkers (JSON output, normalize) recurse once per nesting
// level, and a long operator chain (1+1+...+1) nests one level per two bytes
// of SQL: about 160 bytes of stack per byte of SQL, so a 50 KiB statement
// overflows an 8 MiB thread stack and kills the process. Texts above
// kInlineTextBytes are therefore analyzed on a thread whose stack grows with
// the text; the mapping is MAP_NORESERVE, so only the pages a deep statement
// really touches cost memory. Below the threshold the caller's stack is used
// (worst case about 320 KiB).
constexpr size_t kInlineTextBytes = 2 * 1024;
constexpr size_t kStackBytesPerTextByte = 512;  // three times the measured need
constexpr size_t kBaseStackBytes = 1024 * 1024;

template <class Body>
Result<Analysis> run_on_own_stack(size_t text_bytes, Body body) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t wanted = kBaseStackBytes + kStackBytesPerTextByte * text_bytes;
  const size_t stack_bytes = (wanted + page - 1) / page * page + page;  // plus a guard page
  void* memory = mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  const auto too_large = [&] {
    return Error{ErrorCode::too_large, "sql",
                 "SQL text of " + std::to_string(text_bytes) + " bytes is too large to analyze (cannot reserve " +
                     std::to_string(stack_bytes >> 20) + " MiB of parser stack)"};
  };
  if (memory == MAP_FAILED) return too_large();
  // The stack grows down: an overflow hits this page and faults at once.
  mprotect(memory, page, PROT_NONE);

  struct Job {
    Body* body;
    std::optional<Result<Analysis>> result;
    std::exception_ptr failure;
  } job{&body, std::nullopt, nullptr};
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstack(&attributes, memory, stack_bytes);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attributes,
      [](void* argument) -> void* {
        auto& job = *static_cast<Job*>(argument);
        try {
          job.result.emplace((*job.body)());
        } catch (...) {
          job.failure = std::current_exception();
        }
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attributes);
  if (created == 0) pthread_join(thread, nullptr);
  munmap(memory, stack_bytes);
  if (created != 0) return too_large();
  if (job.failure) std::rethrow_exception(job.failure);
  return std::move(*job.result);
}

Result<Analysis> analyze_text(const std::string& text);

}  // namespace

Result<Analysis> analyze(std::string_view sql) {
  if (const auto nul = sql.find('\0'); nul != std::string_view::npos) {
    return Error{ErrorCode::sql_syntax, "sql",
                 "SQL contains a NUL byte at position " + std::to_string(nul + 1)};
  }
  const std::string text(sql);  // libpg_query wants a NUL-terminated string
  if (text.size() <= kInlineTextBytes) return analyze_text(text);
  return run_on_own_stack(text.size(), [&text] { return analyze_text(text); });
}

namespace {
Result<Analysis> analyze_text(const std::string& text) {
  // libpg_query keeps one top-level memory context per thread, reused by every
  // call and freed when the thread exits; each call frees its own memory with
  // the results below. pg_query_exit() is therefore never needed here (the
  // ASan build's LeakSanitizer confirms it).

  const ParseResult parsed(pg_query_parse(text.c_str()));
  if (parsed->error != nullptr) return syntax_error(*parsed->error);

  auto root = parse_tree_json(parsed->parse_tree);
  if (!root.ok()) return root.error();
  simdjson::dom::array statements;
  if ((*root)["stmts"].get_array().get(statements) != simdjson::SUCCESS || statements.size() == 0) {
    return Error{ErrorCode::sql_syntax, "sql", "no SQL statement: the text is empty or only comments"};
  }

  Analysis analysis;
  analysis.statement_count = static_cast<int>(statements.size());
  Walker walker(analysis);
  bool first = true;
  for (element raw : statements) {
    element stmt;
    if (raw["stmt"].get(stmt) != simdjson::SUCCESS) continue;
    const auto [type, node] = unwrap(stmt);
    const Findings findings = walker.walk(stmt);
    const Kind kind = statement_kind(type, node, findings);
    analysis.kind = first ? kind : stronger(analysis.kind, kind);
    first = false;
    add_outside_reasons(type, node, analysis);
    add_session_reasons(type, node, text, analysis);
    if (kind == Kind::transaction_control) analysis.has_transaction_control = true;
    if (type == "TransactionStmt") {
      const std::string_view transaction_kind = string_field(node, "kind");
      const std::string_view command = transaction_kind == "TRANS_STMT_SAVEPOINT"      ? "SAVEPOINT"
                                       : transaction_kind == "TRANS_STMT_ROLLBACK_TO" ? "ROLLBACK TO SAVEPOINT"
                                       : transaction_kind == "TRANS_STMT_RELEASE"     ? "RELEASE SAVEPOINT"
                                                                                      : "";
      if (!command.empty()) {
        analysis.savepoint_command = std::string(command);
        analysis.savepoint_name = std::string(string_field(node, "savepoint_name"));
      }
    }
    if (type == "ConstraintsSetStmt") analysis.sets_constraints = true;
    const std::string_view transaction_kind = type == "TransactionStmt" ? string_field(node, "kind") : "";
    const bool begins = transaction_kind == "TRANS_STMT_BEGIN" || transaction_kind == "TRANS_STMT_START";
    const bool sets_transaction = type == "VariableSetStmt" && string_field(node, "name") == "TRANSACTION";
    if (begins || sets_transaction) {
      simdjson::dom::array modes;
      if (node[begins ? "options" : "args"].get_array().get(modes) == simdjson::SUCCESS) {
        for (element mode : modes) {
          object def;
          if (mode["DefElem"].get_object().get(def) != simdjson::SUCCESS) continue;
          const std::string_view name = string_field(def, "defname");
          element arg;
          if (def["arg"].get(arg) != simdjson::SUCCESS) continue;
          int64_t flag = 0;  // ival 0 is written as an empty object
          const bool on = arg["A_Const"]["ival"]["ival"].get_int64().get(flag) == simdjson::SUCCESS && flag != 0;
          std::string_view level;
          if (name == "transaction_isolation" && arg["A_Const"]["sval"]["sval"].get_string().get(level) == simdjson::SUCCESS) {
            analysis.isolation_level = lowercase(level);
          } else if (name == "transaction_read_only") {
            analysis.read_only = on;
          } else if (name == "transaction_deferrable") {
            analysis.deferrable = on;
          }
        }
      }
    }
    analysis.top_level_order_by = orders_result(type, node);  // the last statement decides
    analysis.sort_keys.clear();
    analysis.outputs.clear();
    analysis.limited = analysis.distinct_on = analysis.order_total_by_grouping = false;
    analysis.single_relation.clear();
    analysis.single_relation_alias.clear();
    analysis.functions_outside_outputs.clear();
    if (type == "SelectStmt" && !node["intoClause"].is_object()) {
      describe_select(node, analysis);
    } else {
      analysis.volatile_outside_outputs = analysis.calls_volatile();
      analysis.functions_outside_outputs = analysis.called_functions;
    }
  }

  if (analysis.statement_count > 1) {  // only a text of one statement is replayed as transaction control
    analysis.savepoint_command.clear();
    analysis.savepoint_name.clear();
    analysis.sets_constraints = false;
    analysis.isolation_level.clear();
    analysis.read_only = analysis.deferrable = false;
  }
  // Volatile calls in an earlier statement of the text change what the last reads.
  if (analysis.statement_count > 1 && analysis.calls_volatile()) analysis.volatile_outside_outputs = true;

  const FingerprintResult fingerprint(pg_query_fingerprint(text.c_str()));
  if (fingerprint->error != nullptr) return syntax_error(*fingerprint->error);
  analysis.fingerprint = fingerprint->fingerprint_str;

  const NormalizeResult normalized(pg_query_normalize(text.c_str()));
  if (normalized->error != nullptr) return syntax_error(*normalized->error);
  analysis.normalized_sql = normalized->normalized_query;
  return analysis;
}
}  // namespace

// ---- Analyzer: LRU cache by exact statement text ---------------------------

namespace {
// Longer texts are nearly always bulk statements with inline data that do not
// repeat; caching them would let a few of them fill memory.
constexpr size_t kMaxCachedTextBytes = 8 * 1024;
}  // namespace

struct Analyzer::Cache {
  struct Entry {
    std::string text;
    Result<std::shared_ptr<const Analysis>> result;
  };
  size_t capacity;
  mutable std::mutex mutex;
  std::list<Entry> entries;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // keys view Entry::text
  size_t hits = 0;
  size_t misses = 0;
};

Analyzer::Analyzer(size_t capacity) : cache_(std::make_unique<Cache>()) { cache_->capacity = capacity; }

Analyzer::~Analyzer() = default;

Result<Analysis> Analyzer::analyze(std::string_view sql) {
  auto shared = analyze_shared(sql);
  if (!shared.ok()) return shared.error();
  return Analysis(**shared);
}

Result<std::shared_ptr<const Analysis>> Analyzer::analyze_shared(std::string_view sql) {
  Cache& cache = *cache_;
  {
    const std::lock_guard lock(cache.mutex);
    if (const auto found = cache.index.find(sql); found != cache.index.end()) {
      ++cache.hits;
      cache.entries.splice(cache.entries.begin(), cache.entries, found->second);
      return found->second->result;
    }
    ++cache.misses;
  }
  // Parse outside the lock so threads analyzing different texts run in parallel.
  Result<Analysis> parsed = statement::analyze(sql);
  Result<std::shared_ptr<const Analysis>> result =
      parsed.ok() ? Result<std::shared_ptr<const Analysis>>(std::make_shared<const Analysis>(std::move(*parsed)))
                  : Result<std::shared_ptr<const Analysis>>(parsed.error());
  if (cache.capacity == 0 || sql.size() > kMaxCachedTextBytes) return result;

  const std::lock_guard lock(cache.mutex);
  if (cache.index.contains(sql)) return result;  // another thread cached it meanwhile
  cache.entries.push_front(Cache::Entry{std::string(sql), result});
  cache.index.emplace(cache.entries.front().text, cache.entries.begin());
  while (cache.entries.size() > cache.capacity) {
    cache.index.erase(cache.entries.back().text);
    cache.entries.pop_back();
  }
  return result;
}

size_t Analyzer::hits() const {
  const std::lock_guard lock(cache_->mutex);
  return cache_->hits;
}

size_t Analyzer::misses() const {
  const std::lock_guard lock(cache_->mutex);
  return cache_->misses;
}

std::optional<size_t> output_index(const OutputExpression& output, const std::vector<std::string>& result_names) {
  if (output.position > 0) {
    const auto index = static_cast<size_t>(output.position - 1);
    if (index < result_names.size()) return index;
    return std::nullopt;
  }
  return unique_column(output.output_name, result_names);
}

std::optional<size_t> unique_column(std::string_view name, const std::vector<std::string>& result_names) {
  if (name.empty()) return std::nullopt;
  std::optional<size_t> found;
  for (size_t i = 0; i < result_names.size(); ++i) {
    if (result_names[i] != name) continue;
    if (found) return std::nullopt;
    found = i;
  }
  return found;
}

}  // namespace shadowpipe::statement
