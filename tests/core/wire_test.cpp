#include "shadowpipe/wire.hpp"

#include "schemas/wire_samples.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <atomic>
#include <functional>
#include <set>
#include <thread>

namespace shadowpipe::wire {
namespace {

namespace samples = shadowpipe::wire::samples;

using Decode = std::function<std::optional<Error>(std::string_view, const Limits&)>;

template <class Record>
Decode decoder_of(Result<Record> (*decode)(std::string_view, const Limits&)) {
  return [decode](std::string_view json, const Limits& limits) -> std::optional<Error> {
    auto result = decode(json, limits);
    if (result) return std::nullopt;
    return result.error();
  };
}

std::string write(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The encoded record with one change made through a DOM.
std::string edited(const std::string& json, const std::function<void(rapidjson::Document&)>& edit) {
  rapidjson::Document document;
  document.Parse(json.data(), json.size());
  EXPECT_FALSE(document.HasParseError());
  edit(document);
  return write(document);
}

void expect_error(const std::optional<Error>& error, ErrorCode code, std::string_view field) {
  ASSERT_TRUE(error.has_value()) << "expected " << to_string(code) << " at " << field << ", decoded fine";
  EXPECT_EQ(to_string(error->code), to_string(code)) << error->describe();
  EXPECT_EQ(error->field, field) << error->describe();
}

template <class Record>
std::optional<Error> error_of(const Result<Record>& result) {
  if (result) return std::nullopt;
  return result.error();
}

// ---------------------------------------------------------------- round trips

TEST(WireRoundTrip, RequestWithEveryMember) {
  const Request record = samples::request();
  const auto decoded = decode_request(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireEncodeInto, SameBytesAsEncodeWhateverTheBufferHeld) {
  const Request record = samples::request();
  Request small;
  small.request_id = "r";
  small.key = "k";
  // A buffer reused from a longer record, then from a shorter one: each
  // time exactly encode()'s bytes, nothing left over from before.
  std::string buffer(100'000, 'x');
  encode_into(record, buffer);
  EXPECT_EQ(buffer, encode(record));
  const auto decoded = decode_request(buffer);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
  encode_into(small, buffer);
  EXPECT_EQ(buffer, encode(small));
  encode_into(record, buffer);
  EXPECT_EQ(buffer, encode(record));
}

TEST(WireRoundTrip, ShadowResultWithPlanAndError) {
  const ShadowResult record = samples::shadow_result();
  const auto decoded = decode_result(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireRoundTrip, MismatchWithEveryOptionalMember) {
  const Mismatch record = samples::mismatch();
  const auto decoded = decode_mismatch(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireRoundTrip, MismatchWithoutOptionalMembers) {
  Mismatch record;
  record.kind = "shadow_missing";
  record.request_id = "r-1";
  record.key = "r-1";
  record.ts_us = 5;
  record.detail = "no shadow result within 30 s";
  const std::string json = encode(record);
  EXPECT_EQ(json.find("\"primary\""), std::string::npos);
  EXPECT_EQ(json.find("\"params\""), std::string::npos);
  const auto decoded = decode_mismatch(json);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireRoundTrip, Summary) {
  const Summary record = samples::summary();
  const auto decoded = decode_summary(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireRoundTrip, DeadLetter) {
  const DeadLetter record = samples::dead_letter();
  const auto decoded = decode_dead_letter(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
}

TEST(WireRoundTrip, ExtremeNumbersAndControlCharacters) {
  Request record = samples::request();
  record.ts_us = std::numeric_limits<int64_t>::max();
  constexpr char kControls[] = "SELECT '\0\x01\x1f\x7f'";
  record.statements[0].sql = std::string(kControls, sizeof kControls - 1) + "\"\\/\u2028";
  record.statements[0].result.ordered = ~0ULL;
  record.statements[0].result.unordered = 0;
  record.statements[0].result.columns[0].type_oid = std::numeric_limits<uint32_t>::max();
  record.statements[0].result.rows = std::numeric_limits<int64_t>::max();
  const auto decoded = decode_request(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);

  Summary summary = samples::summary();
  summary.compared = std::numeric_limits<uint64_t>::max();
  summary.primary_latency.p99_us = 1e-300;
  summary.shadow_latency.max_us = 1.7976931348623157e308;
  const auto decoded_summary = decode_summary(encode(summary));
  ASSERT_TRUE(decoded_summary) << decoded_summary.error().describe();
  EXPECT_EQ(*decoded_summary, summary);
}

TEST(WireEncode, EveryControlCharacterIsEscapedAtEveryAlignment) {
  // Long enough for any vectorized scan, shifted so each byte meets every lane.
  std::string controls;
  for (char c = 1; c < 0x20; ++c) controls += c;
  for (size_t shift = 0; shift < 16; ++shift) {
    Request record = samples::request();
    record.statements[0].sql = std::string(shift, 'x') + controls + controls + std::string(40, 'y');
    const std::string json = encode(record);
    for (char c : json) ASSERT_GE(static_cast<unsigned char>(c), 0x20) << "raw control character in the output";
    const auto decoded = decode_request(json);
    ASSERT_TRUE(decoded) << decoded.error().describe();
    EXPECT_EQ(decoded->statements[0].sql, record.statements[0].sql);
  }
}

TEST(WireEncode, VersionComesFirst) {
  EXPECT_EQ(encode(samples::request()).rfind("{\"v\":1,", 0), 0u);
  EXPECT_EQ(encode(samples::dead_letter()).rfind("{\"v\":1,", 0), 0u);
}

TEST(WireEncode, InvalidUtf8BecomesReplacementCharacters) {
  Request record = samples::request();
  record.statements[0].sql = "SELECT '\xff\xfe' || 'ok' || '\xc3' || '\xed\xa0\x80'";  // stray, cut-off, surrogate
  record.statements[0].params[0] = std::string("caf\xe9");                              // Latin-1 é
  record.session.extra.emplace_back("bad\x80name", "v\xc0\xaf");                        // overlong '/'
  const std::string json = encode(record);
  EXPECT_TRUE(simdjson::validate_utf8(json.data(), json.size()));
  const auto decoded = decode_request(json);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(decoded->statements[0].sql,
            "SELECT '\xEF\xBF\xBD\xEF\xBF\xBD' || 'ok' || '\xEF\xBF\xBD' || '\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD'");
  EXPECT_EQ(decoded->statements[0].params[0], "caf\xEF\xBF\xBD");
  EXPECT_EQ(decoded->session.extra.back().first, "bad\xEF\xBF\xBDname");
  EXPECT_EQ(decoded->session.extra.back().second, "v\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(WireEncode, ValidMultibyteTextIsKeptAsIs) {
  Request record = samples::request();
  record.statements[0].sql = "SELECT '\xF0\x9F\x98\x80 \xE6\x9D\xB1 \xC3\xA9 \xF4\x8F\xBF\xBF'";  // 4, 3, 2 bytes, U+10FFFF
  const auto decoded = decode_request(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(decoded->statements[0].sql, record.statements[0].sql);
}

TEST(WireEncode, NonFiniteNumbersStillGiveJson) {
  Mismatch record = samples::mismatch();
  record.latency_ratio = std::numeric_limits<double>::infinity();
  record.plan->total_cost = std::numeric_limits<double>::quiet_NaN();
  const auto decoded = decode_mismatch(encode(record));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(decoded->latency_ratio, std::numeric_limits<double>::max());
  EXPECT_EQ(decoded->plan->total_cost, 0);
}

// ------------------------------------------------- shape: order, unknown members

TEST(WireDecode, MembersInAnyOrderAndUnknownMembersIgnored) {
  const std::string json = R"({
    "statements": [{"result": {"latency_us": 7, "digests": {"columns": ["00000000000000ff"], "unordered": "0000000000000002",
                                 "ordered": "0000000000000001", "future": {"a": [1, 2.5, -3e10, null, true, "x"]}},
                               "columns": [{"type": 23, "name": "n", "width": 4}], "rows": 1, "message": "", "sqlstate": "",
                               "status": "ok"},
                    "fingerprint": "00112233445566ff", "params": [null, "1"], "sql": "SELECT $2::int AS n", "trace": {}}],
    "tx": "autocommit",
    "session": {"extra": {"lc_monetary": "C"}, "search_path": "public", "interval_style": "iso_8601",
                "date_style": "ISO, MDY", "time_zone": "UTC", "lc_numeric": "C"},
    "source": "app", "key": "k", "ts": 1, "request_id": "r", "new_in_1_3": [[[]]], "v": 1})";
  const auto decoded = decode_request(json);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  const Request& record = *decoded;
  EXPECT_EQ(record.request_id, "r");
  EXPECT_EQ(record.session.time_zone, "UTC");
  EXPECT_EQ(record.session.interval_style, "iso_8601");
  ASSERT_EQ(record.session.extra.size(), 1u);
  EXPECT_EQ(record.session.extra[0], (std::pair<std::string, std::string>{"lc_monetary", "C"}));
  ASSERT_EQ(record.statements.size(), 1u);
  const Statement& statement = record.statements[0];
  EXPECT_EQ(statement.params, (std::vector<std::optional<std::string>>{std::nullopt, std::string("1")}));
  EXPECT_EQ(statement.result.ordered, 1u);
  EXPECT_EQ(statement.result.unordered, 2u);
  EXPECT_EQ(statement.result.column_digests, std::vector<uint64_t>{255});
  EXPECT_EQ(statement.result.columns, (std::vector<digest::Column>{{"n", 23}}));
  EXPECT_EQ(statement.result.latency_us, 7);
}

TEST(WireDecode, EscapedMemberNamesAreRecognized) {
  const std::string json = edited(encode(samples::dead_letter()), [](rapidjson::Document& document) {
    document.RemoveMember("consumer");
  });
  std::string escaped = json;
  escaped.insert(1, R"("con\u0073umer":"x",)");
  const auto decoded = decode_dead_letter(escaped);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(decoded->consumer, "x");
}

TEST(WireDecode, EscapedStringsAndDigestsReadAsTheirText) {
  // Escapes take the unescaping path; the plain fast path must agree with it.
  Request record = samples::request();
  record.statements[0].result.ordered = 0x0123456789abcdefULL;
  std::string json = encode(record);
  const auto replace = [&](std::string_view from, std::string_view to) {
    const size_t at = json.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    json.replace(at, from.size(), to);
  };
  replace(R"("0123456789abcdef")", R"("\u0030123456789abcdef")");
  replace(R"("tenant:4711")", R"("tenant\u003a4711")");
  replace(R"("5e6f0a1b2c3d4e5f")", R"("5e6f0a1b2c3d4e5\u0066")");
  const auto decoded = decode_request(json);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
  // Upper-case hex and a short digest stay refused on both paths.
  std::string upper = encode(record);
  upper.replace(upper.find("0123456789abcdef"), 16, "0123456789ABCDEF");
  expect_error(error_of(decode_request(upper)), ErrorCode::invalid_value, "statements[0].result.digests.ordered");
  std::string escaped_upper = encode(record);
  escaped_upper.replace(escaped_upper.find("0123456789abcdef"), 16, R"(0123456789abcde\u0046)");
  expect_error(error_of(decode_request(escaped_upper)), ErrorCode::invalid_value, "statements[0].result.digests.ordered");
}

// ---------------------------------------------------------------- decode into a kept record

TEST(WireDecodeInto, ReusedRecordEqualsAFreshDecode) {
  Request big = samples::request();
  big.statements.push_back(big.statements[0]);
  big.statements[0].params = {std::string("a long parameter value that does not fit in a short string"), std::nullopt,
                              std::string("x")};
  big.session.extra.emplace_back("lc_monetary", "C");
  Request small = samples::request();
  small.statements.resize(1);
  small.statements[0].params = {std::nullopt, std::string("now a string where there was NULL")};
  small.statements[0].result.columns.resize(1);
  small.statements[0].result.column_digests.resize(1);
  small.statements[0].result.column_ordered.clear();  // optional: absent in the small record
  small.statements[0].result.column_values.resize(1);
  small.session.extra.clear();
  small.request_id = "r";

  Request kept;
  for (const Request* record : {&big, &small, &big, &small, &small}) {
    ASSERT_TRUE(decode_request_into(encode(*record), kept).ok());
    EXPECT_EQ(kept, *record);
    EXPECT_EQ(kept, *decode_request(encode(*record)));
  }
}

TEST(WireDecodeInto, ReusedResultEqualsAFreshDecode) {
  ShadowResult big = samples::shadow_result();  // a plan, the catalog's notes
  big.published_below = 918270;
  big.statements.push_back(big.statements[0]);
  ShadowResult small = samples::shadow_result();
  small.statements.resize(1);
  small.statements[0].result.volatile_columns.clear();  // optional members absent
  small.statements[0].result.volatile_statement.clear();
  small.statements[0].result.order_total.reset();
  small.statements[0].result.column_ordered.clear();
  ShadowResult unplanned = big;  // the plan absent where the last record had one
  unplanned.statements[1].plan.reset();
  unplanned.published_below = -1;
  unplanned.request_id = "r";

  ShadowResult kept;
  for (const ShadowResult* record : {&big, &small, &big, &unplanned, &small, &big}) {
    ASSERT_TRUE(decode_result_into(encode(*record), kept).ok());
    EXPECT_EQ(kept, *record);
    EXPECT_EQ(kept, *decode_result(encode(*record)));
  }
  // Still usable after an error.
  EXPECT_FALSE(decode_result_into("{", kept).ok());
  ASSERT_TRUE(decode_result_into(encode(small), kept).ok());
  EXPECT_EQ(kept, small);
}

TEST(WireDecodeInto, ErrorsAreTheOnesDecodeRequestGives) {
  const std::string good = encode(samples::request());
  const std::vector<std::string> bad = {
      "", "[]", "{", good + "x", good.substr(0, good.size() - 1),
      edited(good, [](rapidjson::Document& d) { d.RemoveMember("key"); }),
      edited(good, [](rapidjson::Document& d) { d["statements"][1]["fingerprint"].SetString("XYZ"); }),
      edited(good, [](rapidjson::Document& d) { d["statements"][0]["result"]["digests"]["columns"].PopBack(); }),
      edited(good, [](rapidjson::Document& d) { d["v"].SetInt(3); }),
  };
  Request kept;
  for (const std::string& json : bad) {
    ASSERT_TRUE(decode_request_into(good, kept).ok());
    const auto decoded = decode_request_into(json, kept);
    const auto fresh = decode_request(json);
    ASSERT_FALSE(decoded.ok()) << json;
    ASSERT_FALSE(fresh) << json;
    EXPECT_EQ(decoded.error().describe(), fresh.error().describe());
  }
  Limits small;
  small.max_record_bytes = 10;
  const auto decoded = decode_request_into(good, kept, small);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::too_large);
  ASSERT_TRUE(decode_request_into(good, kept).ok());  // still usable after errors
  EXPECT_EQ(kept, samples::request());
}

TEST(WireDecode, DuplicateMemberIsMalformed) {
  std::string json = encode(samples::dead_letter());
  json.insert(1, R"("consumer":"first",)");
  expect_error(error_of(decode_dead_letter(json)), ErrorCode::malformed, "consumer");
}

TEST(WireDecode, UnknownMemberMustStillBeJson) {
  std::string json = encode(samples::dead_letter());
  json.insert(1, R"("later":[1,tru],)");
  expect_error(error_of(decode_dead_letter(json)), ErrorCode::malformed, "later[1]");
  json = encode(samples::dead_letter());
  json.insert(1, R"("later":{"a":nul},)");
  expect_error(error_of(decode_dead_letter(json)), ErrorCode::malformed, "later.a");
}

TEST(WireDecode, UnknownMemberNestedTooDeeplyIsMalformed) {
  std::string json = encode(samples::dead_letter());
  json.insert(1, "\"deep\":" + std::string(100, '[') + std::string(100, ']') + ",");
  EXPECT_EQ(error_of(decode_dead_letter(json))->code, ErrorCode::malformed);
}

TEST(WireDecode, NotJsonIsMalformed) {
  const std::string valid = encode(samples::summary());
  for (const std::string& bad :
       {std::string(""), std::string("   "), std::string("hello"), std::string("{"), std::string("[1,2]"),
        std::string("\"text\""), std::string("42"), std::string("null"), valid.substr(0, valid.size() - 1),
        valid + "}", valid + " {}", valid + " x", std::string("{\"v\":1,}"),
        std::string("{\"v\":1,\"comparator\":\"\xff\"}"),               // not UTF-8
        std::string("{\"v\":1,\"comparator\":\"\\ud800\"}"),           // lone surrogate
        std::string("{\"v\":1,\"comparator\":\"\\q\"}")}) {             // unknown escape
    const auto error = error_of(decode_summary(bad));
    ASSERT_TRUE(error.has_value()) << bad;
    EXPECT_EQ(error->code, ErrorCode::malformed) << bad << " -> " << error->describe();
  }
}

// ------------------------------------------------------------------- versions

TEST(WireVersion, HigherOrLowerMajorIsUnsupported) {
  for (int version : {3, 99, 0, -1}) {
    const std::string json = edited(encode(samples::request()), [&](rapidjson::Document& document) {
      document["v"].SetInt(version);
    });
    expect_error(error_of(decode_request(json)), ErrorCode::unsupported_version, "v");
  }
  // Only requests have a v2; every other record is v1 alone.
  const std::string result_v2 = edited(encode(samples::shadow_result()), [](rapidjson::Document& document) {
    document["v"].SetInt(2);
  });
  expect_error(error_of(decode_result(result_v2)), ErrorCode::unsupported_version, "v");
}

// ------------------------------------------------------------- requests v2

TEST(WireRequestV2, BinaryParametersResultFormatAndCopyDataRoundTrip) {
  const Request record = samples::binary_request();
  const std::string json = encode(record);
  EXPECT_EQ(json.rfind("{\"v\":2,", 0), 0u) << json.substr(0, 40);
  const auto decoded = decode_request(json);
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, record);
  // Binary bytes travel as base64, text parameters as themselves.
  EXPECT_NE(json.find(R"("params":["AAIAAAAAAAIADA+g","AAKlG8heQAA=",null,"plain text"])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("param_types":[1700,1184,25,0],"param_formats":[1,1,1,0],"result_format":1)"), std::string::npos);
  EXPECT_NE(json.find(R"("format":1)"), std::string::npos);
  // The reused-record decoder reads it the same, and forgets it for a v1 record.
  Request reused;
  ASSERT_TRUE(decode_request_into(json, reused));
  EXPECT_EQ(reused, record);
  ASSERT_TRUE(decode_request_into(encode(samples::request()), reused));
  EXPECT_EQ(reused, samples::request());
}

TEST(WireRequestV2, ARequestThatNeedsNoneOfItIsWrittenAsV1) {
  EXPECT_EQ(request_version(samples::request()), 1);
  EXPECT_EQ(encode(samples::request()).rfind("{\"v\":1,", 0), 0u);
  Request typed = samples::request();
  typed.statements[1].binding.result_format = 1;
  EXPECT_EQ(request_version(typed), 2);
  Request copy = samples::request();
  copy.statements[0].copy_data = std::string();
  EXPECT_EQ(request_version(copy), 2);
}

TEST(WireRequestV2, AV1RecordCarryingV2MembersIsRefused) {
  // A v1 reader would ignore them and replay base64 as text: never in v1.
  for (const char* member : {"param_formats", "result_format", "copy_data"}) {
    const std::string json = edited(encode(samples::binary_request()), [&](rapidjson::Document& document) {
      document["v"].SetInt(1);
      auto& statements = document["statements"];
      for (auto& statement : statements.GetArray()) {
        for (const char* other : {"param_types", "param_formats", "result_format", "copy_data"}) {
          if (std::string_view(other) != member) statement.RemoveMember(other);
        }
      }
    });
    expect_error(error_of(decode_request(json)), ErrorCode::invalid_value,
                 std::string_view(member) == "copy_data" ? "statements[1]" : "statements[0]");
  }
}

TEST(WireRequestV2, BindingMustBeParallelAndBinaryValuesBase64) {
  const std::string json = encode(samples::binary_request());
  const auto with = [&](auto&& change) { return edited(json, change); };
  expect_error(error_of(decode_request(with([](rapidjson::Document& document) {
                 document["statements"][0]["param_formats"].PopBack();
               }))),
               ErrorCode::invalid_value, "statements[0].param_formats");
  expect_error(error_of(decode_request(with([](rapidjson::Document& document) {
                 document["statements"][0]["param_types"].PushBack(23, document.GetAllocator());
               }))),
               ErrorCode::invalid_value, "statements[0].param_types");
  expect_error(error_of(decode_request(with([](rapidjson::Document& document) {
                 document["statements"][0]["params"][0].SetString("not base64!");
               }))),
               ErrorCode::invalid_value, "statements[0].params[0]");
  expect_error(error_of(decode_request(with([](rapidjson::Document& document) {
                 document["statements"][1]["copy_data"].SetString("QQ=");
               }))),
               ErrorCode::invalid_value, "statements[1].copy_data");
  expect_error(error_of(decode_request(with([](rapidjson::Document& document) {
                 document["statements"][0]["result_format"].SetInt(2);
               }))),
               ErrorCode::invalid_value, "statements[0].result_format");
  // A text parameter stays text, whatever it looks like.
  const auto decoded = decode_request(with([](rapidjson::Document& document) {
    document["statements"][0]["params"][3].SetString("QUJD");
  }));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(decoded->statements[0].params[3], "QUJD");
}

TEST(WireRequestV2, Base64OfEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 260; ++i) {
    bytes.push_back(static_cast<char>(i * 7));
    Request record = samples::binary_request();
    record.statements[0].params[0] = bytes;
    record.statements[1].copy_data = bytes.substr(0, static_cast<size_t>(i % 5));
    const auto decoded = decode_request(encode(record));
    ASSERT_TRUE(decoded) << i << ": " << decoded.error().describe();
    ASSERT_EQ(decoded->statements[0].params[0], bytes) << i;
    ASSERT_EQ(decoded->statements[1].copy_data, bytes.substr(0, static_cast<size_t>(i % 5))) << i;
  }
}

TEST(WireVersion, AV1RecordWithoutTheV11MembersStillReads) {
  // As an older writer wrote it: no type names, no sequence or canonical
  // digests, no catalog facts.
  const std::string json = R"({"v": 1, "request_id": "r", "ts": 1, "key": "k", "executor": "e",
    "source_partition": 0, "source_offset": 1, "statements": [{"fingerprint": "", "result": {
    "status": "ok", "sqlstate": "", "message": "", "rows": 1, "columns": [{"name": "id", "type": 23}],
    "digests": {"ordered": "0000000000000001", "unordered": "0000000000000002", "columns": ["0000000000000003"]},
    "latency_us": 5}}]})";
  auto decoded = decode_result(json);
  ASSERT_TRUE(decoded.ok()) << decoded.error().describe();
  const auto& result = decoded->statements[0].result;
  EXPECT_EQ(result.columns[0].type_name, "");
  EXPECT_TRUE(result.column_ordered.empty());
  EXPECT_TRUE(result.column_values.empty());
  EXPECT_TRUE(result.volatile_columns.empty());
  EXPECT_FALSE(result.order_total.has_value());
  // A v1.1 member that is not parallel to the columns is refused by name.
  std::string bad = json;
  bad.replace(bad.find(R"("columns": ["0000000000000003"])"), 31,
              R"("columns": ["0000000000000003"], "value_columns": [])");
  EXPECT_TRUE(decode_result(bad).ok());  // empty: absent
  bad = json;
  bad.replace(bad.find(R"("columns": ["0000000000000003"])"), 31,
              R"("columns": ["0000000000000003"], "ordered_columns": ["0000000000000004", "0000000000000005"])");
  expect_error(error_of(decode_result(bad)), ErrorCode::invalid_value, "statements[0].result.digests.ordered_columns");
}

TEST(WireVersion, NewerMajorIsReportedEvenWhenItsShapeBreaksFirst) {
  // A v3 record whose changed members come before "v".
  const std::string json = R"({"request_id": 17, "statements": {}, "v": 3})";
  expect_error(error_of(decode_request(json)), ErrorCode::unsupported_version, "v");
  expect_error(error_of(decode_request(R"({"ts": 1})")), ErrorCode::missing_field, "v");
}

TEST(WireVersion, MissingOrMistypedVersion) {
  const std::string base = encode(samples::summary());
  expect_error(error_of(decode_summary(edited(base, [](auto& document) { document.RemoveMember("v"); }))),
               ErrorCode::missing_field, "v");
  expect_error(error_of(decode_summary(edited(base, [](auto& document) { document["v"].SetString("1"); }))),
               ErrorCode::wrong_type, "v");
  expect_error(error_of(decode_summary(edited(base, [](auto& document) { document["v"].SetDouble(1.5); }))),
               ErrorCode::wrong_type, "v");
}

// ----------------------------------------- every member: missing and mistyped

struct Case {
  std::string name;
  std::string json;
  Decode decode;
  // Members that may be absent; their children are still checked.
  std::vector<std::string> optional_paths;
  // Objects whose members are free-form names (settings, counters).
  std::vector<std::string> free_form_objects;
};

std::vector<Case> cases() {
  return {
      {"request", encode(samples::request()), decoder_of(decode_request), {}, {"session.extra"}},
      {"result", encode(samples::shadow_result()), decoder_of(decode_result), {"statements[1].plan"}, {}},
      {"mismatch", encode(samples::mismatch()), decoder_of(decode_mismatch), {"primary", "shadow", "plan", "params"}, {}},
      {"summary", encode(samples::summary()), decoder_of(decode_summary), {}, {"discrepancies"}},
      {"dead_letter", encode(samples::dead_letter()), decoder_of(decode_dead_letter), {}, {}},
  };
}

// A value of another JSON type than `value`, which no member accepts in its place.
rapidjson::Value other_type(const rapidjson::Value& value, rapidjson::Document::AllocatorType& allocator) {
  rapidjson::Value replacement;
  if (value.IsString()) {
    replacement.SetInt(7);
  } else if (value.IsNumber() || value.IsBool()) {
    replacement.SetString("7", allocator);
  } else if (value.IsObject()) {
    replacement.SetArray();
  } else if (value.IsArray()) {
    replacement.SetObject();
  } else {
    replacement.SetInt(7);
  }
  return replacement;
}

struct Probe {
  std::string path;     // as the decoder names it
  std::string pointer;  // JSON pointer
  bool removable;
};

void collect(const rapidjson::Value& value, const std::string& path, const std::string& pointer, const Case& c,
             bool in_free_form, std::vector<Probe>& out) {
  if (value.IsObject()) {
    const bool free_form = std::count(c.free_form_objects.begin(), c.free_form_objects.end(), path) > 0;
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      const std::string name = it->name.GetString();
      const std::string child = path.empty() ? name : path + "." + name;
      // Members added in v1.1 are optional wherever they appear.
      static const std::set<std::string> kOptionalMembers = {"type_name",        "ordered_columns",    "value_columns",
                                                             "volatile_columns", "volatile_statement", "order_total"};
      const bool removable = free_form || std::count(c.optional_paths.begin(), c.optional_paths.end(), child) > 0 ||
                             kOptionalMembers.contains(name);
      out.push_back({child, pointer + "/" + name, removable});
      collect(it->value, child, pointer + "/" + name, c, free_form, out);
    }
  } else if (value.IsArray()) {
    for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
      const std::string child = path + "[" + std::to_string(i) + "]";
      out.push_back({child, pointer + "/" + std::to_string(i), true});
      collect(value[i], child, pointer + "/" + std::to_string(i), c, in_free_form, out);
    }
  }
}

TEST(WireShape, EveryRequiredMemberMissingIsNamed) {
  for (const Case& c : cases()) {
    rapidjson::Document document;
    document.Parse(c.json.c_str());
    std::vector<Probe> probes;
    collect(document, "", "", c, false, probes);
    size_t checked = 0;
    for (const Probe& probe : probes) {
      if (probe.path.back() == ']') continue;  // array elements are counted, not required
      const std::string json = edited(c.json, [&](rapidjson::Document& copy) {
        rapidjson::Pointer(probe.pointer.c_str()).Erase(copy);
      });
      const auto error = c.decode(json, Limits{});
      if (probe.removable) {
        EXPECT_FALSE(error.has_value()) << c.name << ": " << probe.path << " is optional, got " << error->describe();
      } else {
        expect_error(error, ErrorCode::missing_field, probe.path);
        ++checked;
      }
    }
    EXPECT_GT(checked, 8u) << c.name;
  }
}

TEST(WireShape, EveryMemberOfTheWrongTypeIsNamed) {
  for (const Case& c : cases()) {
    rapidjson::Document document;
    document.Parse(c.json.c_str());
    std::vector<Probe> probes;
    collect(document, "", "", c, false, probes);
    for (const Probe& probe : probes) {
      const std::string json = edited(c.json, [&](rapidjson::Document& copy) {
        rapidjson::Value* target = rapidjson::Pointer(probe.pointer.c_str()).Get(copy);
        *target = other_type(*target, copy.GetAllocator());
      });
      SCOPED_TRACE(c.name + " " + probe.path);
      expect_error(c.decode(json, Limits{}), ErrorCode::wrong_type, probe.path);
    }
  }
}

// ------------------------------------------------------------------- limits

TEST(WireLimits, RecordBytes) {
  const std::string json = encode(samples::request());
  Limits limits;
  limits.max_record_bytes = json.size() - 1;
  expect_error(error_of(decode_request(json, limits)), ErrorCode::too_large, "");
  limits.max_record_bytes = json.size();
  EXPECT_TRUE(decode_request(json, limits));
}

TEST(WireLimits, EachLimitNamesItsField) {
  const Request record = samples::request();
  const std::string json = encode(record);
  struct LimitCase {
    std::function<void(Limits&)> set;
    std::string field;
  };
  const std::vector<LimitCase> limit_cases = {
      {[&](Limits& l) { l.max_sql_bytes = record.statements[0].sql.size() - 1; }, "statements[0].sql"},
      {[&](Limits& l) { l.max_params = 1; }, "statements[0].params"},
      {[&](Limits& l) { l.max_param_bytes = record.statements[1].params[1]->size() - 1; }, "statements[1].params[1]"},
      {[&](Limits& l) { l.max_statements = 2; }, "statements"},
      {[&](Limits& l) { l.max_string_bytes = record.source.size() - 1; }, "request_id"},
      {[&](Limits& l) { l.max_columns = 2; }, "statements[0].result.columns"},
  };
  for (const auto& limit_case : limit_cases) {
    Limits limits;
    limit_case.set(limits);
    expect_error(error_of(decode_request(json, limits)), ErrorCode::too_large, limit_case.field);
  }
  // Exactly at each limit is fine.
  Limits exact;
  exact.max_sql_bytes = record.statements[0].sql.size();
  exact.max_params = 2;
  exact.max_param_bytes = record.statements[1].params[1]->size();
  exact.max_statements = 3;
  exact.max_columns = 3;
  EXPECT_TRUE(decode_request(json, exact));
}

TEST(WireLimits, MismatchAndSummaryUseSqlLimitForNormalizedSql) {
  Limits limits;
  limits.max_sql_bytes = 10;
  expect_error(error_of(decode_mismatch(encode(samples::mismatch()), limits)), ErrorCode::too_large, "normalized_sql");
  expect_error(error_of(decode_summary(encode(samples::summary()), limits)), ErrorCode::too_large, "normalized_sql");
  limits = Limits{};
  limits.max_columns = 0;
  expect_error(error_of(decode_mismatch(encode(samples::mismatch()), limits)), ErrorCode::too_large, "primary.columns");
}

TEST(WireLimits, HugeRecordThenSmallOnes) {
  Request record = samples::request();
  record.statements[0].sql.assign(3 << 20, 'x');
  Limits limits;
  limits.max_sql_bytes = 4 << 20;
  const auto big = decode_request(encode(record), limits);
  ASSERT_TRUE(big) << big.error().describe();
  EXPECT_EQ(*big, record);
  const auto small = decode_request(encode(samples::request()));
  ASSERT_TRUE(small);
  EXPECT_EQ(*small, samples::request());
}

// ------------------------------------------------------------ value domains

TEST(WireDomain, ValuesOutsideTheirDomain) {
  struct DomainCase {
    std::string name;
    std::string json;
    Decode decode;
    const char* pointer;
    std::function<void(rapidjson::Value&, rapidjson::Document::AllocatorType&)> change;
    std::string field;
  };
  using Alloc = rapidjson::Document::AllocatorType;
  auto text = [](const char* value) {
    return [value](rapidjson::Value& v, Alloc& a) { v.SetString(value, a); };
  };
  auto integer = [](int64_t value) { return [value](rapidjson::Value& v, Alloc&) { v.SetInt64(value); }; };
  auto unsigned_integer = [](uint64_t value) { return [value](rapidjson::Value& v, Alloc&) { v.SetUint64(value); }; };
  auto number = [](double value) { return [value](rapidjson::Value& v, Alloc&) { v.SetDouble(value); }; };
  const std::string request = encode(samples::request());
  const std::string result = encode(samples::shadow_result());
  const std::string mismatch = encode(samples::mismatch());
  const std::string summary = encode(samples::summary());
  const std::string dead_letter = encode(samples::dead_letter());
  const Decode req = decoder_of(decode_request), res = decoder_of(decode_result), mis = decoder_of(decode_mismatch),
               sum = decoder_of(decode_summary), dlq = decoder_of(decode_dead_letter);
  const std::vector<DomainCase> domain_cases = {
      {"tx", request, req, "/tx", text("maybe"), "tx"},
      {"status", request, req, "/statements/2/result/status", text("fine"), "statements[2].result.status"},
      {"empty request id", request, req, "/request_id", text(""), "request_id"},
      {"empty key", request, req, "/key", text(""), "key"},
      {"negative ts", request, req, "/ts", integer(-1), "ts"},
      {"negative rows", request, req, "/statements/0/result/rows", integer(-5), "statements[0].result.rows"},
      {"negative latency", request, req, "/statements/0/result/latency_us", integer(-5), "statements[0].result.latency_us"},
      {"type oid over 32 bits", request, req, "/statements/0/result/columns/1/type", integer(int64_t{1} << 32),
       "statements[0].result.columns[1].type"},
      {"ts beyond int64", request, req, "/ts", unsigned_integer(~0ULL), "ts"},
      {"digest not hex", request, req, "/statements/1/result/digests/ordered", text("zzzzzzzzzzzzzzzz"),
       "statements[1].result.digests.ordered"},
      {"digest uppercase", request, req, "/statements/1/result/digests/unordered", text("ABCDEF0123456789"),
       "statements[1].result.digests.unordered"},
      {"digest short", request, req, "/statements/0/result/digests/columns/2", text("abc"),
       "statements[0].result.digests.columns[2]"},
      {"fingerprint", request, req, "/statements/2/fingerprint", text("not-a-fingerprint"), "statements[2].fingerprint"},
      {"sqlstate", request, req, "/statements/0/result/sqlstate", text("2200"), "statements[0].result.sqlstate"},
      {"sqlstate lowercase", request, req, "/statements/0/result/sqlstate", text("22p02"), "statements[0].result.sqlstate"},
      {"empty statements", request, req, "/statements", [](rapidjson::Value& v, Alloc&) { v.SetArray(); }, "statements"},
      {"empty setting name", request, req, "/session/extra", [](rapidjson::Value& v, Alloc& a) {
         v.AddMember(rapidjson::Value("", a), rapidjson::Value("x", a), a);
       }, "session.extra"},
      {"partition below -1", result, res, "/source_partition", integer(-2), "source_partition"},
      {"partition over int32", result, res, "/source_partition", integer(int64_t{1} << 31), "source_partition"},
      {"offset below -1", result, res, "/source_offset", integer(-2), "source_offset"},
      {"negative cost", result, res, "/statements/1/plan/total_cost", number(-1), "statements[1].plan.total_cost"},
      {"kind", mismatch, mis, "/kind", text("vibes_mismatch"), "kind"},
      {"statement index", mismatch, mis, "/statement_index", integer(-2), "statement_index"},
      {"negative ratio", mismatch, mis, "/latency_ratio", number(-0.5), "latency_ratio"},
      {"counter name", summary, sum, "/discrepancies", [](rapidjson::Value& v, Alloc& a) {
         v.AddMember(rapidjson::Value("Value Mismatch", a), rapidjson::Value(1), a);
       }, "discrepancies.Value Mismatch"},
      {"negative count", summary, sum, "/primary_latency/count", integer(-1), "primary_latency.count"},
      {"negative percentile", summary, sum, "/shadow_latency/p95_us", number(-3), "shadow_latency.p95_us"},
      {"error code", dead_letter, dlq, "/error_code", text("oops"), "error_code"},
      {"negative payload bytes", dead_letter, dlq, "/payload_bytes", integer(-1), "payload_bytes"},
  };
  for (const auto& d : domain_cases) {
    SCOPED_TRACE(d.name);
    const std::string json = edited(d.json, [&](rapidjson::Document& document) {
      rapidjson::Value* target = rapidjson::Pointer(d.pointer).Get(document);
      ASSERT_NE(target, nullptr) << d.pointer;
      d.change(*target, document.GetAllocator());
    });
    const auto error = d.decode(json, Limits{});
    expect_error(error, ErrorCode::invalid_value, d.field);
  }
}

TEST(WireDomain, ColumnDigestsMustMatchColumns) {
  const std::string json = edited(encode(samples::request()), [](rapidjson::Document& document) {
    rapidjson::Pointer("/statements/0/result/digests/columns").Get(document)->PopBack();
  });
  expect_error(error_of(decode_request(json)), ErrorCode::invalid_value, "statements[0].result.digests.columns");
}

TEST(WireDomain, IntegerTooLargeForAnyType) {
  std::string json = encode(samples::dead_letter());
  const size_t at = json.find("\"payload_bytes\":") + std::string("\"payload_bytes\":").size();
  json.replace(at, json.find('}', at) - at, "99999999999999999999999");
  const auto error = error_of(decode_dead_letter(json));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "payload_bytes");
  EXPECT_NE(error->code, ErrorCode::missing_field);
}

// ------------------------------------------------------------- dead letters

TEST(WireDeadLetter, KeepsReasonAndPositionAndTruncatesOnCharacterBoundary) {
  const Error error{ErrorCode::missing_field, "statements[2].sql", "required member is absent"};
  std::string payload = "{\"sql\":\"" + std::string(10, 'a') + "\xE6\x9D\xB1\xE4\xBA\xAC" + "\"}";  // 東京 at bytes 18..23
  const DeadLetter letter = make_dead_letter(error, "shadow-executor-0", "shadow.requests", 4, 77, payload, 20);
  EXPECT_EQ(letter.error_code, "missing_field");
  EXPECT_EQ(letter.field, "statements[2].sql");
  EXPECT_EQ(letter.reason, error.describe());
  EXPECT_EQ(letter.consumer, "shadow-executor-0");
  EXPECT_EQ(letter.source_topic, "shadow.requests");
  EXPECT_EQ(letter.source_partition, 4);
  EXPECT_EQ(letter.source_offset, 77);
  EXPECT_EQ(letter.payload_bytes, payload.size());
  EXPECT_EQ(letter.payload, payload.substr(0, 18));  // 東 would end at byte 21: left out whole
  EXPECT_GT(letter.ts_us, 1'600'000'000'000'000);

  const auto decoded = decode_dead_letter(encode(letter));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, letter);
}

TEST(WireDeadLetter, InvalidBytesAreWrittenAsHexEscapes) {
  const Error error{ErrorCode::malformed, "", "not valid JSON"};
  const DeadLetter letter = make_dead_letter(error, "c", "t", 0, 0, std::string("ab\xff\xc3(\x00z", 7), 100);
  EXPECT_EQ(letter.payload, std::string("ab\\xff\\xc3(\x00z", 13));
  EXPECT_TRUE(simdjson::validate_utf8(letter.payload.data(), letter.payload.size()));
  const DeadLetter cut = make_dead_letter(error, "c", "t", 0, 0, "ab\xff\xfe", 5);
  EXPECT_EQ(cut.payload, "ab");  // "\xff" escaped needs 4 bytes; 2 + 4 > 5
  EXPECT_EQ(cut.payload_bytes, 4u);
  const auto decoded = decode_dead_letter(encode(letter));
  ASSERT_TRUE(decoded) << decoded.error().describe();
  EXPECT_EQ(*decoded, letter);
}

TEST(WireDeadLetter, HostileMemberNameIsShortenedInThePath) {
  std::string json = encode(samples::dead_letter());
  const std::string name(100'000, 'k');
  json.insert(1, "\"" + name + "\":[1,tru],");
  const auto error = error_of(decode_dead_letter(json));
  ASSERT_TRUE(error.has_value());
  EXPECT_LT(error->field.size(), 100u);
  const DeadLetter letter = make_dead_letter(*error, "c", "t", 0, 0, json);
  EXPECT_TRUE(decode_dead_letter(encode(letter)));
  EXPECT_EQ(letter.payload.size(), 4096u);
}

// ------------------------------------------------------------------- misc

TEST(WireMisc, SetDigestCopiesEverything) {
  digest::ResultDigest digest{{{"a", 23, "integer"}, {"b", 25, "text"}}, 3, 11, 12, {13, 14}, {15, 16}, {17, 18}};
  StatementResult result;
  result.set_digest(digest);
  EXPECT_EQ(result.rows, 3);
  EXPECT_EQ(result.columns, digest.columns);
  EXPECT_EQ(result.ordered, 11u);
  EXPECT_EQ(result.unordered, 12u);
  EXPECT_EQ(result.column_digests, digest.column_digests);
  EXPECT_EQ(result.column_ordered, digest.column_ordered);
  EXPECT_EQ(result.column_values, digest.column_values);
}

TEST(WireMisc, EnumNames) {
  EXPECT_EQ(to_string(Status::refused), "refused");
  EXPECT_EQ(to_string(TxMode::rollback), "rollback");
  EXPECT_TRUE(is_mismatch_kind("latency_regression"));
  EXPECT_FALSE(is_mismatch_kind("duplicate"));
}

TEST(WireMisc, DecodesConcurrentlyOnManyThreads) {
  const std::string request = encode(samples::request());
  const std::string summary = encode(samples::summary());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!decode_request(request) || !decode_summary(summary)) ++failures;
        if (encode(samples::summary()) != summary) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace shadowpipe::wire
