#!/usr/bin/env python3
"""The planted fraud scenarios of the sample stream, several per rule of rules/, each next to
near misses that must not alert. Entry point: plant_all(users); expectations go to EXPECT.

Every scenario uses its own customers, cards, accounts and devices, so scenarios do not interfere
with each other or with the background, and its times are exact (up to the per-scenario
millisecond offset, see sample_model.next_scenario). Thresholds are the rules' own; where a
scenario sits exactly on a bound the note says so (docs/matching.md: all time bounds inclusive).
When a planted event also, correctly, triggers another rule (a card-testing cash-out is also a
spending spike), that alert is planted too, under the same scenario id, as a side effect.
"""
import check_sample
from sample_model import *  # noqa: F401,F403  (the event constructors and the world)
from sample_model import CITIES, D, H, M, S, at, hexid, km, next_scenario, public_ip, rng

# ---------------------------------------------------------------------------------------------
# Planted scenarios. Every scenario uses its own customers, cards, accounts and devices so that
# the scenarios do not interfere with each other or with the background; times are exact.

EXPECT = []   # {"scenario", "rule", "key", "at", "expect", "note"}


def plant(sid, rule, key, t, expect, note):
    EXPECT.append({"scenario": sid, "rule": rule, "key": key, "at": t, "expect": expect,
                   "note": note})


def quiet_life(u, times):
    """A few ordinary sessions of a scenario customer, with MFA, at the given times."""
    for t in times:
        if not T0 <= t < T0 + DAYS * D - M:
            continue
        login(u, t, True)
        mfa(u, t + 12 * S, "push")
        activity(u, t + 3 * S, "balance_check")


