// A libpq connection string parsed once, with libpq's own parser
// (PQconninfoParse), so every DSN a program handles — which database, the
// same server with another database, the password taken off the command
// line — is read the same way, in keyword or URI form.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowpipe::pg {

class Conninfo {
 public:
  // Throws shadowpipe::Failure naming `what` ("the --shadow DSN") when libpq
  // cannot parse it; never quotes the DSN or libpq's reason, which may hold
  // a piece of the password.
  static Conninfo parse(const std::string& dsn, std::string_view what = "the DSN");

  // The value of a keyword ("dbname", "password"), empty when unset.
  std::string get(std::string_view keyword) const;
  Conninfo with(std::string_view keyword, std::string value) const;
  Conninfo without(std::string_view keyword) const;
  // keyword='value' pairs, in libpq's keyword order.
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> settings_;  // only the keywords that are set
};

// The DSN with its database replaced (keyword or URI form), as keyword='value'
// pairs. Throws Failure like Conninfo::parse.
std::string with_database(const std::string& dsn, const std::string& database);

}  // namespace shadowpipe::pg
