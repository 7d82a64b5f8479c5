// A refused Kafka property names its key and librdkafka's reason, never its
// value: a secret given to the wrong key (or with a typo) must not end up in
// a terminal, a log or a CI transcript.
#include "shadowpipe/cli.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>

namespace sp = shadowpipe;

namespace {
std::string refusal(const std::string& key, const std::string& value) {
  try {
    sp::kafka::make_conf({{key, value}});
  } catch (const sp::Failure& failure) {
    return failure.what();
  }
  return "";
}
}  // namespace

TEST(KafkaConf, ARefusedPropertyNeverEchoesItsValue) {
  const std::string secret = "Hunter2-S3cret";
  // Unknown key, enum, flags list, integer, boolean: librdkafka quotes the
  // value (or a piece of it) in its reason for some of these.
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"sasl.pasword", secret},
           {"security.protocol", secret},
           {"debug", "broker," + secret},
           {"queue.buffering.max.ms", secret},
           {"enable.idempotence", secret},
       }) {
    const auto message = refusal(key, value);
    ASSERT_FALSE(message.empty()) << key << " was accepted";
    EXPECT_NE(message.find("Kafka property " + key + " was refused"), std::string::npos) << message;
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
    EXPECT_EQ(message.find("Hunter2"), std::string::npos) << message;
  }
}

TEST(KafkaConf, TheReasonStaysUseful) {
  const auto unknown = refusal("sasl.pasword", "x-secret-x");
  EXPECT_NE(unknown.find("No such configuration property"), std::string::npos) << unknown;
  const auto invalid = refusal("security.protocol", "x-secret-x");
  EXPECT_NE(invalid.find("Invalid value"), std::string::npos) << invalid;
  EXPECT_EQ(invalid.find("x-secret-x"), std::string::npos) << invalid;
}

TEST(KafkaConf, AnEntryThatIsNotKeyValueShowsOnlyItsKey) {
  sp::cli::KafkaOptions options;
  options.properties = {"sasl.password:Hunter2-S3cret"};
  try {
    options.to_properties();
    FAIL() << "an entry without '=' must be refused";
  } catch (const sp::Failure& failure) {
    const std::string message = failure.what();
    EXPECT_NE(message.find("'sasl.password'"), std::string::npos) << message;
    EXPECT_EQ(message.find("Hunter2"), std::string::npos) << message;
  }
}