def sc_card_testing():
    R = "card_testing"
    bot = ("dev-" + hexid(8), "windows", "web")

    def victim(hist_day):
        next_scenario()
        u = new_user(cards=1, mu=40.0)
        c = u.cards[0]
        for k, amount in enumerate([31.20, 44.90, 52.10]):   # the holder's own recent charges
            charge(c, at(hist_day, 9 + 3 * k, 12, 7), amount, "Carrefour", u.country, "pos",
                   ["contactless"], fixed=True)
        return u, c

    def smalls(c, t, specs, device, delay_last=0):
        for k, (dt, amount, merchant, channel) in enumerate(specs):
            charge(c, t + dt, amount, merchant, "NL", channel, ["no3ds"],
                   device if channel == "ecom" else "", "EUR", fixed=True,
                   delay=delay_last if k == len(specs) - 1 else 0)

    # CT1: three test charges, cash-out 6 minutes later at another merchant.
    u, c = victim(0)
    t = at(1, 2, 13)
    smalls(c, t, [(0, 1.00, "charity-a", "ecom"), (60 * S, 2.00, "charity-a", "ecom"),
                  (120 * S, 1.50, "charity-b", "ecom")], bot[0])
    big = charge(c, t + 6 * M, 899.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT1", R, c.id, big.t, "alert", "3 test charges (1.00, 2.00, 1.50), then 899.00 at electro-shop after 6 min")
    plant("CT1", "spending_spike", c.id, big.t, "alert", "side effect: the cash-out is also > 5x the card's 7-day average")
    # CT2: five test charges (ecom and moto), one alert for the whole burst.
    u, c = victim(0)
    t = at(1, 3, 40)
    smalls(c, t, [(0, 0.99, "app-store", "ecom"), (50 * S, 1.49, "app-store", "ecom"),
                  (100 * S, 2.00, "donate-now", "moto"), (150 * S, 0.50, "donate-now", "ecom"),
                  (200 * S, 3.10, "donate-now", "ecom")], bot[0])
    big = charge(c, t + 8 * M, 1249.00, "LUXE WATCHES", "FR", "ecom", ["3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT2", R, c.id, big.t, "alert", "5 test charges (ecom + moto), then 1249.00: one alert, small_count 5")
    plant("CT2", "spending_spike", c.id, big.t, "alert", "side effect: cash-out is a spike")
    # CT3: the third test charge arrives 4 s late, after the cash-out line (event time 3 s before
    # it): in event-time order it is small, small, small, big.
    u, c = victim(1)
    t = at(2, 1, 5)
    smalls(c, t, [(0, 1.00, "charity-a", "ecom"), (45 * S, 1.25, "charity-a", "ecom"),
                  (5 * M - 3 * S, 2.75, "charity-c", "ecom")], bot[0], delay_last=4 * S)
    big = charge(c, t + 5 * M, 990.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT3", R, c.id, big.t, "alert", "third test charge arrives out of order (4 s late); event-time order still matches")
    plant("CT3", "spending_spike", c.id, big.t, "alert", "side effect: cash-out is a spike")
    # CT4: only two test charges.
    u, c = victim(0)
    t = at(0, 21, 20)
    smalls(c, t, [(0, 1.00, "charity-a", "ecom"), (70 * S, 1.00, "charity-a", "ecom")], bot[0])
    big = charge(c, t + 5 * M, 780.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT4", R, c.id, big.t, "none", "only 2 small charges before the large one")
    plant("CT4", "spending_spike", c.id, big.t, "alert", "side effect: 780 > 5x the average of 31.20, 44.90, 52.10, 1, 1")
    # CT5: the cash-out is at the same merchant as the last test charge.
    u, c = victim(1)
    t = at(1, 22, 10)
    smalls(c, t, [(0, 1.99, "app-store", "ecom"), (40 * S, 0.99, "app-store", "ecom"),
                  (80 * S, 2.99, "app-store", "ecom")], bot[0])
    big = charge(c, t + 4 * M, 749.00, "app-store", "NL", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT5", R, c.id, big.t, "none", "large charge at the same merchant as the last small one")
    plant("CT5", "spending_spike", c.id, big.t, "alert", "side effect: cash-out is a spike")
    # CT6: the cash-out comes 10 min 30 s after the first test charge.
    u, c = victim(1)
    t = at(2, 4, 30)
    smalls(c, t, [(0, 1.00, "charity-a", "ecom"), (60 * S, 1.00, "charity-a", "ecom"),
                  (120 * S, 1.00, "charity-b", "ecom")], bot[0])
    big = charge(c, t + 10 * M + 30 * S, 899.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0],
                 "EUR", fixed=True)
    plant("CT6", R, c.id, big.t, "none", "large charge 10m30s after the first small one (within 10m)")
    plant("CT6", "spending_spike", c.id, big.t, "alert", "side effect: cash-out is a spike")
    # CT7: the cash-out is exactly 500.00 (rule: amount > 500).
    u, c = victim(0)
    t = at(1, 14, 2)
    smalls(c, t, [(0, 1.00, "charity-a", "ecom"), (30 * S, 2.00, "charity-a", "ecom"),
                  (60 * S, 3.00, "charity-b", "moto")], bot[0])
    big = charge(c, t + 3 * M, 500.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT7", R, c.id, big.t, "none", "large charge exactly 500.00 (rule needs > 500)")
    plant("CT7", "spending_spike", c.id, big.t, "alert", "side effect: 500 > 5x the 7-day average 22.37")
    # CT8: 4.99, 5.00, 4.50 - 5.00 is not a test charge (< 5), so only two.
    u, c = victim(1)
    t = at(2, 12, 44)
    smalls(c, t, [(0, 4.99, "charity-a", "ecom"), (60 * S, 5.00, "charity-a", "ecom"),
                  (120 * S, 4.50, "charity-b", "ecom")], bot[0])
    big = charge(c, t + 4 * M, 650.00, "electro-shop", "DE", "ecom", ["no3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT8", R, c.id, big.t, "none", "5.00 is not < 5: only 2 test charges")
    plant("CT8", "spending_spike", c.id, big.t, "alert", "side effect: cash-out is a spike")
    # CT9: three small card-present (pos) charges: not card-not-present tests.
    u, c = victim(0)
    t = at(0, 16, 30)
    for k, (amount, merchant) in enumerate([(2.40, "Bakery Lou"), (3.20, "Starbucks"),
                                            (1.80, "Newsagent")]):
        charge(c, t + k * M, amount, merchant, u.country, "pos", ["contactless"], fixed=True)
    big = charge(c, t + 7 * M, 620.00, "electro-shop", "DE", "ecom", ["3ds"], bot[0], "EUR",
                 fixed=True)
    plant("CT9", R, c.id, big.t, "none", "small charges are card-present (pos), not tests")
    plant("CT9", "spending_spike", c.id, big.t, "alert", "side effect: 620 is a spike")


def sc_impossible_travel():
    R = "impossible_travel"

    def place(city):
        c, la, lo, _ = CITIES[city]
        return c, la, lo

    def far(u, t, city, ok=True, ip=None):
        dev = ("dev-" + hexid(8), "windows", "web")
        return login(u, t, ok, dev, ip or public_ip(), place(city), fixed=True)

    # IT1: Paris, Paris, then Tokyo 70 minutes later. Two partial matches complete on the Tokyo
    # login; suppress 6h leaves one alert.
    next_scenario()
    u = new_user("Paris")
    login(u, at(0, 8, 0, 12), fixed=True); mfa(u, at(0, 8, 0, 30), fixed=True)
    login(u, at(0, 12, 30, 40), fixed=True)
    b = far(u, at(0, 13, 40, 5), "Tokyo")
    login(u, at(1, 15, 0), fixed=True)   # the customer again, 25 h later: never compared
    plant("IT1", R, u.id, b.t, "alert", "Paris 12:30 then Tokyo 13:40 (9,700 km in 70 min)")
    # IT2: Madrid then Lagos 40 minutes later.
    next_scenario()
    u = new_user("Madrid")
    login(u, at(1, 9, 10), fixed=True)
    b = far(u, at(1, 9, 50), "Lagos")
    login(u, at(2, 12, 0), fixed=True)   # 26 h after Lagos: never compared
    plant("IT2", R, u.id, b.t, "alert", "Madrid then Lagos 40 min later (3,834 km)")
    # IT3: Berlin and New York 30 seconds apart.
    next_scenario()
    u = new_user("Berlin")
    login(u, at(2, 17, 20, 0), fixed=True)
    b = far(u, at(2, 17, 20, 30), "New York")
    plant("IT3", R, u.id, b.t, "alert", "Berlin then New York 30 s later")
    # IT4: Paris in the morning, New York 9h15 later: 631 km/h is a flight.
    next_scenario()
    u = new_user("Paris")
    login(u, at(0, 7, 15), fixed=True)
    ny = ("dev-" + hexid(8), "ios", "app")
    b = login(u, at(0, 16, 30), True, ny, public_ip(), place("New York"), fixed=True)
    login(u, at(1, 1, 0), True, ny, b.f["ip"], place("New York"), fixed=True)
    login(u, at(1, 13, 0), True, ny, b.f["ip"], place("New York"), fixed=True)
    plant("IT4", R, u.id, b.t, "none", "Paris then New York 9h15 later (631 km/h: feasible)")
    # IT5: Paris then Lyon 10 minutes later: 391 km, geolocation noise.
    next_scenario()
    u = new_user("Paris")
    login(u, at(1, 11, 0), fixed=True)
    b = login(u, at(1, 11, 10), True, None, public_ip(), place("Lyon"), fixed=True)
    login(u, at(1, 18, 0), True, None, b.f["ip"], place("Lyon"), fixed=True)
    plant("IT5", R, u.id, b.t, "none", "Paris then Lyon 10 min later: 391 km < 500 km")
    # IT6: far-away logins that fail.
    next_scenario()
    u = new_user("Paris")
    login(u, at(0, 19, 0), fixed=True)
    b = far(u, at(0, 20, 0), "Tokyo", ok=False)
    far(u, at(0, 20, 5), "Tokyo", ok=False)
    login(u, at(0, 21, 0), fixed=True)
    plant("IT6", R, u.id, b.t, "none", "the far-away logins (Tokyo) failed")
    # IT7: Amsterdam then Madrid 1h45 later: 1,481 km at 846 km/h, just under 900 km/h.
    next_scenario()
    u = new_user("Amsterdam")
    login(u, at(2, 6, 0), fixed=True)
    b = login(u, at(2, 7, 45), True, None, public_ip(), place("Madrid"), fixed=True)
    assert km(*place("Amsterdam")[1:], *place("Madrid")[1:]) < 900 * 1.75
    plant("IT7", R, u.id, b.t, "none", "Amsterdam then Madrid 1h45 later: 846 km/h < 900 km/h")


def sc_account_takeover():
    R = "account_takeover"

    def flow(sid, t0, reset_channel, dev_first, dev_dt, risk, amount, tr_dt, new, expect, note):
        next_scenario()
        u = new_user()
        quiet_life(u, [t0 - 20 * H, t0 + 20 * H])
        dev = ("dev-" + hexid(8), "android", "app")
        if dev_first:
            new_device(u, t0 - 2 * M, dev[0], dev[1], risk, fixed=True)
        reset(u, t0, reset_channel, "203.0.113.%d" % rng.randint(2, 250), fixed=True)
        if not dev_first:
            new_device(u, t0 + dev_dt, dev[0], dev[1], risk, fixed=True)
        lt = t0 + dev_dt + M
        login(u, lt, True, dev, fixed=True)
        mfa(u, lt + 40 * S, "sms", fixed=True)   # SIM swap: the attacker passes SMS MFA
        tr = transfer(u, t0 + tr_dt, amount, "LT99MULE%06d" % rng.randint(0, 999999)
                      if new else u.payees[0], new, "app", fixed=True)
        plant(sid, R, u.id, tr.t, expect, note)

    flow("ATO1", at(0, 10, 5), "sms", False, 4 * M, 80, 2500.00, 20 * M, True, "alert",
         "SMS reset, emulator (risk 80) 4 min later, 2500 to a new beneficiary at +20 min")
    flow("ATO2", at(1, 19, 0), "email", False, 3 * M, 35, 1000.00, 30 * M, True, "alert",
         "transfer exactly 1000.00 exactly 30m00s after the reset (both bounds inclusive)")
    flow("ATO3", at(2, 8, 0), "sms", False, 2 * M, 60, 3000.00, 30 * M + S, True, "none",
         "transfer 30m01s after the reset")
    flow("ATO4", at(0, 15, 0), "email", True, 0, 5, 1500.00, 10 * M, True, "none",
         "new device before the reset (customer changed phone)")
    flow("ATO5", at(1, 7, 30), "sms", False, M, 40, 3000.00, 5 * M, False, "none",
         "transfer to a known beneficiary")
    flow("ATO6", at(2, 21, 0), "email", False, 5 * M, 50, 999.99, 15 * M, True, "none",
         "transfer of 999.99 (rule needs >= 1000)")


def sc_login_without_mfa():
    R = "login_without_mfa"

    def flow(sid, t0, channel, fails, login_dt, mfa_dt, expect, note):
        next_scenario()
        u = new_user()
        quiet_life(u, [t0 - 22 * H, t0 + 6 * H])
        reset(u, t0, channel, fixed=True)
        for k in range(fails):
            ev = login(u, t0 + (10 + k) * M, False, fixed=True)
        if login_dt is None:
            plant(sid, R, u.id, ev.t, expect, note)
            return
        lt = login(u, t0 + login_dt, True, fixed=True)
        if mfa_dt is not None:
            mfa(u, t0 + login_dt + mfa_dt, "totp", fixed=True)
        plant(sid, R, u.id, lt.t + 5 * M, expect, note)

    flow("LM1", at(0, 6, 40), "email", 0, 2 * M, None, "alert",
         "reset, login 2 min later, no MFA: alert at the deadline (login + 5 min)")
    flow("LM2", at(1, 13, 0), "sms", 0, M, 5 * M + S, "alert",
         "MFA 5m01s after the login: too late")
    flow("LM3", at(2, 2, 0), "email", 2, 25 * M, None, "alert",
         "two failed logins, then a successful one 25 min after the reset, no MFA")
    flow("LM4", at(0, 18, 0), "email", 0, 2 * M, 4 * M + 59 * S, "none",
         "MFA 4m59s after the login: just in time")
    flow("LM5", at(1, 20, 0), "sms", 0, 3 * M, 5 * M, "none",
         "MFA exactly 5m00s after the login (the window is closed on the right)")
    flow("LM6", at(2, 10, 0), "email", 0, 31 * M, None, "none",
         "first successful login 31 min after the reset (outside the 30 min step window)")
    flow("LM7", at(0, 23, 0), "email", 2, None, None, "none",
         "only failed logins after the reset")


def sc_brute_force():
    R = "brute_force_then_success"

    def flow(sid, t0, gaps, expect, note, bot=True):
        next_scenario()
        u = new_user()
        quiet_life(u, [t0 - 20 * H])
        dev = ("bot-" + hexid(6), "linux", "web") if bot else u.devices[0]
        ip = "192.0.2.%d" % rng.randint(2, 250) if bot else u.ips[0]
        t = t0
        for g, ok in gaps:
            t += g
            ev = login(u, t, ok, dev, ip, fixed=True)
        plant(sid, R, u.id, ev.t, expect, note)

    fail, succ = False, True
    flow("BF1", at(0, 3, 0), [(0, fail)] + [(M, fail)] * 4 + [(M, succ)], "alert",
         "5 failures 1 min apart, success 1 min later: failures 5")
    flow("BF2", at(1, 4, 10), [(0, fail)] + [(g * S, fail) for g in (20, 35, 60, 90, 45, 30, 120)]
         + [(50 * S, succ)], "alert",
         "8 failures (one gap exactly 2m00s, max gap is inclusive), then success: one alert, failures 8")
    flow("BF3", at(2, 3, 30), [(0, fail)] + [(100 * S, fail)] * 11 + [(100 * S, succ)], "alert",
         "12 failures 100 s apart over 18 min; within 15m keeps the last 9: failures 9")
    flow("BF4", at(0, 12, 0), [(0, fail)] + [(30 * S, fail)] * 3 + [(30 * S, succ)], "none",
         "only 4 failures", bot=False)
    flow("BF5", at(1, 16, 0), [(0, fail)] + [(M, fail)] * 4 + [(150 * S, succ)], "none",
         "success 2m30s after the 5th failure (max gap 2m)")
    flow("BF6", at(2, 9, 0), [(0, fail), (30 * S, fail), (30 * S, fail), (30 * S, succ),
                              (30 * S, fail), (30 * S, fail), (30 * S, fail), (30 * S, succ)],
         "none", "a success in the middle resets the run (3 + 3 failures)", bot=False)
    flow("BF7", at(0, 20, 0), [(0, fail)] + [(3 * M, fail)] * 4 + [(M, succ)], "none",
         "failures 3 min apart: a forgetful customer", bot=False)


def sc_spending_spike():
    R = "spending_spike"

    def flow(sid, history, amount, t_big, expect, note):
        next_scenario()
        u = new_user(cards=1, mu=30.0)
        c = u.cards[0]
        for t, a in history:
            charge(c, t, a, rng.choice(POS_MERCHANTS), u.country, "pos", ["contactless"],
                   fixed=True)
        big = charge(c, t_big, amount, "electro-shop", "BE", "ecom", ["no3ds"], u.devices[0][0],
                     fixed=True)
        plant(sid, R, c.id, big.t, expect, note)

    base = [(at(0, 9, 0), 20.00), (at(0, 18, 30), 30.00), (at(1, 12, 10), 40.00)]
    flow("SS1", base, 200.00, at(2, 15, 45), "alert", "200.00 after 20, 30, 40 (6.7x the average 30)")
    flow("SS2", [(at(d, h, 17), a) for (d, h), a in zip(
        [(0, 8), (0, 13), (0, 19), (1, 8), (1, 12), (1, 19), (2, 8), (2, 12)],
        [8.50, 14.20, 11.00, 9.90, 13.40, 12.80, 10.10, 15.00])], 480.00, at(2, 18, 0), "alert",
         "480.00 on a card averaging 11.86 over 8 charges")
    flow("SS3", base, 149.00, at(2, 16, 5), "none", "149.00 after 20, 30, 40 (4.97x)")
    flow("SS4", [(at(0, 10, 0), 25.00), (at(1, 10, 0), 35.00)], 500.00, at(2, 11, 0), "none",
         "only 2 charges of history (needs 3)")
    flow("SS5", base, 150.00, at(2, 17, 25), "none", "exactly 5x the average (150.00 = 5 x 30; needs >)")


def sc_distinct_cards():
    R = "distinct_cards_per_device"

    def flow(sid, times, ncards, expect, note, t_at):
        next_scenario()
        dev = "dev-" + hexid(8)
        cards = [new_user(cards=1, mu=25.0).cards[0] for _ in range(ncards)]
        for k, t in enumerate(times):
            c = cards[k % ncards]
            charge(c, t, rng.choice([12.00, 19.99, 24.50, 35.00]), "game-store", "US", "ecom",
                   ["no3ds"], dev, "USD", fixed=True)
        plant(sid, R, dev, t_at, expect, note)

    t = at(0, 23, 31, 10)
    flow("DC1", [t + k * 2 * M for k in range(6)], 6, "alert",
         "6 cards in 10 min; first 5-minute window end after the 6th card", at(0, 23, 45))
    t = at(2, 2, 2, 30)
    flow("DC2", [t + k * 5 * M for k in range(9)], 9, "alert",
         "9 cards in 40 min: one alert (suppress 6h), at the window end after the 6th card",
         at(2, 2, 30))
    t = at(1, 20, 0, 40)
    flow("DC3", [t + k * 4 * M for k in range(8)], 5, "none",
         "5 distinct cards (8 charges) in 30 min: needs more than 5", at(1, 20, 30))
    t = at(1, 1, 0, 20)
    flow("DC4", [t + k * 30 * M for k in range(6)], 6, "none",
         "6 cards 30 min apart: at most 2 in any hour", at(1, 3, 35))


def sc_dormant():
    R = "dormant_account_reactivation"
    iso_t = check_sample.parse_iso_ms

    def flow(sid, old, transfers, expect, note):
        next_scenario()
        u = new_user()
        for t, kind in old:
            activity(u, t, kind, "web", fixed=True)
        last = None
        for t, amount, new in transfers:
            last = transfer(u, t, amount, "GB33MULE%06d" % rng.randint(0, 999999) if new
                            else u.payees[0], new, "web", fixed=True)
        plant(sid, R, u.account, last.t, expect, note)

    flow("DA1", [(iso_t("2023-11-10T14:22:05Z"), "balance_check")],
         [(at(1, 11, 17, 42), 4800.00, True)], "alert", "first event after 112 silent days: 4800.00")
    flow("DA2", [(iso_t("2023-08-21T09:00:00Z"), "statement")],
         [(at(2, 16, 3), 2000.00, True)], "alert", "2000.00 exactly (>=) after 195 silent days")
    flow("DA3", [(iso_t("2023-11-05T10:00:00Z"), "login"), (iso_t("2024-02-10T10:00:00Z"), "statement")],
         [(at(0, 13, 0), 4800.00, True)], "none", "activity 20 days before the transfer")
    flow("DA4", [(iso_t("2023-10-01T08:30:00Z"), "login")],
         [(at(0, 9, 30), 50.00, False), (at(1, 10, 0), 3000.00, True)], "none",
         "a small transfer (50.00) ends the dormancy; the large one the next day does not alert")
    flow("DA5", [(at(2, 10, 0) - 89 * D, "balance_check")], [(at(2, 10, 0), 5000.00, True)],
         "none", "silent exactly 89 days (needs > 90)")
    flow("DA6", [(iso_t("2023-10-15T12:00:00Z"), "login")], [(at(1, 15, 30), 1999.99, True)],
         "none", "dormant, but 1999.99 (needs >= 2000)")


def sc_email_change():
    R = "email_change_then_transfer"

    def flow(sid, t0, steps, expect, note):
        next_scenario()
        u = new_user()
        quiet_life(u, [t0 - 20 * H])
        last = None
        for dt, kind, arg in steps:
            t = t0 + dt
            if kind == "email":
                old, new = arg if isinstance(arg, tuple) else (u.email, arg)
                email_changed(u, t, old, new, "203.0.113.9", fixed=True)
            elif kind == "reset":
                reset(u, t, arg, "203.0.113.9", fixed=True)
            elif kind == "mfa":
                mfa(u, t, arg, fixed=True)
            elif kind == "login":
                u.attacker_login = login(u, t, True, ("dev-" + hexid(8), "windows", "web"), "203.0.113.9", fixed=True)
            elif kind == "transfer":
                last = transfer(u, t, arg, "LT99MULE%06d" % rng.randint(0, 999999), True, "web",
                                fixed=True)
        plant(sid, R, u.id, last.t, expect, note)
        return u

    u = flow("EC1", at(0, 11, 0), [(0, "email", "qx7731@Mailinator.com"), (5 * M, "reset", "sms"),
                                   (6 * M, "login", None), (20 * M, "transfer", 900.00)], "alert",
             "throwaway e-mail (upper case domain), SMS reset, attacker login, 900 to a new beneficiary")
    plant("EC1", "login_without_mfa", u.id, u.attacker_login.t + 5 * M, "alert",
          "side effect: the attacker's login after the reset has no MFA")
    flow("EC2", at(1, 17, 0), [(0, "reset", "call_center"), (3 * M, "email", "bob.k@yopmail.com"),
                               (30 * M, "transfer", 1200.00)], "alert",
         "call-center reset first, then the e-mail change (any order), 1200 after 30 min")
    flow("EC3", at(2, 13, 0), [(0, "email", "c@trashmail.net"), (M, "reset", "sms"),
                               (10 * M, "mfa", "totp"), (15 * M, "transfer", 800.00)], "none",
         "MFA passed between the reset and the transfer")
    flow("EC4", at(0, 14, 0), [(0, "email", "d@mailinator-news.com"), (M, "reset", "sms"),
                               (10 * M, "transfer", 800.00)], "none",
         "new address on an ordinary domain (mailinator-news.com)")
    flow("EC5", at(1, 9, 0), [(0, "email", "e.x@guerrillamail.org"), (2 * M, "reset", "email"),
                              (20 * M, "transfer", 1500.00)], "none",
         "reset through the e-mail channel (not sms / call_center)")
    flow("EC6", at(2, 19, 0), [(0, "email", "f@10minutemail.net"), (10 * M, "reset", "call_center"),
                               (2 * H + S, "transfer", 2000.00)], "none",
         "transfer 2h00m01s after the e-mail change (within 2h)")
    flow("EC7", at(0, 20, 0), [(0, "email", "g.h@yopmail.com"), (2 * M, "mfa", "totp"),
                               (10 * M, "reset", "sms"), (40 * M, "transfer", 700.00)], "alert",
         "MFA between the e-mail change and the reset does not count: `no m` only covers conjunction -> transfer")
    flow("EC8", at(1, 23, 0), [(0, "email", ("Trader.Joe@mailinator.com", "trader.joe@mailinator.com")),
                               (M, "reset", "sms"), (20 * M, "transfer", 600.00)], "none",
         "old and new address differ only in case (iequals)")


def sc_new_device_cashout():
    R = "new_device_cashout"

    def flow(sid, t0, risk, dt, kind, amount, expect, note, merchant="Big Gift Card Store",
             labels=("3ds",), to=None):
        next_scenario()
        u = new_user("London", cards=1, mu=60.0)
        quiet_life(u, [t0 - 20 * H])
        dev = "emu-" + hexid(6)
        new_device(u, t0, dev, "android", risk, fixed=True)
        if kind == "charge":
            ev = charge(u.cards[0], t0 + dt, amount, merchant, "GB", "ecom", list(labels), dev,
                        "GBP", fixed=True)
        else:
            ev = transfer(u, t0 + dt, amount, to, True, "web", fixed=True)
        plant(sid, R, u.id, ev.t, expect, note)

    flow("ND1", at(0, 17, 0), 85, 12 * M, "charge", 450.00, "alert",
         "risk-85 device, then 450.00 at 'Big Gift Card Store' after 12 min")
    flow("ND2", at(1, 2, 30), 92, 40 * M, "transfer", 2000.00, "alert",
         "risk-92 device, then 2000.00 to a crypto exchange after 40 min",
         to="EE382200221020145685")
    flow("ND3", at(2, 11, 0), 70, 59 * M + 59 * S, "charge", 300.00, "alert",
         "risk exactly 70, gift card (label) exactly 300.00, 59m59s later",
         merchant="Web Voucher Shop", labels=("giftcard", "3ds"))
    flow("ND4", at(0, 9, 0), 69, 5 * M, "charge", 500.00, "none", "device risk 69 (needs >= 70)",
         labels=("giftcard",))
    flow("ND5", at(1, 14, 0), 75, 61 * M, "charge", 600.00, "none", "gift card 61 min after the device")
    flow("ND6", at(2, 15, 0), 88, 10 * M, "charge", 299.99, "none", "gift card of 299.99 (needs >= 300)")
    flow("ND7", at(0, 12, 0), 90, 15 * M, "charge", 400.00, "none",
         "merchant 'Gift-Card World' without the giftcard label: contains(lower(merchant), \"gift card\") misses the hyphen",
         merchant="Gift-Card World")
    flow("ND8", at(1, 21, 0), 95, 20 * M, "transfer", 2500.00, "none",
         "transfer to an account that is not a crypto exchange", to="LT99MULE123456")


def sc_credential_stuffing(users):
    R = "credential_stuffing_ip"
    ams = ("NL",) + CITIES["Amsterdam"][1:3]
    # Victims: ordinary customers, not in a reset flow; the ones whose password works live
    # near Amsterdam (where the attackers' IPs geolocate), so impossible_travel stays quiet.
    pool = [u for u in users[240:320] if not u.trip]
    near = [u for u in users if u.city in ("Amsterdam", "Rotterdam") and not u.trip
            and u not in pool and not any(u is v for v in users[60:100])]
    order = iter(rng.sample(pool, len(pool)))
    ok_order = iter(rng.sample(near, len(near)))

    def attack(sid, ip, t, spacing, outcomes, expect, note, t_at, users_override=None):
        next_scenario()
        dev = ("bot-" + hexid(6), "linux", "web")
        for k, ok in enumerate(outcomes):
            v = users_override[k] if users_override else (next(ok_order) if ok else next(order))
            login(v, t + k * spacing, ok, dev, ip, ams, fixed=True)
        plant(sid, R, ip, t_at, expect, note)

    attack("CS1", "45.155.205.99", at(0, 4, 1), 30 * S, [False] * 9 + [True] + [False] * 4,
           "alert", "14 users in 7 min, 13 failed (93%); alert when the window 04:00-04:10 closes",
           at(0, 4, 10))
    attack("CS2", "185.220.101.4", at(1, 5, 2), 47 * S, [False] * 25, "alert",
           "25 users over 19 min, all failed, across 3 windows: one alert (suppress 1h) at the first window end",
           at(1, 5, 10))
    attack("CS3", "91.240.118.50", at(2, 5, 31), 50 * S, [False, True, False, False, True, False,
                                                          False, False],
           "none", "8 users, 6 failed: 75% (needs > 80%)", at(2, 5, 40))
    attack("CS4", "91.240.118.51", at(0, 5, 11), 40 * S, [False] * 4 + [True] + [False] * 4 + [True],
           "none", "10 users, 8 failed: exactly 80% (needs > 80%)", at(0, 5, 20))
    attack("CS5", "91.240.118.52", at(1, 6, 56), 30 * S, [False] * 3, "none",
           "8 users split over two windows (3 + 5)", at(1, 7, 10))
    attack("CS5", "91.240.118.52", at(1, 7, 1), 40 * S, [False] * 5, "none",
           "8 users split over two windows (3 + 5)", at(1, 7, 10))
    EXPECT.pop()   # CS5 is one scenario (two bursts)
    seven = [next(order) for _ in range(7)]
    attack("CS6", "91.240.118.53", at(2, 7, 2), 35 * S, [False] * 10, "none",
           "7 distinct users (10 attempts, all failed): needs 8", at(2, 7, 10),
           users_override=[seven[k % 7] for k in range(10)])
    plant("BG1", R, OFFICE_IP, at(0, 9, 0), "none",
          "background: office NAT, ~10 colleagues per 10 minutes, almost all succeed")


def plant_all(users):
    for plant_rule in (sc_card_testing, sc_impossible_travel, sc_account_takeover,
                       sc_login_without_mfa, sc_brute_force, sc_spending_spike,
                       sc_distinct_cards, sc_dormant, sc_email_change, sc_new_device_cashout):
        plant_rule()
    sc_credential_stuffing(users)
