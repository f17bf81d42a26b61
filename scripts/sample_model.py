#!/usr/bin/env python3
"""The world of the sample stream: customers, their cards, accounts and devices, the event
constructors (one per event type of rules/schema.vigil) and the background traffic.

Used by scripts/gen_sample.py (the entry point) and scripts/sample_scenarios.py. All randomness
comes from the one seeded `rng` below, consumed in a fixed order: the output depends only on
SEED. Events are collected in EVENTS with their exact event time in ms; planted (scenario)
events are `fixed` and get a per-scenario millisecond offset (next_scenario) so that no two
planted events of different scenarios share an event time.

Background traffic is shaped so that no rule can fire on it (rules/sample/README.md explains
each constraint); scripts/sample_oracle.py proves it for the seed.
"""
import datetime
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_sample  # noqa: E402  (schema reader shared with the validator)
from sample_oracle import CRYPTO_ACCOUNTS, D, H, M, S, km  # noqa: E402,F401

ROOT = check_sample.ROOT
OUT_DIR = os.path.join(ROOT, "rules", "sample")
SEED = 20240301
T0 = 1709251200000           # 2024-03-01T00:00:00Z
DAYS = 3
TYPES = check_sample.parse_schema()

rng = random.Random(SEED)

# name, country, lat, lon, currency
CITIES = {
    "Paris": ("FR", 48.8566, 2.3522, "EUR"), "Lyon": ("FR", 45.764, 4.8357, "EUR"),
    "Madrid": ("ES", 40.4168, -3.7038, "EUR"), "Barcelona": ("ES", 41.3874, 2.1686, "EUR"),
    "Berlin": ("DE", 52.52, 13.405, "EUR"), "Munich": ("DE", 48.1351, 11.582, "EUR"),
    "Amsterdam": ("NL", 52.3676, 4.9041, "EUR"), "Rotterdam": ("NL", 51.9244, 4.4777, "EUR"),
    "Brussels": ("BE", 50.8503, 4.3517, "EUR"), "Milan": ("IT", 45.4642, 9.19, "EUR"),
    "Rome": ("IT", 41.9028, 12.4964, "EUR"), "Lisbon": ("PT", 38.7223, -9.1393, "EUR"),
    "Vienna": ("AT", 48.2082, 16.3738, "EUR"), "Warsaw": ("PL", 52.2297, 21.0122, "PLN"),
    "Dublin": ("IE", 53.3498, -6.2603, "EUR"), "London": ("GB", 51.5074, -0.1278, "GBP"),
    "Stockholm": ("SE", 59.3293, 18.0686, "SEK"), "Prague": ("CZ", 50.0755, 14.4378, "CZK"),
    "Tokyo": ("JP", 35.6762, 139.6503, "JPY"), "New York": ("US", 40.7128, -74.006, "USD"),
    "Lagos": ("NG", 6.5244, 3.3792, "NGN"), "Singapore": ("SG", 1.3521, 103.8198, "SGD"),
}
HOME_CITIES = ["Paris", "Lyon", "Madrid", "Barcelona", "Berlin", "Munich", "Amsterdam",
               "Rotterdam", "Brussels", "Milan", "Rome", "Lisbon", "Vienna", "Warsaw", "Dublin",
               "London", "Stockholm", "Prague"]
TRIP_CITIES = ["New York", "Tokyo", "Singapore", "London", "Lisbon", "Stockholm"]
FIRST = ["anna", "bob", "carla", "dirk", "eva", "farid", "greta", "hugo", "ines", "jan", "kim",
         "lena", "marco", "nina", "omar", "paula", "quinn", "rosa", "sven", "tara", "ugo", "vera"]
LAST = ["bakker", "martin", "garcia", "muller", "rossi", "silva", "novak", "kowalski", "dubois",
        "jansen", "schmidt", "lopez", "murphy", "nilsson", "smith", "weber"]
MAIL_DOMAINS = ["gmail.com", "outlook.com", "proton.me", "gmx.de", "orange.fr", "yahoo.com",
                "icloud.com", "web.de"]
POS_MERCHANTS = ["Albert Heijn", "Carrefour", "Lidl", "REWE", "Esselunga", "Mercadona", "Tesco",
                 "Starbucks", "Pret A Manger", "Shell", "BP", "IKEA", "H&M", "Zara", "Boots",
                 "DM Drogerie", "Decathlon", "MediaMarkt", "FNAC", "Apotheek", "Bakery Lou",
                 "Metro Transit", "Parking City", "Cinema Lux"]
ECOM_MERCHANTS = [("Amazon EU", "LU"), ("Bol.com", "NL"), ("Zalando", "DE"), ("Netflix", "NL"),
                  ("Spotify", "SE"), ("Uber", "NL"), ("Booking.com", "NL"), ("Steam", "US"),
                  ("AliExpress", "CN"), ("Apple Services", "IE"), ("Deliveroo", "GB"),
                  ("Ryanair", "IE"), ("Vinted", "LT"), ("Etsy", "IE")]
