#include "shadowpipe/preflight.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace shadowpipe::preflight {

namespace {

bool identifier_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool identifier_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

size_t skip_space(std::string_view text, size_t at) {
  while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  return at;
}

// A called function reaches outside when its own name (the last part of a
// qualified name) is pg_notify or starts with dblink or http (the dblink and
// http extensions' functions, pg_net's net.http_*).
bool reaching_function(std::string_view name) {
  const auto dot = name.rfind('.');
  const auto own = dot == std::string_view::npos ? name : name.substr(dot + 1);
  return own == "pg_notify" || own.starts_with("dblink") || own.starts_with("http");
}

// NOTIFY is a statement: it counts where a statement starts (after ';', a
// quote of EXECUTE '...', or a keyword that opens a block or a rule's action),
// not as a column named notify.
bool statement_start(std::string_view text, size_t at) {
  size_t before = at;
  while (before > 0 && std::isspace(static_cast<unsigned char>(text[before - 1]))) --before;
  if (before == 0) return true;
  const char previous = text[before - 1];
  if (previous == ';' || previous == '\'' || previous == '$' || previous == '(') return true;
  size_t word = before;
  while (word > 0 && identifier_char(text[word - 1])) --word;
  static const std::set<std::string_view> openers = {"then", "else", "loop", "begin", "do", "also", "instead"};
  return openers.contains(text.substr(word, before - word));
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
  return out;
}

}  // namespace

std::vector<std::string> outside_calls(std::string_view body) {
  std::string text(body);
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  std::vector<std::string> found;
  auto note = [&](std::string what) {
    if (std::find(found.begin(), found.end(), what) == found.end()) found.push_back(std::move(what));
  };
  size_t at = 0;
  while (at < text.size()) {
    if (!identifier_start(text[at]) || (at > 0 && (identifier_char(text[at - 1]) || text[at - 1] == '.'))) {
      ++at;
      continue;
    }
    // A possibly qualified name: net.http_post, public.dblink_exec.
    size_t end = at;
    while (true) {
      while (end < text.size() && identifier_char(text[end])) ++end;
      if (end + 1 < text.size() && text[end] == '.' && identifier_start(text[end + 1])) {
        ++end;
        continue;
      }
      break;
    }
    const std::string name = text.substr(at, end - at);
    const size_t next = skip_space(text, end);
    if (next < text.size() && text[next] == '(' && reaching_function(name)) {
      note(name);
    } else if (name == "notify" && statement_start(text, at) && next > end &&
               (next == text.size() || identifier_start(text[next]) || text[next] == '"' || text[next] == '\'')) {
      note("NOTIFY");
    } else if (name == "copy") {
      // COPY ... PROGRAM within the same statement (up to the next ';').
      const auto statement_end = std::min(text.find(';', end), text.size());
      for (size_t word = end; word < statement_end; ++word) {
        if (text.compare(word, 7, "program") == 0 && !identifier_char(text[word - 1]) &&
            (word + 7 >= text.size() || !identifier_char(text[word + 7]))) {
          note("COPY ... PROGRAM");
          break;
        }
      }
    }
    at = end;
  }
  return found;
}

namespace {

// The body a function runs: its source text, or for a SQL-standard body
// (BEGIN ATOMIC, where prosrc is empty) the definition PostgreSQL renders.
constexpr const char* kBody = "case when p.prosqlbody is not null then pg_get_functiondef(p.oid) else p.prosrc end";

// Extensions that reach outside by what they are, whatever calls them.
constexpr const char* kExtensions = R"(
select e.extname,
       case e.extname when 'dblink' then 'connects to other databases'
                      when 'http' then 'makes HTTP requests'
                      when 'pg_net' then 'makes HTTP requests'
                      else 'provides a foreign data wrapper: reads and writes outside the database' end
from pg_extension e
where e.extname in ('dblink', 'postgres_fdw', 'http', 'pg_net')
   or exists (select 1 from pg_depend d
              where d.refclassid = 'pg_extension'::regclass and d.refobjid = e.oid and d.deptype = 'e'
                and d.classid = 'pg_foreign_data_wrapper'::regclass)
order by 1)";

// Wrappers of an extension are named by their extension above.
constexpr const char* kWrappers = R"(
select w.fdwname, 'reads and writes outside the database'
from pg_foreign_data_wrapper w
where not exists (select 1 from pg_depend d where d.classid = 'pg_foreign_data_wrapper'::regclass
                    and d.objid = w.oid and d.deptype = 'e')
order by 1)";

constexpr const char* kServers = R"(
select s.srvname, 'through foreign data wrapper ' || w.fdwname
from pg_foreign_server s join pg_foreign_data_wrapper w on w.oid = s.srvfdw
order by 1)";

constexpr const char* kForeignTables = R"(
select n.nspname || '.' || c.relname, 'on server ' || s.srvname
from pg_foreign_table f join pg_class c on c.oid = f.ftrelid join pg_namespace n on n.oid = c.relnamespace
     join pg_foreign_server s on s.oid = f.ftserver
order by 1)";

constexpr const char* kUserMappings = R"(
select 'for ' || u.usename || ' on server ' || u.srvname, 'credentials for a foreign server'
from pg_user_mappings u
order by 1)";

