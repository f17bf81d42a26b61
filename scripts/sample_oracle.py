#!/usr/bin/env python3
"""The alerts each rule of rules/ must produce on a stream: a slow, rule-by-rule reference.

Entry point: oracle(events) -> [(rule, key, detection_time_ms)], after `suppress`.

scripts/gen_sample.py runs it over the sample stream it writes and refuses to write the files
unless the result is exactly the planted expectations (rules/sample/expected.jsonl); a later
engine test can run it too. It is NOT a Vigil evaluator: one hand-written function per rule of
rules/, thresholds copied from the rule files, semantics from docs/matching.md:

  * skip-till-next (`->`) takes the FIRST event that satisfies the step's type and `where`;
    `strict` takes the very next event of the rule's own types for the key;
  * greedy loops take every event they can before the next step;
  * every time bound is inclusive (`within`, step `within`, `max gap`, trailing `no` deadline);
  * `after match skip past last` drops matches that started at or before the emitted match's
    last event;
  * windows: `over 7d` in a pattern is [t - 7d, t) without the current event; `sliding 1h every
    5m` and `tumbling 10m` are [end - size, end) with ends on multiples of the slide since the
    epoch; a threshold rule's detection time is the window end;
  * detection time: the completing event's time; the deadline for trailing absence;
  * `suppress P`: an alert is dropped if the key's last emitted alert of that rule is < P before.

Events are objects with .t (ms), .seq (line number), .typ and .f (the fields), in (t, seq) order.
"""
import bisect
import math
import re

S, M, H, D = 1000, 60000, 3600000, 86400000
# rules/new_device_cashout.vigil, list crypto_exchange_accounts
CRYPTO_ACCOUNTS = ["LT121000011101001000", "MT84MALT011000012345MTLCAST001S",
                   "EE382200221020145685"]


