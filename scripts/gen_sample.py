#!/usr/bin/env python3
"""Generates the bundled sample stream rules/sample/events.jsonl (and expected.jsonl).

The stream is what `vigil run --rules rules/ --input rules/sample/events.jsonl` is demonstrated
on: about three days of event time (2024-03-01T00:00:00Z to 2024-03-04T00:00:00Z) of background
traffic for a few hundred customers, with fraud scenarios planted for every rule in rules/ and
near misses next to them that must not alert. A short prelude of old AccountActivity events
(2023) comes first, still in time order: the dormant-account rule needs a last activity more than
90 days before a transfer.

Deterministic: one seeded random.Random, no wall clock, no set/dict iteration order dependence.
Standard library only.

Layout: sample_model.py (customers, event constructors, background traffic),
sample_scenarios.py (the planted scenarios and their expectations), sample_oracle.py (a
rule-by-rule reference of the alerts), this file (assembly, checks, output, README).

How the planted expectations are kept honest: after generating, an independent oracle
(sample_oracle.py: one small evaluator per rule, following docs/matching.md for the pattern rules
and docs/language.md for the windowed ones, plus `suppress`) runs over the whole stream, and the
script fails unless the oracle's alerts are exactly the expected alerts (planted scenarios plus
the declared side effects, e.g. a card-testing cash-out is also a spending spike), and no
near-miss key alerts for its rule. Background traffic is built so that it cannot alert (see
rules/sample/README.md); the oracle proves it for this seed.

Usage: python3 scripts/gen_sample.py   (writes rules/sample/events.jsonl and expected.jsonl)
"""
import json
import os
import sys

sys.dont_write_bytecode = True   # no scripts/__pycache__ in the worktree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sample_model import (DAYS, D, EVENTS, OUT_DIR, T0, TYPES, background, iso,  # noqa: E402
                          rng, to_json)
from sample_oracle import oracle  # noqa: E402
from sample_scenarios import EXPECT, plant_all  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Assembly

def finalize():
    """Drops background events outside the stream, makes event times unique (ties would be
    broken by arrival order, which the few late lines change), delays a few background lines by
    up to 5 s, and numbers the lines (seq)."""
    prelude_end = T0
    kept = [e for e in EVENTS if e.fixed or T0 <= e.t < T0 + DAYS * D]
    kept.sort(key=lambda e: (e.t, not e.fixed))
    taken = set(e.t for e in kept if e.fixed)
    for e in kept:
        if not e.fixed:
            while e.t in taken:
                e.t += 1
            taken.add(e.t)
    kept.sort(key=lambda e: e.t)
    assert len({e.t for e in kept}) == len(kept), "event times must be unique"
    # A few background lines arrive late: after the next event, at most 4.9 s behind it.
    late = 0
    for i in rng.sample(range(1000, len(kept) - 1), 400):
        e, nxt = kept[i], kept[i + 1]
        if late < 6 and not e.fixed and not e.delay and 500 < nxt.t - e.t < 4000:
            e.delay = nxt.t - e.t + rng.randint(100, 900)
            late += 1
    arrival = sorted(kept, key=lambda e: (e.t + e.delay, e.t))
    for seq, e in enumerate(arrival):
        e.seq = seq
    assert all(e.t >= prelude_end for e in arrival if not e.fixed)
    return arrival


def main():
    users = background()
    plant_all(users)
    arrival = finalize()

    # Compare the oracle with the expectations.
    got = set(oracle(sorted(arrival, key=lambda e: (e.t, e.seq))))
    want = {(x["rule"], x["key"], x["at"]) for x in EXPECT if x["expect"] == "alert"}
    problems = [f"unexpected alert {r} key={k} at={iso(t)}" for r, k, t in sorted(got - want)]
    problems += [f"missing alert {r} key={k} at={iso(t)}" for r, k, t in sorted(want - got)]
    alerting = {(r, k) for r, k, _ in got}
    problems += [f"near miss {x['scenario']} alerts: {x['rule']} key={x['key']}"
                 for x in EXPECT if x["expect"] == "none" and (x["rule"], x["key"]) in alerting]
    keys = [(x["rule"], x["key"], x["scenario"]) for x in EXPECT]
    if len({(r, k) for r, k, _ in keys}) != len(keys):
        problems.append("two scenarios share a (rule, key)")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit("gen_sample: the oracle disagrees with the planted expectations")

    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "events.jsonl"), "w", encoding="utf-8") as out:
        for e in arrival:
            out.write(to_json(e) + "\n")
    expected = sorted(EXPECT, key=lambda x: (x["at"], x["rule"], x["key"]))
    with open(os.path.join(OUT_DIR, "expected.jsonl"), "w", encoding="utf-8") as out:
        for x in expected:
            out.write(json.dumps({"rule": x["rule"], "key": x["key"], "at": iso(x["at"]),
                                  "expect": x["expect"], "scenario": x["scenario"]}) + "\n")
    write_readme(arrival, expected)
    counts = {}
    for x in EXPECT:
        counts.setdefault(x["rule"], [0, 0])[x["expect"] == "none"] += 1
    print(f"wrote {len(arrival)} events, {len(EXPECT)} expectations")
    for rule in sorted(counts):
        print(f"  {rule:30} {counts[rule][0]} alert, {counts[rule][1]} none")


