// DSNs parsed once with libpq's parser: keyword and URI forms, the password
// taken out for a command line, and no part of a DSN in an error.
#include "shadowpipe/conninfo.hpp"
#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>

using shadowpipe::pg::Conninfo;

TEST(Conninfo, ReadsKeywordAndUriFormsAlike) {
  const auto keywords = Conninfo::parse("host=db.internal port=5433 user=app dbname=shop password='p w:x'");
  const auto uri = Conninfo::parse("postgresql://app:p%20w%3Ax@db.internal:5433/shop");
  for (const auto& dsn : {keywords, uri}) {
    EXPECT_EQ(dsn.get("dbname"), "shop");
    EXPECT_EQ(dsn.get("password"), "p w:x");
    EXPECT_EQ(dsn.without("password").str(), "user='app' dbname='shop' host='db.internal' port='5433'");
  }
  EXPECT_EQ(shadowpipe::pg::with_database("postgresql://app@h/shop", "postgres"), "user='app' dbname='postgres' host='h'");
  EXPECT_EQ(Conninfo::parse("dbname=x host=h").with("dbname", "a'b\\c").str(), "dbname='a\\'b\\\\c' host='h'");
}

TEST(Conninfo, AnUnparsableDsnIsNamedNotQuoted) {
  for (const std::string dsn : {"host=h password=se cret", "postgresql://app:secret@h:notaport/db?x=y", "password='secret"}) {
    try {
      Conninfo::parse(dsn, "the --shadow DSN");
      ADD_FAILURE() << "parsed: " << dsn;
    } catch (const shadowpipe::Failure& failure) {
      const std::string message = failure.what();
      EXPECT_NE(message.find("the --shadow DSN does not parse"), std::string::npos) << message;
      EXPECT_EQ(message.find("cret"), std::string::npos) << message;
    }
  }
}
