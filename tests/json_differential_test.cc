// Differential test of the JSON decoder (adapters/json_decoder.h) against the reference decoder
// (tests/reference/json_decoder.h: the same simdjson On-Demand decoder before its fast paths):
// thousands of random documents must give the same verdict from both — the same code, message,
// type, field and watermark, and on success byte-equal record images — as must random
// truncations and byte changes of them, through Decode and DecodePadded alike.
//
// The documents exercise every path of the production decoder: the discriminator first (its
// one-walk start) or later or missing or repeated, written plainly or with escapes; keys written
// plainly or with escapes (\u0065, \/), declared, undeclared, repeated, sharing prefixes with
// declared names, longer than 8 and than 64 bytes, names holding quotes and backslashes; values
// of the right and of wrong kinds (strings plain and escaped, bad escapes, integers at and past
// the int64 and uint64 limits, leading zeros, floats and exponents, bad atoms, nested lists and
// objects); whitespace between tokens; the punctuation type; discriminators that need escaping.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "adapters/decoder.h"
#include "adapters/json_decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "tests/reference/json_decoder.h"

namespace vigil {
namespace {

FieldDef Field(std::string name, ValueType type) { return FieldDef{std::move(name), type, {}}; }

// Every scalar type and every list type; names sharing prefixes ("card", "card_id",
// "card_id_2"), longer than 8 and than 64 bytes, and holding a quote or a backslash; Login
// declares the discriminator "type" as a field.
Schema DiffSchema() {
  using S = ScalarType;
  Schema schema;
  EventType charge;
  charge.name = "Charge";
  charge.fields = {Field("card_id", ValueType::Scalar(S::kString)),
                   Field("amount", ValueType::Scalar(S::kFloat)),
                   Field("count", ValueType::Scalar(S::kInt)),
                   Field("approved", ValueType::Scalar(S::kBool)),
                   Field("at", ValueType::Scalar(S::kTimestamp)),
                   Field("hold", ValueType::Scalar(S::kDuration)),
                   Field("tags", ValueType::List(S::kString)),
                   Field("card", ValueType::Scalar(S::kString)),
                   Field("card_id_2", ValueType::Scalar(S::kInt))};
  charge.time_field = 4;
  EventType lists;
  lists.name = "Lists";
  lists.fields = {Field("names", ValueType::List(S::kString)),
                  Field("ints", ValueType::List(S::kInt)),
                  Field("floats", ValueType::List(S::kFloat)),
                  Field("bools", ValueType::List(S::kBool)),
                  Field("times", ValueType::List(S::kTimestamp)),
                  Field("waits", ValueType::List(S::kDuration))};
  lists.time_field = -1;
  EventType login;
  login.name = "Login";
  login.fields = {Field("user", ValueType::Scalar(S::kString)),
                  Field("type", ValueType::Scalar(S::kString)),
                  Field("at", ValueType::Scalar(S::kTimestamp))};
  login.time_field = 2;
  EventType odd;
  odd.name = "Odd\"Names";
  odd.fields = {Field("account_locked_for_review_since", ValueType::Scalar(S::kTimestamp)),
                Field(std::string(70, 'x'), ValueType::Scalar(S::kInt)),
                Field("qu\"ote", ValueType::Scalar(S::kString)),
                Field("back\\slash", ValueType::Scalar(S::kFloat)),
                Field("", ValueType::Scalar(S::kBool))};
  odd.time_field = -1;
  schema.types = {charge, lists, login, odd};
  return schema;
}

// Writes random JSON documents for DiffSchema.
class DocumentWriter {
 public:
  explicit DocumentWriter(uint64_t seed) : rng_(seed) {}

  // A third of the documents are written as producers write them (keys unescaped, fields in
  // declaration order: the decoder's plain path), the rest anyhow.
  std::string Document(std::string_view discriminator) {
    producer_style_ = Chance(33);
    std::string out = "{";
    const std::vector<std::string> keys = Keys(discriminator);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i > 0) out += ",";
      Space(out);
      out += Key(keys[i]);
      Space(out);
      out += ":";
      Space(out);
      if (keys[i] == discriminator) {
        out += TypeName();
      } else if (const auto good = kGoodValues.find(keys[i]); good != kGoodValues.end() && (producer_style_ || Chance(97))) {
        std::string value = OneOf(good->second);
        while (producer_style_ && value.find('\\') != std::string::npos) value = OneOf(good->second);
        out += value;
      } else {
        Value(out, 0);
      }
      Space(out);
    }
    out += "}";
    if (Chance(20)) out += " \n";
    return out;
  }

