// The shadow cannot reach outside: the guard the executor runs at start and
// `shadowctl reset` runs after applying a migration. Replayed production
// traffic fires the shadow's triggers, rules and functions; one that sends a
// NOTIFY, calls dblink or HTTP, or reads a foreign table would cause side
// effects outside the shadow (messages to real listeners, writes to real
// servers). The statement guard (statement.hpp) refuses such statements in
// the traffic; this guard refuses a shadow whose catalog holds such objects.
//
// Each object is named exactly ("trigger orders_notify on public.orders"),
// and an operator who accepts one names it in an override.
#pragma once

#include "shadowpipe/pg.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::preflight {

// The option both programs take, repeatable: one object named exactly.
inline constexpr std::string_view kOverrideFlag = "--allow-outside-reach";

struct OutsideReach {
  std::string object;  // kind and qualified name, what an override names: "foreign table public.remote_orders"
  std::string why;     // "calls pg_notify", "on server remote"
  std::string describe() const { return object + " (" + why + ")"; }
};

// What a function body (any language) calls or runs that reaches outside the
// database: "pg_notify", "dblink_exec", "http_get", "net.http_post",
// "NOTIFY", "COPY ... PROGRAM", each once, in order of appearance. A word in
// a comment counts too: the guard errs on the side of refusing.
std::vector<std::string> outside_calls(std::string_view body);

// Every object of the connected database that can reach outside it: foreign
// data wrappers, servers, tables and user mappings, the extensions dblink,
// postgres_fdw, http, pg_net and any that provides a foreign data wrapper,
// subscriptions, event triggers, and the triggers, rules, views and
// functions (user-defined, not extension members) whose body calls one of
// outside_calls(). Reads the catalog only; throws Failure when it cannot.
std::vector<OutsideReach> find_outside_reach(const pg::Connection& conn);

// The decision: throws Failure when `found` holds an object `allowed` does
// not name (listing every such object, why it is refused and what to do), or
// when `allowed` names an object not found (a typo must not allow silently).
// Returns the objects allowed, for the caller to log. `where` names the
// database in the message; `advice` is added to what to do.
std::vector<OutsideReach> check_outside_reach(const std::vector<OutsideReach>& found,
                                              const std::vector<std::string>& allowed, const std::string& where,
                                              const std::string& advice = {});

// What SQL texts (migration files, in the order they run) create that
// find_outside_reach would list under the same name, read with the PostgreSQL
// parser before they run: the extensions dblink, postgres_fdw, http and
// pg_net, foreign data wrappers and servers, event triggers, subscriptions
// (objects without a schema, so the parser's name is the catalog's), less
// those a later statement drops. Objects in a schema (foreign tables,
// triggers, functions) depend on search_path and are left to the catalog
// check; so is everything when a text does not parse (psql meta-commands) or
// renames such an object: nullopt.
std::optional<std::vector<std::string>> created_outside_reach(const std::vector<std::string>& texts);

// find_outside_reach + check_outside_reach on `conn`.
std::vector<OutsideReach> refuse_outside_reach(const pg::Connection& conn, const std::vector<std::string>& allowed,
                                               const std::string& advice = {});

}  // namespace shadowpipe::preflight
