// PGresults made in memory (PQmakeEmptyPGresult + PQsetvalue), so unit tests
// record real libpq results without a server.
#pragma once

#include "shadowpipe/pg.hpp"

#include <libpq-fe.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace shadowpipe::testing {

struct MadeColumn {
  const char* name;
  Oid type;
};

// A TUPLES_OK result with these columns; row(i) gives row i's text values.
template <class RowValues>
pg::Result made_pgresult(const std::vector<MadeColumn>& columns, int rows, RowValues&& row) {
  pg::Result result(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  std::vector<PGresAttDesc> attributes(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) {
    attributes[i] = PGresAttDesc{};
    attributes[i].name = const_cast<char*>(columns[i].name);
    attributes[i].typid = columns[i].type;
    attributes[i].typlen = -1;
    attributes[i].atttypmod = -1;
  }
  if (!PQsetResultAttrs(result.get(), static_cast<int>(attributes.size()), attributes.data())) {
    throw std::runtime_error("PQsetResultAttrs failed");
  }
  for (int index = 0; index < rows; ++index) {
    const std::vector<std::string> values = row(index);
    for (size_t column = 0; column < values.size(); ++column) {
      if (!PQsetvalue(result.get(), index, static_cast<int>(column), const_cast<char*>(values[column].data()),
                      static_cast<int>(values[column].size()))) {
        throw std::runtime_error("PQsetvalue failed");
      }
    }
  }
  return result;
}

// rows x 3 columns (id int8, name text, price numeric), like a product page.
inline pg::Result made_result(int rows) {
  return made_pgresult({{"id", 20}, {"name", 25}, {"price", 1700}}, rows, [](int row) {
    return std::vector<std::string>{std::to_string(1000 + row), "product number " + std::to_string(row),
                                    std::to_string(row * 3) + "." + std::to_string(10 + row % 90)};
  });
}

}  // namespace shadowpipe::testing