  // One random change: a cut, a changed byte or trailing bytes.
  std::string Mutate(std::string doc) {
    switch (Pick(3)) {
      case 0: return doc.substr(0, Pick(doc.size() + 1));
      case 1: {
        static constexpr std::string_view kBytes = "\"\\{}[]:,0-.eEtfn xu\x01\xff";
        doc[Pick(doc.size())] = kBytes[Pick(kBytes.size())];
        return doc;
      }
      default: return doc + (Chance(50) ? "x" : ",{}");
    }
  }

 private:
  size_t Pick(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return static_cast<int>(Pick(100)) < percent; }
  template <typename T>
  const T& OneOf(const std::vector<T>& v) { return v[Pick(v.size())]; }

  void Space(std::string& out) {
    if (Chance(10)) out += OneOf(std::vector<std::string>{" ", "\n", "\t ", "\r\n  "});
  }

  // The keys of one document, in order: usually the discriminator first and one type's fields
  // in declaration order, then changes to that.
  std::vector<std::string> Keys(std::string_view discriminator) {
    static const std::vector<std::vector<std::string>> kTypeKeys = {
        {"card_id", "amount", "count", "approved", "at", "hold", "tags", "card", "card_id_2"},
        {"names", "ints", "floats", "bools", "times", "waits"},
        {"user", "type", "at"},
        {"account_locked_for_review_since", std::string(70, 'x'), "qu\"ote", "back\\slash", ""},
        {"watermark"}};
    static const std::vector<std::string> kOthers = {
        "event_id", "meta", "car", "card_", "card_id_", "card_id_22", "amoun", "amount2", "c",
        "account_locked_for_review_sinc", std::string(69, 'x'), std::string(71, 'x'), "x",
        "type", "kind", "typ", "types", "at", "watermark", "tag", "tags"};
    static const std::vector<std::string> kUndeclared = {"event_id", "meta", "car", "card_",
                                                         "card_id_", "amoun", "x", "typ", "types"};
    type_ = Pick(kTypeKeys.size());
    std::vector<std::string> keys = kTypeKeys[type_];
    if (!producer_style_ && Chance(30)) std::shuffle(keys.begin(), keys.end(), rng_);
    for (int k = static_cast<int>(Pick(3)); k > 0; --k) {   // undeclared or repeated keys
      const std::string& key = producer_style_ && Chance(90) ? OneOf(kUndeclared) : OneOf(kOthers);
      keys.insert(keys.begin() + static_cast<std::ptrdiff_t>(Pick(keys.size() + 1)), key);
    }
    if (!producer_style_ && Chance(10) && !keys.empty()) {
      keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(Pick(keys.size())));
    }
    const std::string d(discriminator);
    std::erase(keys, d);
    if (!Chance(5)) {   // where the discriminator goes: mostly first
      const size_t at = Chance(80) ? 0 : Pick(keys.size() + 1);
      keys.insert(keys.begin() + static_cast<std::ptrdiff_t>(at), d);
    }
    if (Chance(5)) keys.push_back(d);
    return keys;
  }

  // `text` as a JSON string, escaped as needed and at random beyond that.
  std::string Key(const std::string& text) { return Quoted(text, !producer_style_ && Chance(15)); }
  std::string Quoted(std::string_view text, bool extra_escapes) {
    std::string out = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (extra_escapes && Chance(30)) {
        out += c == '/' && Chance(50) ? std::string("\\/")
                                      : fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
      } else {
        out += c;
      }
    }
    return out + "\"";
  }

  std::string TypeName() {
    static const std::vector<std::string> kNames = {"Charge", "Lists", "Login", "Odd\\\"Names",
                                                    "$watermark"};
    if (producer_style_) return "\"" + kNames[type_] + "\"";   // the keys' type
    if (Chance(10)) {
      return OneOf(std::vector<std::string>{"5", "null", "[\"Login\"]", "{}", "\"Chrge\"", "tru",
                                            "\"Log\\x\"", "\"\""});
    }
    const std::string name = OneOf(std::vector<std::string>{"Charge", "Lists", "Login",
                                                            "Odd\"Names", "$watermark"});
    return Quoted(name, Chance(15));
  }

  void Value(std::string& out, int depth) {
    static const std::vector<std::string> kScalars = {
        "0", "1", "-1", "12", "5411", "-0", "01", "-", "1.5", "-2.25", "1.0", "1e3", "1E-2",
        "2.5e+3", "1e400", "-1e400", "1.", ".5", "12x", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "123456789012345678901234",
        "1709294400000", "true", "false", "tru", "falsy", "null", "nul", "nulll",
        "\"c1\"", "\"\"", "\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\"", "\"bad \\x escape\"",
        "\"\\u12\"", "\"2024-03-01T12:00:00Z\"", "\"2024-03-01T12:10:05.250Z\"",
        "\"2024-13-01T00:00:00Z\"", "\"2024-03-01T12:00:00\\u005a\"", "\"5m\"", "\"1h30m\"",
        "\"5x\"", "\"5\\\"m\"", "\"tags\"", "\"dev-8f14e45fceea167a5a36dedd4bea2543\"",
        "\"with/slash\"", "\"\xc3\xa9t\xc3\xa9\""};
    const size_t kind = Pick(depth > 3 ? 1 : 10);
    if (kind < 7) {
      out += OneOf(kScalars);
    } else if (kind < 9) {
      out += "[";
      for (int n = static_cast<int>(Pick(4)), i = 0; i < n; ++i) {
        if (i > 0) out += ",";
        Space(out);
        Value(out, depth + 1);
      }
      out += "]";
    } else {
      out += "{";
      for (int n = static_cast<int>(Pick(3)), i = 0; i < n; ++i) {
        if (i > 0) out += ",";
        out += Key(OneOf(std::vector<std::string>{"a", "type", "at", "deep"}));
        out += ":";
        Value(out, depth + 1);
      }
      out += "}";
    }
  }

  // Values of the right type for each declared name, so that documents often decode.
  inline static const std::map<std::string, std::vector<std::string>> kGoodValues = [] {
    const std::vector<std::string> strings = {
        "\"c1\"", "\"\"", "\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\"", "\"with/slash\"",
        "\"\xc3\xa9t\xc3\xa9\"", "\"dev-8f14e45fceea167a5a36dedd4bea2543\"", "\"with \\/ escape\""};
    const std::vector<std::string> floats = {"1.5", "12", "-2.25", "1e3", "-0", "0.1",
                                             "9223372036854775808", "18446744073709551615"};
    const std::vector<std::string> ints = {"0", "-1", "5411", "9223372036854775807",
                                           "-9223372036854775808"};
    const std::vector<std::string> bools = {"true", "false"};
    const std::vector<std::string> times = {"\"2024-03-01T12:00:00Z\"", "1709294400000", "0",
                                            "\"2024-03-01T12:10:05.250Z\"",
                                            "\"2024-03-01T12:00:00\\u005a\""};
    const std::vector<std::string> durations = {"\"5m\"", "\"1h30m\"", "60000"};
    return std::map<std::string, std::vector<std::string>>{
        {"card_id", strings}, {"card", strings}, {"user", strings}, {"type", strings},
        {"qu\"ote", strings}, {"amount", floats}, {"back\\slash", floats}, {"count", ints},
        {"card_id_2", ints}, {std::string(70, 'x'), ints}, {"approved", bools}, {"", bools},
        {"at", times}, {"account_locked_for_review_since", times}, {"watermark", times},
        {"hold", durations},
        {"tags", {"[]", "[\"a\",\"b\\n\"]", "[ \"3ds\" , \"recurring\" ]"}},
        {"names", {"[]", "[\"a\",\"b\\u0062\"]"}}, {"ints", {"[]", "[1,-2]"}},
        {"floats", {"[1.5,2]", "[]"}}, {"bools", {"[true,false]"}},
        {"times", {"[0,\"2024-03-01T12:00:00Z\"]"}}, {"waits", {"[\"5m\",1000]"}}};
  }();

  std::mt19937_64 rng_;
  bool producer_style_ = false;
  size_t type_ = 0;   // of the keys: DiffSchema's type index, 4 the punctuation
};