def km(lat1, lon1, lat2, lon2):
    """Great-circle distance (haversine, mean Earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


THROWAWAY = re.compile(
    r"@(mailinator|yopmail|guerrillamail|trashmail|10minutemail)\.(com|net|org)$")


def by_key(events, keyfn):
    out = {}
    for e in events:
        k = keyfn(e)
        if k is not None:
            out.setdefault(k, []).append(e)
    return out


def skip_past_last(cands):
    """cands: (completion_event, start_pos, last_pos); returns the emitted completion events."""
    out, resume = [], 0
    for ev, start, last in sorted(cands, key=lambda c: ((c[0].t, c[0].seq), c[1])):
        if start >= resume:
            out.append(ev.t)
            resume = last + 1
    return out


def suppress(times, duration):
    out, last = [], None
    for t in sorted(times):
        if last is None or t - last >= duration:
            out.append(t)
            last = t
    return out


def oracle(events):
    f = lambda e, n: e.f[n]  # noqa: E731
    alerts = []

    def add(rule, per_key, duration):
        for key, times in per_key.items():
            for t in suppress(times, duration):
                alerts.append((rule, key, t))

    # card_testing
    res = {}
    for key, st in by_key(events, lambda e: f(e, "card_id") if e.typ == "Charge" else None).items():
        small = lambda e: f(e, "amount") < 5.0 and f(e, "channel") in ("ecom", "moto")  # noqa
        cands = []
        for i, e in enumerate(st):
            if not small(e):
                continue
            smalls = [e]
            for j in range(i + 1, len(st)):
                z = st[j]
                if z.t - e.t > 10 * M:
                    break
                if small(z):
                    smalls.append(z)
                elif (len(smalls) >= 3 and f(z, "amount") > 500.0
                      and f(z, "merchant") != f(smalls[-1], "merchant")):
                    cands.append((z, i, j))
                    break
        res[key] = skip_past_last(cands)
    add("card_testing", res, H)

    # impossible_travel
    res = {}
    for key, st in by_key(events, lambda e: f(e, "user_id") if e.typ == "Login" else None).items():
        times = []
        for i, a in enumerate(st):
            if not f(a, "ok"):
                continue
            for b in st[i + 1:]:
                if b.t - a.t > 24 * H:
                    break
                dist = km(f(a, "lat"), f(a, "lon"), f(b, "lat"), f(b, "lon"))
                if f(b, "ok") and dist > 500.0 and dist > 900.0 * ((b.t - a.t) / H):
                    times.append(b.t)
                    break
        res[key] = times
    add("impossible_travel", res, 6 * H)

    # account_takeover
    def user_of(e, types):
        if e.typ not in types:
            return None
        return f(e, "initiated_by") if e.typ == "Transfer" else f(e, "user_id")
    res = {}
    for key, st in by_key(events, lambda e: user_of(
            e, ("PasswordReset", "NewDevice", "Transfer"))).items():
        cands = []
        for i, r in enumerate(st):
            if r.typ != "PasswordReset":
                continue
            j = next((j for j in range(i + 1, len(st)) if st[j].typ == "NewDevice"), None)
            if j is None or st[j].t - r.t > 30 * M:
                continue
            k = next((k for k in range(j + 1, len(st)) if st[k].typ == "Transfer"
                      and f(st[k], "amount") >= 1000.0 and f(st[k], "new_beneficiary")), None)
            if k is None or st[k].t - r.t > 30 * M:
                continue
            cands.append((st[k], i, k))
        res[key] = skip_past_last(cands)
    add("account_takeover", res, H)

    # login_without_mfa
    res = {}
    for key, st in by_key(events, lambda e: user_of(
            e, ("PasswordReset", "Login", "MfaPassed"))).items():
        times = []
        for i, r in enumerate(st):
            if r.typ != "PasswordReset":
                continue
            j = next((j for j in range(i + 1, len(st))
                      if st[j].typ == "Login" and f(st[j], "ok")), None)
            if j is None or st[j].t - r.t > 30 * M:
                continue
            deadline = st[j].t + 5 * M
            if any(z.typ == "MfaPassed" and z.t <= deadline for z in st[j + 1:]):
                continue
            times.append(deadline)
        res[key] = times
    add("login_without_mfa", res, H)

    # brute_force_then_success
    res = {}
    for key, st in by_key(events, lambda e: f(e, "user_id") if e.typ == "Login" else None).items():
        cands = []
        for i, e in enumerate(st):
            if f(e, "ok"):
                continue
            n, prev = 1, e
            for j in range(i + 1, len(st)):
                z = st[j]
                fits = z.t - prev.t <= 2 * M and z.t - e.t <= 15 * M
                if not f(z, "ok"):
                    if not fits:
                        break
                    n, prev = n + 1, z
                    continue
                if n >= 5 and fits:
                    cands.append((z, i, j))
                break
        res[key] = skip_past_last(cands)
    add("brute_force_then_success", res, 30 * M)

    # spending_spike
    res = {}
    for key, st in by_key(events, lambda e: f(e, "card_id") if e.typ == "Charge" else None).items():
        times, ts = [], [e.t for e in st]
        for i, c in enumerate(st):
            lo = bisect.bisect_left(ts, c.t - 7 * D)
            hist = st[lo:i]
            if len(hist) >= 3 and f(c, "amount") > 5.0 * (sum(f(x, "amount") for x in hist)
                                                          / len(hist)):
                times.append(c.t)
        res[key] = times
    add("spending_spike", res, 24 * H)

    # distinct_cards_per_device
    res = {}
    for key, st in by_key(events, lambda e: f(e, "device_id") if e.typ == "Charge"
                          and f(e, "device_id") != "" else None).items():
        ends = sorted({(e.t // (5 * M) + 1 + k) * 5 * M for e in st for k in range(12)})
        times = [end for end in ends
                 if len({f(e, "card_id") for e in st if end - H <= e.t < end}) > 5]
        res[key] = times
    add("distinct_cards_per_device", res, 6 * H)

    # dormant_account_reactivation
    res = {}
    for key, st in by_key(events, lambda e: f(e, "account_id") if e.typ == "AccountActivity"
                          else f(e, "from_account") if e.typ == "Transfer" else None).items():
        res[key] = [t.t for a, t in zip(st, st[1:])
                    if a.typ == "AccountActivity" and t.typ == "Transfer"
                    and f(t, "amount") >= 2000.0 and t.t - a.t > 90 * D]
    add("dormant_account_reactivation", res, 24 * H)

    # email_change_then_transfer
    def e_ok(z):
        return (z.typ == "EmailChanged" and THROWAWAY.search(f(z, "new_email").lower())
                and f(z, "new_email").lower() != f(z, "old_email").lower())

    def r_ok(z):
        return z.typ == "PasswordReset" and f(z, "channel") in ("sms", "call_center")
    res = {}
    for key, st in by_key(events, lambda e: user_of(
            e, ("EmailChanged", "PasswordReset", "MfaPassed", "Transfer"))).items():
        cands = []
        for i, s in enumerate(st):
            other = r_ok if e_ok(s) else e_ok if r_ok(s) else None
            if other is None:
                continue
            j = next((j for j in range(i + 1, len(st)) if other(st[j])), None)
            if j is None:
                continue
            k = next((k for k in range(j + 1, len(st)) if st[k].typ == "Transfer"
                      and f(st[k], "amount") >= 500.0 and f(st[k], "new_beneficiary")), None)
            if k is None or st[k].t - s.t > 2 * H:
                continue
            if any(z.typ == "MfaPassed" for z in st[j + 1:k]):
                continue
            cands.append((st[k], i, k))
        res[key] = skip_past_last(cands)
    add("email_change_then_transfer", res, 2 * H)

    # new_device_cashout
    def cashout(z):
        if z.typ == "Charge":
            return f(z, "amount") >= 300.0 and ("giftcard" in f(z, "labels")
                                                 or "gift card" in f(z, "merchant").lower())
        return (z.typ == "Transfer" and f(z, "amount") >= 300.0
                and f(z, "to_account") in CRYPTO_ACCOUNTS)
    res = {}
    for key, st in by_key(events, lambda e: user_of(
            e, ("NewDevice", "Charge", "Transfer"))).items():
        times = []
        for i, d in enumerate(st):
            if d.typ != "NewDevice" or f(d, "risk_score") < 70:
                continue
            y = next((z for z in st[i + 1:] if cashout(z)), None)
            if y is not None and y.t - d.t <= H:
                times.append(y.t)
        res[key] = times
    add("new_device_cashout", res, 6 * H)

    # credential_stuffing_ip
    res = {}
    for key, st in by_key(events, lambda e: f(e, "ip") if e.typ == "Login" else None).items():
        windows = {}
        for e in st:
            windows.setdefault(e.t // (10 * M), []).append(e)
        res[key] = [(w + 1) * 10 * M for w, es in sorted(windows.items())
                    if len({f(e, "user_id") for e in es}) >= 8
                    and sum(1 for e in es if not f(e, "ok")) / len(es) > 0.8]
    add("credential_stuffing_ip", res, H)
    return alerts