def write_readme(arrival, expected):
    per_type = {}
    for e in arrival:
        per_type[e.typ] = per_type.get(e.typ, 0) + 1
    prelude = sum(1 for e in arrival if e.t < T0)
    late = sum(1 for i, e in enumerate(arrival) if e.delay)
    rows = "\n".join(
        f"| {x['scenario']} | `{x['rule']}` | `{x['key']}` | {iso(x['at'])} | "
        f"{'**alert**' if x['expect'] == 'alert' else 'no alert'} | {x['note']} |"
        for x in sorted(expected, key=scenario_order))
    types = "\n".join(f"| {t} | {per_type.get(t, 0)} |" for t in TYPES)
    text = README.format(events=len(arrival), types=types, prelude=prelude, late=late,
                         rows=rows, n_expected=len(expected),
                         n_alert=sum(1 for x in expected if x["expect"] == "alert"),
                         n_none=sum(1 for x in expected if x["expect"] == "none"),
                         size="%.1f" % (sum(len(to_json(e)) + 1 for e in arrival) / 1e6))
    with open(os.path.join(OUT_DIR, "README.md"), "w", encoding="utf-8") as out:
        out.write(text)


SCENARIO_PREFIXES = ["CT", "IT", "ATO", "LM", "BF", "SS", "DC", "DA", "EC", "ND", "CS", "BG"]
PREFIX_RULE = {"CT": "card_testing", "IT": "impossible_travel", "ATO": "account_takeover",
               "LM": "login_without_mfa", "BF": "brute_force_then_success",
               "SS": "spending_spike", "DC": "distinct_cards_per_device",
               "DA": "dormant_account_reactivation", "EC": "email_change_then_transfer",
               "ND": "new_device_cashout", "CS": "credential_stuffing_ip",
               "BG": "credential_stuffing_ip"}


def scenario_order(x):
    """README order: rule files in the order of rules/README.md, scenarios by number, the
    scenario's own rule before its side effects."""
    prefix = x["scenario"].rstrip("0123456789")
    return (SCENARIO_PREFIXES.index(prefix), int(x["scenario"][len(prefix):]),
            x["rule"] != PREFIX_RULE[prefix])