GIFT_MERCHANT = "Gift Card Mall"
OSES = [("ios", "app"), ("android", "app"), ("windows", "web"), ("macos", "web")]


def iso(ms):
    dt = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        milliseconds=ms)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return base + (".%03dZ" % (ms % 1000) if ms % 1000 else "Z")


def at(day, hh, mm, ss=0, ms=0):
    return T0 + day * D + hh * H + mm * M + ss * S + ms


def hexid(n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def public_ip():
    return "%d.%d.%d.%d" % (rng.choice([77, 81, 84, 86, 90, 92, 94, 109, 178, 188, 213]),
                            rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))


# ---------------------------------------------------------------------------------------------
# Events

class Event:
    __slots__ = ("t", "typ", "f", "fixed", "delay", "seq", "line")

    def __init__(self, typ, t, fields, fixed, delay):
        self.t, self.typ, self.f, self.fixed, self.delay = t, typ, fields, fixed, delay
        self.seq = None


EVENTS = []
OFFSET = [0, 0]   # [ms added to planted events, scenarios so far]


def next_scenario():
    """Gives the next planted scenario its own millisecond offset (0-999, unique), so that
    planted events of different scenarios never share an event time."""
    OFFSET[1] += 1
    OFFSET[0] = (OFFSET[1] * 13) % 1000


def emit(typ, t, fixed=False, delay=0, **fields):
    """Adds one event; `fixed` events (planted) keep their exact time, `delay` makes the line
    arrive that many ms late (after lines of later event time)."""
    declared, time_field = TYPES[typ]
    for name, _ in declared:
        if name != time_field and name not in fields:
            raise ValueError(f"{typ}: missing field {name}")
    ev = Event(typ, int(t) + (OFFSET[0] if fixed else 0), fields, fixed, delay)
    EVENTS.append(ev)
    return ev


def to_json(ev):
    declared, time_field = TYPES[ev.typ]
    obj = {"type": ev.typ}
    for name, _ in declared:
        if name == time_field:
            # The core-banking feed sends integer ms; every other feed ISO-8601 strings.
            obj[name] = ev.t if ev.typ == "AccountActivity" else iso(ev.t)
        else:
            obj[name] = ev.f[name]
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Customers

class Card:
    def __init__(self, user, mu):
        self.id = "tok_" + hexid(12)
        self.user, self.mu = user, mu


class User:
    def __init__(self, n, city):
        self.id = "u%05d" % n
        self.city = city
        self.country, self.lat, self.lon, self.currency = CITIES[city]
        self.first, self.last = rng.choice(FIRST), rng.choice(LAST)
        self.email = f"{self.first}.{self.last}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}"
        self.account = "%s%02dVIGL%010d" % (self.country, rng.randint(10, 99),
                                            rng.randint(0, 10 ** 10 - 1))
        os_, ch = rng.choice(OSES)
        self.devices = [("dev-" + hexid(8), os_, ch)]
        self.ips = [public_ip(), public_ip()]
        self.payees = ["%s%02dBANK%010d" % (rng.choice(["NL", "DE", "FR", "ES", "BE", "IT"]),
                                            rng.randint(10, 99), rng.randint(0, 10 ** 10 - 1))
                       for _ in range(rng.randint(2, 5))]
        self.cards = []
        self.trip = None      # (depart, arrive, return_depart, return_arrive, city)
        self.quiet = []       # [(from, to)]: no random sessions (around a planted or reset flow)

    def where(self, t):
        """(city, lat, lon) at time t, or None while flying."""
        if self.trip:
            dep, arr, rdep, rarr, city = self.trip
            if dep <= t < arr or rdep <= t < rarr:
                return None
            if arr <= t < rdep:
                c, la, lo, _ = CITIES[city]
                return c, la, lo
        return self.country, self.lat, self.lon

    def is_quiet(self, t):
        return any(a <= t <= b for a, b in self.quiet)


NEXT_USER = [10000]


def new_user(city=None, cards=1, mu=None):
    NEXT_USER[0] += 1
    u = User(NEXT_USER[0], city or rng.choice(HOME_CITIES))
    for _ in range(cards):
        m = mu if mu is not None else min(600.0, max(6.0, math.exp(rng.gauss(math.log(35), 0.9))))
        u.cards.append(Card(u, m))
    return u


def login(u, t, ok=True, device=None, ip=None, place=None, fixed=False, delay=0):
    dev = device or u.devices[0]
    country, lat, lon = place or (u.country, u.lat, u.lon)
    return emit("Login", t, fixed, delay, user_id=u.id, device_id=dev[0], ip=ip or u.ips[0],
                country=country, lat=round(lat, 4), lon=round(lon, 4), ok=ok, channel=dev[2])