std::string Verdict(const DecodeStatus& s, const RecordBuilder& builder) {
  std::string out = fmt::format("code={} type={} field={} watermark={} message=\"{}\"",
                                static_cast<int>(s.code), s.type_id, s.field,
                                s.is_watermark() ? s.watermark_ms : 0, s.message);
  if (s.ok()) {
    const RecordView record = builder.record();
    const auto* bytes = reinterpret_cast<const unsigned char*>(record.image().data());
    out += " image=";
    for (size_t i = 0; i < record.size_bytes(); ++i) out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

// Runs `doc` through both decoders (one decoder pair per options, reused across documents so
// that state left by one message cannot change the next one's verdict).
struct Decoders {
  Decoders(const Schema& schema, const DecoderOptions& options)
      : production(schema, options), reference(schema, options) {}

  // Checks both give the same verdict on `doc`; true if the reference decoded a record.
  bool Same(const std::string& doc) {
    // simdjson's verdict on a truncated or unbalanced document can depend on the padding's
    // content: Decode pads with zeros (the reference's Decode with whatever longer messages
    // left in its buffer), so the reference reads the message with zeros after it; DecodePadded
    // is tried with '}' after the message (what makes simdjson check the balance), the same
    // for both.
    padded.assign(doc);
    padded.append(JsonDecoder::kPadding, '\0');
    const std::string_view in_place(padded.data(), doc.size());
    const std::string want = Verdict(reference.DecodePadded(in_place, builder), builder);
    const std::string got = Verdict(production.Decode(doc, builder), builder);
    padded.replace(doc.size(), JsonDecoder::kPadding, JsonDecoder::kPadding, '}');
    const std::string want_padded = Verdict(reference.DecodePadded(in_place, builder), builder);
    const std::string got_padded = Verdict(production.DecodePadded(in_place, builder), builder);
    if (want_padded != want) ++padding_matters;
    CAPTURE(doc);
    CHECK(got == want);
    CHECK(got_padded == want_padded);
    return want.starts_with("code=0 ");
  }

  JsonDecoder production;
  reference::JsonDecoder reference;
  RecordBuilder builder;
  std::string padded;
  int padding_matters = 0;
};

TEST_CASE("json differential: random documents and changes of them, against the reference") {
  const Schema schema = DiffSchema();
  for (const std::string_view discriminator : {"type", "kind", "ty\"pe", "watermark"}) {
    CAPTURE(discriminator);
    DecoderOptions options;
    options.discriminator = std::string(discriminator);
    Decoders decoders(schema, options);
    DocumentWriter writer(0x5eed + discriminator.size());
    int ok = 0;
    for (int i = 0; i < 4000; ++i) {
      const std::string doc = writer.Document(discriminator);
      ok += decoders.Same(doc);
      decoders.Same(writer.Mutate(doc));
    }
    // The documents do get through to records, not only to errors; but simdjson's pass 1
    // compares raw key bytes, so a discriminator that needs escaping is never found.
    if (discriminator.find('"') == std::string_view::npos) CHECK(ok > 200);
    MESSAGE(ok, " records; padding content changed the reference's verdict on ",
            decoders.padding_matters, " documents");
  }
}

TEST_CASE("json differential: hand-picked documents") {
  const Schema schema = DiffSchema();
  Decoders decoders(schema, DecoderOptions{});
  const std::vector<std::string> docs = {
      R"({"type":"Login","user":"u","type":"Login","at":0})",   // declared discriminator
      R"({"user":"u","type":"Login","at":0})",
      R"({"typ\u0065":"Login","user":"u","at":0})",   // escaped: not found by pass 1
      R"({"typ\u0065":"Login","type":"Login","user":"u","at":0})",
      R"({"type":"Log\u0069n","user":"u","at":0})",
      R"({"type":"Login","us\u0065r":"u","at":0})",
      R"({"type":"Login","user":"u\"v","at":0})",
      R"({"type":"Login","user":"u","at":0,"user":"v"})",
      R"({"type":"Login","user":"u","at":0,"us\u0065r":"v"})",
      R"({"type":"Charge","card_id":"c","card":"d","card_id_2":2,"amount":1,"count":2,)"
      R"("approved":false,"at":"2024-03-01T12:00:00Z","hold":"5m","tags":[]})",
      R"({"type":"Charge","card_id":"c","card":"d","card_id_2":2,"amount":1,"count":2,)"
      R"("approved":false,"at":"2024-03-01T12:00:00Z","hold":"5m","tags":["a","b\n",)"
      R"("c"],"event_id":"e","meta":{"type":"x"}})",
      R"({"type":"$watermark","watermark":"2024-03-01T12:00:00Z"})",
      R"({"type":"$watermark","watermark":17})",
      R"({"type" "Login"})",
      R"({5:"Login"})",
      R"({"type":"Login",})",
      "{}",
      "{\"type\":\"Login\",\"user\":\"u\",\"at\":0}" + std::string(100, ' '),
  };
  for (const std::string& doc : docs) decoders.Same(doc);
}

}  // namespace
}  // namespace vigil