// The columns every role may read (pg_subscription hides the connection).
constexpr const char* kSubscriptions = R"(
select s.subname, 'replicates from another server'
from pg_subscription s join pg_database d on d.oid = s.subdbid
where d.datname = current_database()
order by 1)";

constexpr const char* kEventTriggers = R"(
select e.evtname, 'runs ' || e.evtfoid::regproc::text || ' on ' || e.evtevent
from pg_event_trigger e
order by 1)";

// Not internal: constraint and foreign-key triggers run built-in code.
const std::string kTriggers = std::string(R"(
select 'trigger ' || t.tgname || ' on ' || n.nspname || '.' || c.relname, )") + kBody + R"(
from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
     join pg_proc p on p.oid = t.tgfoid
where not t.tgisinternal
order by 1)";

// Views read through their _RETURN rule; other rules run on writes.
constexpr const char* kRules = R"(
select case when r.rulename = '_RETURN' then 'view ' else 'rule ' || r.rulename || ' on ' end
         || n.nspname || '.' || c.relname,
       pg_get_ruledef(r.oid)
from pg_rewrite r join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
where n.nspname not in ('pg_catalog', 'information_schema')
order by 1)";

// User functions: neither built in, nor an extension's own (dblink's
// functions are named by the extension), nor trigger functions (named by
// the triggers that fire them; unused, they cannot run).
const std::string kFunctions = std::string(R"(
select case p.prokind when 'p' then 'procedure ' else 'function ' end
         || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', )") +
                               kBody + R"(
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
where n.nspname not in ('pg_catalog', 'information_schema') and l.lanname <> 'internal'
  and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                    and d.deptype = 'e')
order by 1)";

}  // namespace

std::vector<OutsideReach> find_outside_reach(const pg::Connection& conn) {
  std::vector<OutsideReach> found;
  // Objects that reach outside by kind: (name, why) per row.
  auto by_kind = [&](const std::string& kind, const char* sql) {
    auto rows = conn.exec_checked(sql);
    for (int row = 0; row < rows.rows(); ++row) {
      found.push_back({kind + " " + std::string(rows.value(row, 0)), std::string(rows.value(row, 1))});
    }
  };
  // Objects that reach outside by what their body calls: (name, body).
  auto by_body = [&](const std::string& sql) {
    auto rows = conn.exec_checked(sql);
    for (int row = 0; row < rows.rows(); ++row) {
      const auto calls = outside_calls(rows.value(row, 1));
      if (!calls.empty()) found.push_back({std::string(rows.value(row, 0)), "calls " + join(calls, ", ")});
    }
  };
  by_kind("extension", kExtensions);
  by_kind("foreign data wrapper", kWrappers);
  by_kind("foreign server", kServers);
  by_kind("foreign table", kForeignTables);
  by_kind("user mapping", kUserMappings);
  by_kind("subscription", kSubscriptions);
  by_kind("event trigger", kEventTriggers);
  by_body(kTriggers);
  by_body(kRules);
  by_body(kFunctions);
  return found;
}

std::vector<OutsideReach> check_outside_reach(const std::vector<OutsideReach>& found,
                                              const std::vector<std::string>& allowed, const std::string& where,
                                              const std::string& advice) {
  const std::set<std::string, std::less<>> allow(allowed.begin(), allowed.end());
  std::vector<OutsideReach> refused, accepted;
  std::set<std::string, std::less<>> names;
  for (const auto& object : found) {
    names.insert(object.object);
    (allow.contains(object.object) ? accepted : refused).push_back(object);
  }
  std::vector<std::string> unknown;
  for (const auto& name : allowed) {
    if (!names.contains(name)) unknown.push_back(name);
  }
  auto listing = [&](const std::vector<OutsideReach>& objects) {
    std::string out;
    for (const auto& object : objects) out += "\n  " + object.describe();
    return out;
  };
  if (!unknown.empty()) {
    std::string message = std::string(kOverrideFlag) + " names no object of " + where + " that can reach outside it: ";
    for (size_t i = 0; i < unknown.size(); ++i) message += (i ? ", '" : "'") + unknown[i] + "'";
    message += " — name each object exactly as listed here";
    message += found.empty() ? " (none were found)" : ":" + listing(found);
    throw Failure(message);
  }
  if (!refused.empty()) {
    throw Failure(where + " holds " + std::to_string(refused.size()) +
                  (refused.size() == 1 ? " object" : " objects") + " that can reach outside the shadow:" +
                  listing(refused) +
                  "\nRefused: replayed production traffic would run them and cause side effects outside the shadow "
                  "(notifications to real listeners, writes or calls to other servers). Drop each from the shadow" +
                  (advice.empty() ? "" : " (" + advice + ")") + ", or accept it by naming it exactly: " +
                  std::string(kOverrideFlag) + " '" + refused.front().object + "' (repeatable, one object each).");
  }
  return accepted;
}

std::vector<OutsideReach> refuse_outside_reach(const pg::Connection& conn, const std::vector<std::string>& allowed,
                                               const std::string& advice) {
  return check_outside_reach(find_outside_reach(conn), allowed, "the shadow database " + conn.describe(), advice);
}

}  // namespace shadowpipe::preflight
