// Embedding Vigil: the public API (include/vigil/vigil.h) end to end. Compiles a rule from text
// (and shows what a rule error looks like), pushes events three ways — a typed builder, JSON
// bytes, msgpack bytes —, advances the watermark and prints the alerts the callback receives
// (here from inside the push of the event that completes the match: with the default options,
// no out-of-orderness, an event in order is matched as it is pushed).
// The tests run this program and compare its output line by line (examples/embedded.expected),
// so it doubles as a check that matching through the API works.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include <msgpack.hpp>

#include "vigil/vigil.h"

namespace {

constexpr const char* kRules = R"(
event Login {
  user: string  country: string  ok: bool  at: timestamp
  time at
  key user
}
event Transfer {
  user: string  amount: float  to_iban: string  at: timestamp
  time at
  key user
}
rule foreign_login_then_transfer {
  severity high
  key user
  within 30m
  pattern
    l: Login where ok and country != "FR"
    -> t: Transfer where amount > 1000
  emit { user: key, country: l.country, amount: t.amount }
  message "{user}: login from {country}, then a transfer of {amount}"
}
)";

constexpr int64_t kStart = 1709294400000;   // 2024-03-01T12:00:00Z

void PrintAlert(const vigil::api::Alert& a) {
  std::cout << "alert " << a.rule_name() << " v" << a.rule_version() << " " << a.severity()
            << " key=" << a.key() << " detected=" << a.detection_ms() << " id=" << a.match_id()
            << "\n";
  std::cout << "  message: " << a.message() << "\n  fields:";
  for (size_t i = 0; i < a.field_count(); ++i)
    std::cout << " " << a.field_name(i) << "=" << a.field(i).ToJson();
  std::cout << "\n  events:";
  for (size_t i = 0; i < a.event_count(); ++i) {
    std::cout << " " << a.event_variable(i) << "=" << a.event_type(i) << "#" << a.event_seq(i)
              << "@" << a.event_field(i, "at").ToString();
  }
  std::cout << "\n";
}

void Report(const char* what, const vigil::api::Status& s) {
  std::cout << "push " << what << ": "
            << (s.ok() ? std::string("ok")
                       : std::string(vigil::api::StatusCodeName(s.code())) + ": " + s.message())
            << "\n";
}

}  // namespace

int main() {
  using namespace vigil::api;

  // A rule with a typo: the Status says where.
  std::shared_ptr<const Rules> rules;
  Status s = Rules::FromText("event A { x: int  at: timestamp  time at  key x }\n"
                             "rule r { key x  pattern a: A where y > 1  emit { x: a.x } }\n",
                             &rules, nullptr, "typo.vigil");
  std::cout << "compile typo.vigil: " << s.ToString() << " [rule " << s.rule() << "]\n";

  s = Rules::FromText(kRules, &rules, nullptr, "example.vigil");
  if (!s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  std::unique_ptr<Matcher> matcher;
  s = Matcher::Create(rules, MatcherOptions{}, PrintAlert, &matcher);
  if (!s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }

  // 1. A typed event, by field names.
  EventBuilder login(rules);
  login.Start("Login").Set("user", "u1").Set("country", "RU").Set("ok", true).SetTimestamp("at", kStart);
  Report("Login (builder)", matcher->Push(login));

  // 2. JSON bytes: a small transfer, not enough for the rule.
  Report("Transfer (JSON)",
         matcher->PushJson(R"({"type": "Transfer", "user": "u1", "amount": 250, )"
                           R"("to_iban": "DE02100100100006820101", "at": "2024-03-01T12:01:00Z"})"));

  // 3. msgpack bytes: the large transfer.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(5);
  packer.pack("type"), packer.pack("Transfer");
  packer.pack("user"), packer.pack("u1");
  packer.pack("amount"), packer.pack(4800.5);
  packer.pack("to_iban"), packer.pack("LT601010012345678901");
  packer.pack("at"), packer.pack(kStart + 120000);
  Report("Transfer (msgpack)", matcher->PushMsgpack({buffer.data(), buffer.size()}));

  // An invalid event is refused with the reason; nothing else changes.
  Report("Transfer (JSON, no amount)",
         matcher->PushJson(R"({"type": "Transfer", "user": "u2", "to_iban": "x", "at": 0})"));

  // Events are matched once the watermark passes them — with no out-of-orderness allowed (the
  // default) an event in order at once, as above — and deadlines once it passes them.
  std::cout << "advance watermark\n";
  s = matcher->AdvanceWatermark(kStart + 3600000);
  if (!s.ok()) std::cout << s.ToString() << "\n";
  s = matcher->Finish();
  if (!s.ok()) std::cout << s.ToString() << "\n";

  const MatcherStats stats = matcher->stats();
  std::cout << "stats: pushed=" << stats.events_pushed << " processed=" << stats.events_processed
            << " invalid=" << stats.events_invalid << " matches=" << stats.matches << "\n";
  return 0;
}
