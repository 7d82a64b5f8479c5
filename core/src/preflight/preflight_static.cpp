// The static half of the outside-reach guard: what migration files create,
// read with the PostgreSQL parser before they run (see preflight.hpp).
#include "shadowpipe/preflight.hpp"

#include <pg_query.h>
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

namespace shadowpipe::preflight {

namespace {

using simdjson::dom::element;

std::string_view text_field(element node, const char* key) {
  std::string_view out;
  return node[key].get_string().get(out) == simdjson::SUCCESS ? out : std::string_view();
}

// Kinds named without a schema, so the parser's (folded) name is the
// catalog's; the DROP removeType of each.
const std::map<std::string_view, std::pair<std::string_view, std::string_view>>& creators() {
  static const std::map<std::string_view, std::pair<std::string_view, std::string_view>> kinds{
      {"CreateExtensionStmt", {"extension", "extname"}},
      {"CreateFdwStmt", {"foreign data wrapper", "fdwname"}},
      {"CreateForeignServerStmt", {"foreign server", "servername"}},
      {"CreateEventTrigStmt", {"event trigger", "trigname"}},
      {"CreateSubscriptionStmt", {"subscription", "subname"}},
  };
  return kinds;
}

std::string_view dropped_kind(std::string_view remove_type) {
  if (remove_type == "OBJECT_EXTENSION") return "extension";
  if (remove_type == "OBJECT_FDW") return "foreign data wrapper";
  if (remove_type == "OBJECT_FOREIGN_SERVER") return "foreign server";
  if (remove_type == "OBJECT_EVENT_TRIGGER") return "event trigger";
  return "";
}

bool reaching_extension(std::string_view name) {
  return name == "dblink" || name == "postgres_fdw" || name == "http" || name == "pg_net";
}

using Owned = std::unique_ptr<PgQueryParseResult, void (*)(PgQueryParseResult*)>;

}  // namespace

std::optional<std::vector<std::string>> created_outside_reach(const std::vector<std::string>& texts) {
  std::vector<std::string> created;
  simdjson::dom::parser parser;
  for (const auto& text : texts) {
    Owned parsed(new PgQueryParseResult(pg_query_parse(text.c_str())),
                 [](PgQueryParseResult* result) {
                   pg_query_free_parse_result(*result);
                   delete result;
                 });
    if (parsed->error) return std::nullopt;  // psql meta-commands, say: the catalog check decides
    const size_t length = std::strlen(parsed->parse_tree);
    if (parser.allocate(length, length) != simdjson::SUCCESS) return std::nullopt;
    element root;
    simdjson::dom::array statements;
    if (parser.parse(parsed->parse_tree, length).get(root) != simdjson::SUCCESS) return std::nullopt;
    if (root["stmts"].get_array().get(statements) != simdjson::SUCCESS) continue;  // comments only
    for (element raw : statements) {
      simdjson::dom::object wrapper;
      if (raw["stmt"].get_object().get(wrapper) != simdjson::SUCCESS) continue;
      for (auto [type, node] : wrapper) {
        if (const auto found = creators().find(type); found != creators().end()) {
          const auto name = text_field(node, found->second.second.data());
          if (found->second.first == "extension" && !reaching_extension(name)) continue;
          const auto object = std::string(found->second.first) + " " + std::string(name);
          if (std::find(created.begin(), created.end(), object) == created.end()) created.push_back(object);
        } else if (type == "DropStmt" || type == "DropSubscriptionStmt") {
          std::vector<std::string> gone;
          if (type == "DropSubscriptionStmt") {
            gone.push_back("subscription " + std::string(text_field(node, "subname")));
          } else if (const auto kind = dropped_kind(text_field(node, "removeType")); !kind.empty()) {
            simdjson::dom::array objects;
            if (node["objects"].get_array().get(objects) != simdjson::SUCCESS) continue;
            for (element dropped : objects) {
              element name;
              if (dropped["String"].get(name) == simdjson::SUCCESS) {
                gone.push_back(std::string(kind) + " " + std::string(text_field(name, "sval")));
              }
            }
          }
          std::erase_if(created, [&](const std::string& object) {
            return std::find(gone.begin(), gone.end(), object) != gone.end();
          });
        } else if (type == "RenameStmt" && !dropped_kind(text_field(node, "renameType")).empty()) {
          return std::nullopt;  // a renamed object: leave the naming to the catalog check
        }
      }
    }
  }
  return created;
}

}  // namespace shadowpipe::preflight