def mfa(u, t, method=None, fixed=False):
    return emit("MfaPassed", t, fixed, user_id=u.id, method=method or rng.choice(
        ["push", "push", "totp", "sms"]))


def activity(u, t, kind, channel="app", fixed=False):
    return emit("AccountActivity", t, fixed, account_id=u.account, kind=kind, channel=channel)


def transfer(u, t, amount, to=None, new=False, channel="app", fixed=False, account=None):
    return emit("Transfer", t, fixed, from_account=account or u.account,
                to_account=to or rng.choice(u.payees), initiated_by=u.id,
                amount=round(amount, 2), currency="EUR", channel=channel, new_beneficiary=new)


def charge(card, t, amount, merchant, country, channel, labels, device="", currency=None,
           fixed=False, delay=0, user=None):
    u = user or card.user
    return emit("Charge", t, fixed, delay, card_id=card.id, user_id=u.id, device_id=device,
                amount=round(amount, 2), currency=currency or u.currency, merchant=merchant,
                country=country, channel=channel, labels=labels)


def reset(u, t, channel, ip=None, fixed=False):
    return emit("PasswordReset", t, fixed, user_id=u.id, channel=channel, ip=ip or u.ips[0])


def new_device(u, t, dev_id, os_, risk, fixed=False):
    return emit("NewDevice", t, fixed, user_id=u.id, device_id=dev_id, os=os_, risk_score=risk)


def email_changed(u, t, old, new, ip=None, fixed=False):
    return emit("EmailChanged", t, fixed, user_id=u.id, old_email=old, new_email=new,
                ip=ip or u.ips[0])


# ---------------------------------------------------------------------------------------------
# Background traffic

HOUR_WEIGHTS = [0.15, 0.1, 0.08, 0.08, 0.1, 0.3, 0.8, 1.6, 2.2, 2.2, 2.0, 2.0, 2.4, 2.3, 2.0,
                2.0, 2.1, 2.4, 2.6, 2.6, 2.3, 1.8, 1.1, 0.5]


def daytime(day):
    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
    return T0 + day * D + hour * H + rng.randrange(H)


def background_charges(u):
    for card in u.cards:
        per_day = 7 if card.mu < 20 else 5 if card.mu < 80 else 3
        for day in range(DAYS):
            for _ in range(max(0, int(rng.gauss(per_day, 1.5)))):
                t = daytime(day)
                place = u.where(t)
                if place is None:
                    continue
                country = place[0]
                # Every charge is within [0.55, 2.0] x the card's typical amount: no charge can
                # be 5x the average of others (spending_spike), no card has both charges under
                # 5.00 and over 500.00 (card_testing).
                amount = card.mu * rng.uniform(0.55, 2.0)
                r = rng.random()
                if r < 0.55:
                    charge(card, t, amount, rng.choice(POS_MERCHANTS), country, "pos",
                           [rng.choice(["contactless", "chip"])], currency=CITIES_BY_COUNTRY
                           .get(country, u.currency))
                    if rng.random() < 0.3:
                        activity(u, t + rng.randint(500, 3000), "card_payment", "pos")
                elif r < 0.95:
                    merchant, mcountry = rng.choice(ECOM_MERCHANTS)
                    if card.mu < 140 and rng.random() < 0.04:
                        merchant, mcountry = GIFT_MERCHANT, u.country
                        labels = ["giftcard", "3ds"]
                    else:
                        labels = [rng.choice(["3ds", "3ds", "no3ds"])]
                    charge(card, t, amount, merchant, mcountry, "ecom", labels,
                           device=rng.choice(u.devices)[0])
                else:
                    charge(card, t, amount, rng.choice(["Hotel Reservations", "Insurance Desk",
                                                        "Ticket Phone Sales"]),
                           u.country, "moto", ["moto"])


CITIES_BY_COUNTRY = {}
for _name, (_c, _la, _lo, _cur) in CITIES.items():
    CITIES_BY_COUNTRY.setdefault(_c, _cur)


def background_sessions(u, per_day=4.5, office_ip=None):
    for day in range(DAYS):
        for _ in range(max(1, int(rng.gauss(per_day, 1.5)))):
            t = daytime(day)
            place = u.where(t)
            if place is None or u.is_quiet(t):
                continue
            session(u, t, place)