README = """\
# Sample event stream

`events.jsonl` is the stream of the README demo of the engine:

```sh
vigil run --rules rules/ --input rules/sample/events.jsonl
```

{events} events (~{size} MB), one JSON object per line, for about three days of event time,
2024-03-01T00:00:00Z to 2024-03-04T00:00:00Z, plus a prelude of {prelude} old `AccountActivity`
events (2023-08 to 2024-02) at the top of the file, also in time order: the dormant-account rule
needs a last activity more than 90 days before a transfer. Every rule in `rules/` has planted
fraud scenarios and near misses; `expected.jsonl` says what each must produce.

**Generated — do not edit by hand.** Regenerate and validate with

```sh
python3 scripts/gen_sample.py     # writes events.jsonl, expected.jsonl and this README
python3 scripts/check_sample.py   # every line valid against rules/schema.vigil, order, lateness
```

The generator is deterministic (fixed seed, no wall clock, standard library only). Before it
writes anything it runs `scripts/sample_oracle.py`, a slow rule-by-rule reference of the alerts
(one hand-written evaluator per rule, semantics of `docs/matching.md`), over the whole stream and
fails unless the alerts are exactly the `alert` lines of `expected.jsonl` and no `none` line's
rule alerts for its key anywhere in the stream. `tests/sample_run_test.sh` runs the engine
(`vigil run`) over the stream and checks every `expected.jsonl` line of the rules it runs.

## Format

- `"type"` is the first member and names an event type of `rules/schema.vigil`; then every
  declared field of that type, in schema order, with its JSON kind (string, float, int, bool,
  lists as arrays). No undeclared fields.
- Timestamps are ISO-8601 UTC strings (`"2024-03-01T08:00:12Z"`, with `.mmm` when the
  milliseconds are not zero), except `AccountActivity.at`, which is an integer of milliseconds
  since the epoch (the core-banking feed sends it that way): both forms the decoder accepts.
- Lines are in event-time order except **{late} lines that arrive late, at most 5 s behind a line
  before them** (one of them is in scenario CT3, the others are background). The engine must be
  run with an allowed lateness (watermark delay) of at least 5 s; with less, those lines go to
  the late output and CT3's alert is missed. All event times are distinct, so the event-time
  order of the stream does not depend on arrival order.

| event type | count |
|---|---|
{types}

## Background traffic

About 350 customers (`u10001`...), each with 1–2 cards (`tok_...`), one account (IBAN-like
`..VIGL..`), devices, home city and IP addresses, over 18 European cities:

- **Charges** (card-present `pos` with `device_id` "" and card-not-present `ecom` / `moto`) at
  shops, web merchants and gift-card sellers, in the currency of the merchant's country, on a
  day/night curve. Each card has a typical amount (log-normal, 6 to 600); **every charge of a card
  is 0.55–2.0 times it**, so no charge can be 5 times the average of others (`spending_spike`;
  the largest background ratio is under 3), and no card has both charges under 5.00 and over
  500.00 (`card_testing`).
- **Logins** from home (geolocation jittered by at most 0.05°); 6% of sessions start with one or
  two failed attempts (never 5 in a row: `brute_force_then_success`); 45% of logins followed by
  an MFA. Eight customers **fly abroad and back** (New York, Tokyo, Singapore, ...) with flights
  timed at under 700 km/h (`impossible_travel` must not fire). An **office NAT** (`145.53.117.10`)
  carries the Friday-morning logins of 28 colleagues: up to 12 distinct users in a 10-minute
  window, all successful (`credential_stuffing_ip` needs more than 80% failures).
- **Password resets** (email, sms, call center): when the customer then logs in within 30
  minutes, an MFA follows within 2 minutes (`login_without_mfa`); some resets are abandoned.
- **New devices** (mostly low risk, 4 risky ones at 70–90) followed by a login and MFA; the
  customers with a reset, with a new device, with risky devices and those who pay crypto
  exchanges are disjoint groups, and background gift-card charges stay under 300
  (`account_takeover`, `new_device_cashout`).
- **E-mail changes** to ordinary domains, after an MFA (`email_change_then_transfer`).
- **Transfers** to known payees, 10% to new beneficiaries; six customers regularly pay a crypto
  exchange (known beneficiary, no risky device).
- **Account activity** (logins, balance checks, statements, standing orders, card payments).
- Households share a phone: at most 4 cards per device (`distinct_cards_per_device` needs 6).
- No background account is silent for 90 days: the prelude only holds the dormant scenarios.

The background produces **no alert** for this seed (the oracle checks it); every expected alert
comes from a planted scenario.

## Planted scenarios

`expected.jsonl` has one line per (scenario, rule): {n_expected} lines, {n_alert} `alert` and
{n_none} `none`:

```json
{{"rule": "card_testing", "key": "tok_...", "at": "2024-03-02T02:19:00.013Z", "expect": "alert", "scenario": "CT1"}}
```

- `key`: the rule's key value — card id, user id, account (IBAN), device id or IP.
- `at`: the alert's detection time (docs/matching.md §8): the event time of the completing event;
  for `login_without_mfa` (trailing absence) the deadline, login + 5 min; for the threshold rules
  (`credential_stuffing_ip`, `distinct_cards_per_device`) the end of the first window in which the
  condition holds (windows `[end - size, end)`, ends on multiples of 10 min / 5 min since the
  epoch). For `none` lines, the time the alert would have had.
- `expect`: `alert` — exactly one alert of this rule for this key, at this time (after
  `suppress`: e.g. IT1 completes two matches on one login, DC2 and CS2 satisfy later windows too,
  and only the first alert survives); `none` — no alert of this rule for this key at all.
- Each scenario uses its own customers, cards, devices and accounts. Planted events of one
  scenario share a millisecond offset (0–999 ms) so that no two scenarios have events at the same
  instant; differences inside a scenario are exact.
- Side effects: a planted event can correctly trigger a second rule (every card-testing cash-out
  is also a spending spike; the attacker's login in EC1 has no MFA). These are listed under the
  same scenario id and are `alert` lines too.

Thresholds on the bound (all time bounds are inclusive in docs/matching.md): ATO2 (transfer of
exactly 1000.00 exactly 30m00s after the reset: alert), LM5 (MFA exactly 5m00s after the login:
no alert), BF2 (a gap of exactly 2m00s between failures: alert), BF3 (first counted failure
exactly 15m00s before the success: failures 9), ND3 (risk exactly 70, 300.00, 59m59s: alert),
DA2 (exactly 2000.00: alert), SS5 (exactly 5x: no alert), CS4 (exactly 80% failures: no alert).

| scenario | rule | key | at | expected | what |
|---|---|---|---|---|---|
{rows}
"""


if __name__ == "__main__":
    main()