def session(u, t, place, ip=None):
    country, lat, lon = place
    jitter = (country, lat + rng.uniform(-0.05, 0.05), lon + rng.uniform(-0.05, 0.05))
    dev = rng.choice(u.devices)
    ip = ip or (u.ips[0] if (country == u.country) else public_ip())
    if rng.random() < 0.06:   # a typo or two, then the right password
        for k in range(rng.randint(1, 2), 0, -1):
            login(u, t - k * rng.randint(15, 50) * S, False, dev, ip, jitter)
    login(u, t, True, dev, ip, jitter)
    if rng.random() < 0.45:
        mfa(u, t + rng.randint(3, 40) * S)
    if rng.random() < 0.6:
        activity(u, t + rng.randint(1, 5) * S, "login", dev[2])
    if rng.random() < 0.4:
        activity(u, t + rng.randint(10, 120) * S, rng.choice(
            ["balance_check", "balance_check", "statement", "standing_order", "profile_view"]),
            dev[2])
    if rng.random() < 0.15:
        amount = min(4000.0, max(5.0, math.exp(rng.gauss(math.log(120), 1.0))))
        new = rng.random() < 0.1
        to = ("%s%02dBANK%010d" % (u.country, rng.randint(10, 99), rng.randint(0, 10 ** 10 - 1))
              if new else rng.choice(u.payees))
        transfer(u, t + rng.randint(30, 300) * S, amount, to, new, dev[2])


def background_reset(u):
    """A customer who forgot the password: reset, login, MFA (apps force it after a reset)."""
    day = rng.randrange(DAYS)
    t = T0 + day * D + rng.randint(7, 21) * H + rng.randrange(H)
    u.quiet.append((t - 15 * M, t + 75 * M))
    reset(u, t, rng.choices(["email", "sms", "call_center"], [70, 25, 5])[0])
    if rng.random() < 0.85:
        lt = t + rng.randint(60, 900) * S
        login(u, lt, True)
        mfa(u, lt + rng.randint(5, 120) * S)
        if rng.random() < 0.5:
            activity(u, lt + rng.randint(2, 5) * S, "login", "app")


def background_new_device(u, risky=False):
    day = rng.randrange(DAYS)
    t = T0 + day * D + rng.randint(8, 21) * H + rng.randrange(H)
    if u.is_quiet(t):
        return
    os_, ch = rng.choice(OSES)
    dev = ("dev-" + hexid(8), os_, ch)
    risk = rng.randint(70, 90) if risky else rng.choice([rng.randint(0, 30)] * 4
                                                         + [rng.randint(31, 65)])
    new_device(u, t, dev[0], os_, risk)
    u.devices.append(dev)
    login(u, t + rng.randint(20, 90) * S, True, dev)
    mfa(u, t + rng.randint(100, 200) * S)


def background_email_change(u):
    day = rng.randrange(DAYS)
    t = T0 + day * D + rng.randint(8, 22) * H + rng.randrange(H)
    new = f"{u.first}.{u.last}{rng.randint(100, 999)}@{rng.choice(MAIL_DOMAINS)}"
    mfa(u, t - rng.randint(20, 60) * S)
    email_changed(u, t, u.email, new)
    u.email = new


def background():
    users = []
    for _ in range(320):
        users.append(new_user(cards=rng.choice([1, 1, 1, 2])))
    # Households: a second user pays from the same phone as another (at most 4 cards a device).
    for a, b in zip(users[0:40:2], users[1:40:2]):
        b.devices.append(a.devices[0])
    # Travellers: flights long enough to be feasible at under 700 km/h.
    for u in users[40:48]:
        dest = rng.choice([c for c in TRIP_CITIES if CITIES[c][0] != u.country])
        _, la, lo, _ = CITIES[dest]
        fly = int((km(u.lat, u.lon, la, lo) / 700.0 + 1.5) * H)
        dep = T0 + rng.randint(8, 20) * H
        ret = T0 + 2 * D + rng.randint(6, 12) * H
        u.trip = (dep, dep + fly, ret, ret + fly, dest)
    # Some customers buy crypto regularly (known beneficiary), never with a risky new device.
    for u in users[50:56]:
        u.payees.append(rng.choice(CRYPTO_ACCOUNTS))
    for u in users[60:100]:
        background_reset(u)
    for u in users[100:150]:
        background_new_device(u, risky=False)
    for u in users[150:154]:
        background_new_device(u, risky=True)
    for u in users[160:176]:
        background_email_change(u)
    office = [new_user(rng.choice(["Amsterdam", "Rotterdam"])) for _ in range(28)]
    users += office
    for u in users:
        background_sessions(u)
        background_charges(u)
    # An office NAT: 28 colleagues log in through one IP on Friday morning. Many distinct users
    # in one 10-minute window, but they succeed: credential_stuffing_ip must not fire.
    for u in office:
        t = at(0, 8, 45) + rng.randrange(25 * M)
        if not u.is_quiet(t) and u.where(t) is not None:
            session(u, t, (u.country, u.lat, u.lon), ip=OFFICE_IP)
    return users


OFFICE_IP = "145.53.117.10"
