"""A seeded synthetic small business: true persons, and a messy CSV export of them.

Two layers, each with its own random stream derived from the seed:

* :func:`generate_persons` is the *truth*: every person with their identity, acquisition
  channel, referrer, true buy-till-you-die parameters (BG/NBD: purchase rate ``λ`` and dropout
  probability ``p``; Gamma-Gamma spend rate ``nu``) and the history those parameters produced
  (sales, refunds, support contacts). Metric tests compare estimates against it.
* :func:`write_csv_folder` is the *export*: it renders the persons as the CSV folder the
  ``type: csv`` source reads, adding the noise real systems have — a share of persons gets a
  second customer record (nickname, typo, other e-mail, reformatted phone, company record),
  their sales and contacts are spread over their records, and ``ground_truth.csv`` says which
  person every record really belongs to.

Both stream: persons are made lazily in acquisition order and written as they come, so memory
holds only a few numbers and strings per person (to keep e-mails and phones unique and to pick
referrers), never the transactions.

The purchase process is the BG/NBD one: the first purchase happens at acquisition; after every
*repeat* purchase the person drops out with probability ``p``; while alive, the gaps between
purchases are exponential with rate ``λ``. So, given ``λ``, ``p`` and the observed window
``T``, the expected number of sales is ``1 + (1 - exp(-λ p T)) / p``
(:meth:`Person.expected_sales`).
"""

from __future__ import annotations

import csv
import math
import random
import unicodedata
from array import array
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from sandbox import names

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "company",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "postcode",
    "region",
    "country",
    "created_at",
)
TRANSACTION_COLUMNS = ("id", "customer_id", "date", "amount", "currency", "kind", "home_amount")
INTERACTION_COLUMNS = ("id", "customer_id", "date", "kind", "subject", "cost")
REFERRAL_COLUMNS = ("referrer_id", "referred_id", "date")
SPEND_COLUMNS = ("date", "channel", "amount", "currency")
GROUND_TRUTH_COLUMNS = ("stream", "external_id", "person_id")

FILES: dict[str, tuple[str, ...]] = {
    "customers.csv": CUSTOMER_COLUMNS,
    "transactions.csv": TRANSACTION_COLUMNS,
    "interactions.csv": INTERACTION_COLUMNS,
    "referrals.csv": REFERRAL_COLUMNS,
    "marketing_spend.csv": SPEND_COLUMNS,
    "ground_truth.csv": GROUND_TRUTH_COLUMNS,
}

REFERRAL = "referral"
"""The channel of every referred person; its spend is the referral bonus paid."""

_CENT = Decimal("0.01")
_MINUTES_PER_DAY = 1440
_HOMES = 1000
_DAYS_PER_YEAR = 365.25


@dataclass(frozen=True, slots=True)
class Channel:
    """A paid acquisition channel: its share of non-referred customers and what one costs."""

    name: str
    share: float
    cost_per_customer: float


DEFAULT_CHANNELS = (
    Channel("search", 0.40, 42.0),
    Channel("social", 0.25, 28.0),
    Channel("email", 0.15, 9.0),
    Channel("events", 0.20, 75.0),
)


@dataclass(frozen=True)
class BusinessSpec:
    """Everything that shapes the synthetic business; the same spec gives the same files.

    ``alpha`` defaults to 25 days so that a person buys about 4.8 times on average over the
    default three years (mean rate ``r / alpha`` ≈ 8.8 purchases a year while alive, mean
    dropout ``a / (a + b)`` ≈ 0.24): 200,000 persons then make about a million transactions.
    :func:`spec_for_transactions` solves ``alpha`` for other targets. Events happen before
    :attr:`horizon`, the end of the ``as_of`` day.
    """

    seed: int = 7
    customers: int = 200
    start: date = date(2023, 1, 1)
    as_of: date = date(2025, 12, 31)
    growth: float = 1.0
    """Acquisitions per day at ``as_of`` are ``1 + growth`` times those at ``start``."""
    home_currency: str = "USD"
    foreign_currency: str = "EUR"
    fx_rate: Decimal = Decimal("1.08")
    """Home-currency units per foreign unit."""
    foreign_share: float = 0.05
    duplicate_rate: float = 0.15
    second_duplicate_share: float = 0.1
    """Share of duplicated persons that get a third record."""
    no_email_share: float = 0.08
    no_phone_share: float = 0.2
    company_share: float = 0.15
    household_share: float = 0.0
    """Share of persons who live with an earlier person: same last name and address."""
    duplicate_no_address_share: float = 0.0
    """Share of e-mail, phone and company duplicates without an address (an e-mail contact,
    a guest checkout)."""
    duplicate_moved_share: float = 0.0
    """Share of e-mail and phone duplicates made after the person moved: another address."""
    # BG/NBD: λ ~ Gamma(r, scale 1/alpha) per day, p ~ Beta(a, b).
    r: float = 0.6
    alpha: float = 25.0
    a: float = 0.8
    b: float = 2.5
    # Gamma-Gamma: nu ~ Gamma(q, scale 1/gamma), each order ~ Gamma(p, scale 1/nu).
    p: float = 6.0
    q: float = 4.0
    gamma: float = 15.0
    refund_rate: float = 0.05
    full_refund_share: float = 0.6
    support_rate: float = 0.5
    """Mean contacts per person and year while they are a customer."""
    refund_contacts: float = 0.6
    """Mean extra contacts per refund, on top of the one asking for it."""
    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    referral_share: float = 0.10
    referral_bonus: float = 15.0
    evangelist_share: float = 0.03
    evangelist_weight: int = 25
    """How much likelier an evangelist is picked as referrer than anyone else."""

    def __post_init__(self) -> None:
        problems = []
        if self.customers < 1:
            problems.append("customers must be at least 1")
        if self.as_of < self.start:
            problems.append("as_of must not be before start")
        if self.growth <= -1:
            problems.append("growth must be above -1")
        if self.home_currency == self.foreign_currency:
            problems.append("foreign_currency must differ from home_currency")
        if self.fx_rate <= 0:
            problems.append("fx_rate must be positive")
        shares = (
            "foreign_share",
            "duplicate_rate",
            "second_duplicate_share",
            "no_email_share",
            "no_phone_share",
            "company_share",
            "household_share",
            "duplicate_no_address_share",
            "duplicate_moved_share",
            "refund_rate",
            "full_refund_share",
            "referral_share",
            "evangelist_share",
        )
        problems += [
            f"{name} must be in [0, 1]" for name in shares if not 0 <= getattr(self, name) <= 1
        ]
        positive = ("r", "alpha", "a", "b", "p", "q", "gamma")
        problems += [f"{name} must be positive" for name in positive if getattr(self, name) <= 0]
        if self.support_rate < 0 or self.refund_contacts < 0:
            problems.append("support_rate and refund_contacts must not be negative")
        if not self.channels or sum(channel.share for channel in self.channels) <= 0:
            problems.append("channels need a positive total share")
        if self.evangelist_weight < 1:
            problems.append("evangelist_weight must be at least 1")
        if problems:
            raise ValueError("invalid BusinessSpec: " + "; ".join(problems))

    @property
    def origin(self) -> datetime:
        """Midnight UTC at the start date: day 0.0 of the simulation clock."""
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def window_days(self) -> int:
        """Days from ``start`` to the end of ``as_of``."""
        return (self.as_of - self.start).days + 1

    @property
    def horizon(self) -> datetime:
        """The end of the ``as_of`` day; everything happens before it."""
        return self.origin + timedelta(days=self.window_days)


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    line2: str | None
    city: str
    postcode: str
    region: str
    country: str


@dataclass(frozen=True, slots=True)
class Refund:
    """Money given back for a sale: same currency, ``0 < amount <= sale.amount``."""

    at: datetime
    amount: Decimal
    home_amount: Decimal


@dataclass(frozen=True, slots=True)
class Sale:
    """One purchase. ``home_amount`` equals ``amount`` when in the home currency."""

    at: datetime
    amount: Decimal
    currency: str
    home_amount: Decimal
    refund: Refund | None


@dataclass(frozen=True, slots=True)
class Contact:
    """A conversation with the business (kind ``support``, ``email`` or ``call``)."""

    at: datetime
    kind: str
    subject: str
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Person:
    """A true customer: who they are, the parameters that drove them, and what they did."""

    index: int
    first_name: str
    last_name: str
    email: str | None
    alt_email: str | None
    """Their other address (another provider); None when they have no e-mail."""
    phone: str | None
    """Ten digits, no formatting."""
    company: str | None
    company_email: str | None
    address: Address
    channel: str
    referred_by: int | None
    """Index of the person who referred them (always acquired earlier)."""
    acquired_at: datetime
    observed_days: float
    """Days from acquisition to the horizon: the BG/NBD ``T``."""
    purchase_rate: float
    """BG/NBD ``λ``: purchases per day while alive."""
    dropout: float
    """BG/NBD ``p``: probability of dropping out after each repeat purchase."""
    spend_rate: float
    """Gamma-Gamma ``nu``; the mean order value is ``spec.p / nu``."""
    dropped_out_at: datetime | None
    sales: tuple[Sale, ...] = field(repr=False)
    contacts: tuple[Contact, ...] = field(repr=False)

    @property
    def person_id(self) -> str:
        return f"P{self.index + 1:06d}"

    @property
    def alive(self) -> bool:
        """Whether the person is still a customer at the horizon (known only to the truth)."""
        return self.dropped_out_at is None

    def expected_sales(self) -> float:
        """BG/NBD expectation of the number of sales given the true ``λ``, ``p`` and ``T``."""
        exposure = self.purchase_rate * self.observed_days
        if self.dropout == 0:
            return 1 + exposure
        return 1 - math.expm1(-exposure * self.dropout) / self.dropout


@dataclass(frozen=True, slots=True)
class SyntheticSummary:
    """Row counts per file (headers excluded) and the figures a demo prints."""

    persons: int
    customers: int
    duplicate_records: int
    transactions: int
    refunds: int
    interactions: int
    referrals: int
    marketing_spend: int
    ground_truth: int
    net_revenue: Decimal
    """Sales minus refunds, in the home currency."""


def _acquisition_fraction(u: float, growth: float) -> float:
    """Inverse CDF of acquisitions over the window, density ∝ ``1 + growth · x`` on [0, 1]."""
    if growth == 0:
        return u
    return (math.sqrt(1 + 2 * growth * u * (1 + growth / 2)) - 1) / growth


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


_FOLD = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "đ": "d",
        "Đ": "D",
        "\u0131": "i",
        "œ": "oe",
    }
)


def _ascii(text: str) -> str:
    """Lower-case ASCII letters and digits of ``text``: ``"Łukasz O'Brien"`` → ``lukaszobrien``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small (a few at most)."""
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _random_address(rng: random.Random) -> Address:
    line1 = (
        f"{rng.randint(1, 9999)} {rng.choice(names.STREET_NAMES)} "
        f"{rng.choice(names.STREET_SUFFIXES)}"
    )
    line2 = None
    if rng.random() < 0.25:
        line2 = f"{rng.choice(names.UNIT_PREFIXES)} {rng.randint(1, 40)}{rng.choice('  AB')}"
        line2 = line2.rstrip().replace("# ", "#")
    city, region, zip_prefix = rng.choice(names.CITIES)
    return Address(line1, line2, city, f"{zip_prefix}{rng.randint(1, 99):02d}", region, "US")


class _PersonFactory:
    """Draws persons one by one; keeps what must stay unique or be picked from earlier ones."""

    def __init__(self, spec: BusinessSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:persons")
        self.origin = spec.origin
        self.window = float(spec.window_days)
        self.emails: set[str] = set()
        self.phones: set[int] = set()
        # Indices of earlier persons, evangelists repeated: a uniform pick is a weighted one.
        self.referrers = array("I")
        self.channel_names = [channel.name for channel in spec.channels]
        self.channel_weights = [channel.share for channel in spec.channels]
        self.foreign_rate = float(spec.fx_rate)
        # Recent persons' (last name, address): the homes a new person may join.
        self.homes: deque[tuple[str, Address]] = deque(maxlen=_HOMES)

    def persons(self) -> Iterator[Person]:
        # Acquisition moments are the order statistics of n draws, made in ascending order
        # one at a time: given the previous one x, the next is the minimum of the remaining m
        # uniforms on (x, 1), i.e. 1 - (1 - x) · V^(1/m).
        fraction = 0.0
        count = self.spec.customers
        for index in range(count):
            fraction = 1 - (1 - fraction) * self.rng.random() ** (1 / (count - index))
            day = self.window * _acquisition_fraction(fraction, self.spec.growth)
            yield self._person(index, min(day, self.window - 1 / _MINUTES_PER_DAY))

    def _moment(self, day: float) -> datetime:
        return self.origin + timedelta(minutes=int(day * _MINUTES_PER_DAY))

    def _person(self, index: int, day: float) -> Person:
        rng, spec = self.rng, self.spec
        first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
        home = None
        if spec.household_share and self.homes and rng.random() < spec.household_share:
            last, home = self.homes[int(rng.random() * len(self.homes))]
        company = self._company(last) if rng.random() < spec.company_share else None
        email = alt_email = None
        if rng.random() >= spec.no_email_share:
            email = self._email(first, last, rng.choice(names.EMAIL_PROVIDERS))
            alt_email = self._alt_email(first, last, email)
        company_email = self._company_email(first, company) if company else None
        phone = self._phone() if rng.random() >= spec.no_phone_share else None
        address = home or _random_address(rng)
        if spec.household_share:
            self.homes.append((last, address))
        channel, referred_by = self._channel()
        self.referrers.append(index)
        if rng.random() < spec.evangelist_share:
            self.referrers.extend([index] * (spec.evangelist_weight - 1))

        rate = rng.gammavariate(spec.r, 1 / spec.alpha)
        dropout = rng.betavariate(spec.a, spec.b)
        spend_rate = rng.gammavariate(spec.q, 1 / spec.gamma)
        sales, dropped_out = self._sales(day, rate, dropout, spend_rate)
        contacts = self._contacts(day, dropped_out, sales)
        return Person(
            index=index,
            first_name=first,
            last_name=last,
            email=email,
            alt_email=alt_email,
            phone=phone,
            company=company,
            company_email=company_email,
            address=address,
            channel=channel,
            referred_by=referred_by,
            acquired_at=self._moment(day),
            observed_days=self.window - day,
            purchase_rate=rate,
            dropout=dropout,
            spend_rate=spend_rate,
            dropped_out_at=None if dropped_out is None else self._moment(dropped_out),
            sales=sales,
            contacts=contacts,
        )

    def _channel(self) -> tuple[str, int | None]:
        rng = self.rng
        if self.referrers and rng.random() < self.spec.referral_share:
            return REFERRAL, self.referrers[int(rng.random() * len(self.referrers))]
        return rng.choices(self.channel_names, self.channel_weights)[0], None

    def _unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        while email in self.emails:
            email = f"{local}{self.rng.randint(2, 9999)}@{domain}"
        self.emails.add(email)
        return email

    def _local_part(self, first: str, last: str) -> str:
        rng = self.rng
        given, family = _ascii(first) or "x", _ascii(last) or "x"
        pattern = rng.randrange(7)
        if pattern == 0:
            return f"{given}.{family}"
        if pattern == 1:
            return f"{given}{family}"
        if pattern == 2:
            return f"{given[0]}{family}"
        if pattern == 3:
            return f"{given}_{family}"
        if pattern == 4:
            return f"{given}{family[0]}{rng.randint(1, 99)}"
        if pattern == 5:
            return f"{given}.{family}{rng.randint(60, 99)}"
        return f"{given}{rng.randint(1, 999)}"

    def _email(self, first: str, last: str, domain: str) -> str:
        return self._unique_email(self._local_part(first, last), domain)

    def _alt_email(self, first: str, last: str, email: str) -> str:
        """The same person's address at another provider, often with the same local part."""
        local, domain = email.split("@")
        other = self.rng.choice([d for d in names.EMAIL_PROVIDERS if d != domain])
        if self.rng.random() < 0.5:
            local = self._local_part(first, last)
        return self._unique_email(local, other)

    def _company(self, last: str) -> str:
        rng = self.rng
        trade = rng.choice(names.COMPANY_TRADES)
        owner = last if rng.random() < 0.5 else rng.choice(names.COMPANY_WORDS)
        suffix = rng.choice(names.COMPANY_SUFFIXES)
        return f"{owner} {trade} {suffix}".rstrip()

    def _company_email(self, first: str, company: str) -> str:
        words = company.replace("&", " ").split()
        domain = "".join(
            _ascii(word)
            for word in words
            if word not in {"LLC", "Inc.", "Co.", "Ltd", "Group", "Sons"}
        )
        local = self.rng.choice(("info", "office", "hello", "orders", _ascii(first) or "x"))
        return self._unique_email(local, f"{domain}.com")

    def _phone(self) -> str:
        rng = self.rng
        while True:
            digits = (
                f"{rng.choice(names.AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            )
            if int(digits) not in self.phones:
                self.phones.add(int(digits))
                return digits

    def _sales(
        self, day: float, rate: float, dropout: float, spend_rate: float
    ) -> tuple[tuple[Sale, ...], float | None]:
        """The BG/NBD purchase history from acquisition to the horizon, and the dropout day."""
        rng = self.rng
        sales = [self._sale(day, spend_rate)]
        moment = day
        while rate > 0:
            moment += rng.expovariate(rate)
            if moment >= self.window:
                break
            sales.append(self._sale(moment, spend_rate))
            if rng.random() < dropout:
                return tuple(sales), moment
        return tuple(sales), None

    def _sale(self, day: float, spend_rate: float) -> Sale:
        rng, spec = self.rng, self.spec
        value = rng.gammavariate(spec.p, 1 / spend_rate)
        foreign = rng.random() < spec.foreign_share
        if foreign:
            currency = spec.foreign_currency
            amount = _money(max(1, round(value * 100 / self.foreign_rate)))
            home_amount = (amount * spec.fx_rate).quantize(_CENT)
        else:
            currency = spec.home_currency
            amount = home_amount = _money(max(1, round(value * 100)))
        refund = None
        if rng.random() < spec.refund_rate:
            refund_day = day + rng.uniform(0.5, 30)
            if refund_day < self.window:
                refund = self._refund(refund_day, amount, home_amount, foreign)
        return Sale(self._moment(day), amount, currency, home_amount, refund)

    def _refund(self, day: float, amount: Decimal, home_amount: Decimal, foreign: bool) -> Refund:
        """All of the sale, or a part of it, converted at the sale's rate."""
        rng = self.rng
        if rng.random() < self.spec.full_refund_share:
            return Refund(self._moment(day), amount, home_amount)
        cents = int(amount * 100)
        part = _money(max(1, round(cents * rng.uniform(0.1, 0.9))))
        home_part = (part * self.spec.fx_rate).quantize(_CENT) if foreign else part
        return Refund(self._moment(day), part, home_part)

    def _contacts(
        self, day: float, dropped_out: float | None, sales: Sequence[Sale]
    ) -> tuple[Contact, ...]:
        """General contacts while a customer (plus a month), more around every refund."""
        rng, spec = self.rng, self.spec
        end = self.window if dropped_out is None else min(self.window, dropped_out + 30)
        timed: list[tuple[float, Contact]] = []
        for _ in range(_poisson(rng, spec.support_rate * (end - day) / _DAYS_PER_YEAR)):
            kind = rng.choices(("support", "email", "call"), (0.5, 0.35, 0.15))[0]
            at = rng.uniform(day, end)
            timed.append((at, self._contact(at, kind, rng.choice(names.SUBJECTS[kind]))))
        for sale in sales:
            if sale.refund is None:
                continue
            sold = (sale.at - self.origin).total_seconds() / 86400
            refunded = (sale.refund.at - self.origin).total_seconds() / 86400
            for number in range(1 + _poisson(rng, spec.refund_contacts)):
                kind = "support" if number == 0 or rng.random() < 0.7 else "call"
                at = rng.uniform(sold, refunded)
                subject = rng.choice(names.REFUND_SUBJECTS if number == 0 else names.SUBJECTS[kind])
                timed.append((at, self._contact(at, kind, subject)))
        timed.sort(key=lambda pair: pair[0])
        return tuple(contact for _, contact in timed)

    def _contact(self, day: float, kind: str, subject: str) -> Contact:
        low, high = {"support": (12.0, 45.0), "call": (6.0, 25.0), "email": (1.0, 6.0)}[kind]
        cost = _money(round(self.rng.uniform(low, high) * 100))
        return Contact(self._moment(day), kind, subject, cost)


def generate_persons(spec: BusinessSpec) -> Iterator[Person]:
    """The true persons of ``spec`` in acquisition order; lazy and deterministic."""
    return _PersonFactory(spec).persons()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _phone_formats(digits: str) -> tuple[str, ...]:
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    return (
        f"+1 {area} {exchange} {line}",
        f"({area}) {exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area}-{exchange}-{line}",
        digits,
        f"+1{digits}",
        f"1-{area}-{exchange}-{line}",
    )


def _reverse_nicknames() -> dict[str, tuple[str, ...]]:
    formal_names: dict[str, list[str]] = {}
    for formal, nicknames in names.NICKNAMES.items():
        for nickname in nicknames:
            formal_names.setdefault(nickname, []).append(formal)
    return {nickname: tuple(formal) for nickname, formal in formal_names.items()}


_FORMAL_NAMES = _reverse_nicknames()
_PHONE_CELL = CUSTOMER_COLUMNS.index("phone")
_DUPLICATE_STYLES = ("email", "phone", "name", "company")
_DUPLICATE_STYLE_WEIGHTS = (40, 35, 15, 0)
_OWNER_STYLE_WEIGHTS = (20, 20, 10, 50)
"""Business owners often end up once as themselves and once as their company."""


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: swapped, dropped, doubled or wrong vowel. Always differs from word."""
    if len(word) < 3:
        return word + word[-1]
    position = rng.randrange(1, len(word) - 1)
    slip = rng.randrange(4)
    if slip == 0 and word[position] != word[position + 1]:
        changed = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    elif slip == 1 and len(word) > 4:
        changed = word[:position] + word[position + 1 :]
    elif slip == 2 and word[position] in "aeiou":
        changed = (
            word[:position] + rng.choice("aeiou".replace(word[position], "")) + word[position + 1 :]
        )
    else:
        changed = word[:position] + word[position] + word[position:]
    return changed


def _messy_email(rng: random.Random, email: str) -> str:
    """The same address as typed into another system: upper case and stray spaces."""
    local, domain = email.split("@")
    if rng.random() < 0.5:
        shown = email.upper()
    else:
        shown = ".".join(part.capitalize() for part in local.split(".")) + "@" + domain.capitalize()
    if shown == email:
        shown = email.upper()
    return rng.choice((f" {shown}", f"{shown} ", f"  {shown}  "))


class _Rows(Protocol):
    def writerow(self, row: Sequence[str], /) -> object: ...


@dataclass
class _Record:
    """A customer record being rendered: its id, when it appeared and how it looks."""

    number: int
    created: datetime
    cells: list[str]

    @property
    def external_id(self) -> str:
        return f"C{self.number:06d}"


class _Exporter:
    """Renders persons into the open CSV writers, counting as it goes."""

    def __init__(self, spec: BusinessSpec, writers: dict[str, _Rows]) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:export")
        self.customers = writers["customers.csv"]
        self.transactions = writers["transactions.csv"]
        self.interactions = writers["interactions.csv"]
        self.referrals = writers["referrals.csv"]
        self.spend = writers["marketing_spend.csv"]
        self.truth = writers["ground_truth.csv"]
        self.primary_numbers = array("I")
        self.acquired: Counter[tuple[int, int, str]] = Counter()
        self.next_customer = 1
        self.next_transaction = 1
        self.next_interaction = 1
        self.persons = self.duplicates = self.transaction_rows = self.refund_rows = 0
        self.interaction_rows = self.referral_rows = self.spend_rows = self.truth_rows = 0
        self.net_revenue = Decimal("0.00")

    def add(self, person: Person) -> None:
        rng = self.rng
        person_id = person.person_id
        records = [self._primary(person)]
        self.primary_numbers.append(records[0].number)
        extra = 0
        if rng.random() < self.spec.duplicate_rate:
            extra = 2 if rng.random() < self.spec.second_duplicate_share else 1
        # A duplicate usually appears when the person buys again under a new account; that
        # sale then belongs to it.
        opened_by: dict[int, _Record] = {}
        for _ in range(extra):
            repeat = [i for i in range(1, len(person.sales)) if i not in opened_by]
            if repeat:
                sale_index = rng.choice(repeat)
                created = person.sales[sale_index].at
            else:
                sale_index = -1
                offset = rng.uniform(0, person.observed_days) * _MINUTES_PER_DAY
                created = person.acquired_at + timedelta(minutes=int(offset))
            record = self._duplicate(person, created, records[0].cells[_PHONE_CELL])
            records.append(record)
            if sale_index >= 0:
                opened_by[sale_index] = record
        self.duplicates += extra
        for record in records:
            self.customers.writerow(record.cells)
            self.truth.writerow(("customers", record.external_id, person_id))
        self.truth_rows += len(records)
        self._write_sales(person, records, opened_by)
        self._write_contacts(person, records)
        if person.referred_by is not None:
            referrer = f"C{self.primary_numbers[person.referred_by]:06d}"
            self.referrals.writerow((referrer, records[0].external_id, _stamp(person.acquired_at)))
            self.referral_rows += 1
        acquired = person.acquired_at
        self.acquired[acquired.year, acquired.month, person.channel] += 1
        self.persons += 1

    def _new_record(self, created: datetime, cells: list[str]) -> _Record:
        record = _Record(self.next_customer, created, cells)
        self.next_customer += 1
        cells.insert(0, record.external_id)
        cells.append(_stamp(created))
        return record

    def _phone_format(self, digits: str | None, avoid: str = "") -> str:
        if digits is None:
            return ""
        formats = [shown for shown in _phone_formats(digits) if shown != avoid]
        return self.rng.choice(formats)

    def _primary(self, person: Person) -> _Record:
        address = person.address
        cells = [
            f"{person.first_name} {person.last_name}",
            person.first_name,
            person.last_name,
            person.company or "",
            person.email or "",
            self._phone_format(person.phone),
            address.line1,
            address.line2 or "",
            address.city,
            address.postcode,
            address.region,
            address.country,
        ]
        return self._new_record(person.acquired_at, cells)

    def _other_name(self, first: str, last: str) -> tuple[str, str]:
        """A nickname (or the formal name behind one) or a typo in the first or last name."""
        rng = self.rng
        alternatives = names.NICKNAMES.get(first, ()) + _FORMAL_NAMES.get(first, ())
        if alternatives and rng.random() < 0.6:
            return rng.choice(alternatives), last
        if rng.random() < 0.5:
            return _typo(rng, first), last
        return first, _typo(rng, last)

    def _duplicate(self, person: Person, created: datetime, primary_phone: str) -> _Record:
        """A second record of the person, linked to the first by e-mail, phone or name only.

        * e-mail: the same address (often upper-cased with stray spaces), name as is or
          varied, phone sometimes missing;
        * phone: another e-mail (or none), the same phone in another format;
        * company: the person's company as its own customer, same phone;
        * name: nickname or typo, another e-mail, no phone; only name and address link it.
        """
        rng = self.rng
        owner = person.company is not None and person.phone is not None
        weights = _OWNER_STYLE_WEIGHTS if owner else _DUPLICATE_STYLE_WEIGHTS
        style = rng.choices(_DUPLICATE_STYLES, weights)[0]
        if style == "email" and person.email is None:
            style = "phone"
        if style == "phone" and person.phone is None:
            style = "email" if person.email is not None else "name"

        first, last = person.first_name, person.last_name
        company = person.company or ""
        phone = ""
        address = person.address
        if style == "company":
            first = last = ""
            name = company
            email = person.company_email or ""
            phone = self._phone_format(person.phone, avoid=primary_phone)
        elif style == "email" and person.email is not None:
            messy = rng.random() < 0.5
            email = _messy_email(rng, person.email) if messy else person.email
            if not messy or rng.random() < 0.5:
                first, last = self._other_name(first, last)
            if rng.random() < 0.5:
                phone = self._phone_format(person.phone, avoid=primary_phone)
        else:
            email = person.alt_email if person.alt_email and rng.random() < 0.7 else ""
            if style == "phone":
                if rng.random() < 0.5:
                    first, last = self._other_name(first, last)
                phone = self._phone_format(person.phone, avoid=primary_phone)
            else:
                first, last = self._other_name(first, last)
        if style != "company":
            name = f"{first} {last}"
            if rng.random() < 0.3:
                company = ""
        spec = self.spec
        # Draws only when the option is on, so the default export stays byte for byte the same.
        share = spec.duplicate_no_address_share
        if style != "name" and share and rng.random() < share:
            address = Address("", None, "", "", "", "")
        share = spec.duplicate_moved_share
        if style in {"email", "phone"} and share and address.line1 and rng.random() < share:
            address = _random_address(rng)
        line2 = address.line2 or ""
        if line2 and rng.random() < 0.3:
            line2 = ""
        cells = [
            name,
            first,
            last,
            company,
            email,
            phone,
            address.line1,
            line2,
            address.city,
            address.postcode,
            address.region,
            address.country,
        ]
        return self._new_record(created, cells)

    def _pick(self, records: Sequence[_Record], moment: datetime) -> _Record:
        """Any record that already existed at ``moment``."""
        existing = [record for record in records if record.created <= moment]
        return existing[0] if len(existing) == 1 else self.rng.choice(existing)

    def _write_sales(
        self, person: Person, records: Sequence[_Record], opened_by: dict[int, _Record]
    ) -> None:
        home = self.spec.home_currency
        first_number = self.next_transaction
        self.next_transaction += len(person.sales)
        owners = [
            opened_by.get(i) or self._pick(records, sale.at) for i, sale in enumerate(person.sales)
        ]
        events: list[tuple[datetime, int, Refund | None]] = [
            (sale.at, i, None) for i, sale in enumerate(person.sales)
        ]
        events += [
            (sale.refund.at, i, sale.refund)
            for i, sale in enumerate(person.sales)
            if sale.refund is not None
        ]
        events.sort(key=lambda event: event[:2])
        for at, i, refund in events:
            sale = person.sales[i]
            external_id = f"T{first_number + i:07d}"
            kind, amount, home_amount = "sale", sale.amount, sale.home_amount
            if refund is not None:
                external_id += "-R"
                kind, amount, home_amount = "refund", refund.amount, refund.home_amount
                self.net_revenue -= home_amount
                self.refund_rows += 1
            else:
                self.net_revenue += home_amount
            self.transactions.writerow(
                (
                    external_id,
                    owners[i].external_id,
                    _stamp(at),
                    str(amount),
                    sale.currency,
                    kind,
                    "" if sale.currency == home else str(home_amount),
                )
            )
            self.truth.writerow(("transactions", external_id, person.person_id))
        self.transaction_rows += len(events)
        self.truth_rows += len(events)

    def _write_contacts(self, person: Person, records: Sequence[_Record]) -> None:
        for contact in person.contacts:
            external_id = f"I{self.next_interaction:07d}"
            self.next_interaction += 1
            owner = self._pick(records, contact.at)
            self.interactions.writerow(
                (
                    external_id,
                    owner.external_id,
                    _stamp(contact.at),
                    contact.kind,
                    contact.subject,
                    str(contact.cost),
                )
            )
            self.truth.writerow(("interactions", external_id, person.person_id))
        self.interaction_rows += len(person.contacts)
        self.truth_rows += len(person.contacts)

    def finish(self) -> SyntheticSummary:
        """Writes the monthly spend per channel: what its acquisitions cost, give or take."""
        costs = {channel.name: channel.cost_per_customer for channel in self.spec.channels}
        costs[REFERRAL] = self.spec.referral_bonus
        year, month = self.spec.start.year, self.spec.start.month
        while (year, month) <= (self.spec.as_of.year, self.spec.as_of.month):
            for channel, cost in costs.items():
                count = self.acquired[year, month, channel]
                if count:
                    cents = round(cost * count * self.rng.uniform(0.85, 1.15) * 100)
                    self.spend.writerow(
                        (
                            date(year, month, 1).isoformat(),
                            channel,
                            str(_money(cents)),
                            self.spec.home_currency,
                        )
                    )
                    self.spend_rows += 1
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return SyntheticSummary(
            persons=self.persons,
            customers=self.next_customer - 1,
            duplicate_records=self.duplicates,
            transactions=self.transaction_rows,
            refunds=self.refund_rows,
            interactions=self.interaction_rows,
            referrals=self.referral_rows,
            marketing_spend=self.spend_rows,
            ground_truth=self.truth_rows,
            net_revenue=self.net_revenue,
        )


def write_csv_folder(spec: BusinessSpec, folder: Path) -> SyntheticSummary:
    """Writes the export files of ``spec`` into ``folder`` (created if missing, files replaced).

    Streams person by person: memory stays at a few small values per person. Transactions
    and interactions are grouped by person, in time order within a person. A refund's id is
    its sale's id plus ``-R``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        writers: dict[str, _Rows] = {}
        for filename, columns in FILES.items():
            handle = stack.enter_context(
                (folder / filename).open("w", encoding="utf-8", newline="")
            )
            writer = csv.writer(handle)
            writer.writerow(columns)
            writers[filename] = writer
        exporter = _Exporter(spec, writers)
        for person in generate_persons(spec):
            exporter.add(person)
        return exporter.finish()


_PLAN_SAMPLES = 50_000
"""Draws behind the estimates below: they agree with real exports to about 1%."""


def expected_transactions_per_person(spec: BusinessSpec) -> float:
    """Monte Carlo estimate of transaction rows (sales and refunds) per person for ``spec``.

    Refunds are counted as if none fell after the horizon, so this is a touch high.
    """
    return _rows_per_person(_plan_draws(spec), spec.alpha, spec.refund_rate)


def _plan_draws(spec: BusinessSpec) -> list[tuple[float, float, float]]:
    """(λ · alpha, p, T) draws; ``λ = g / alpha`` lets one sample serve every alpha."""
    rng = random.Random(f"{spec.seed}:plan")
    window = spec.window_days
    return [
        (
            rng.gammavariate(spec.r, 1.0),
            rng.betavariate(spec.a, spec.b),
            window * (1 - _acquisition_fraction(rng.random(), spec.growth)),
        )
        for _ in range(_PLAN_SAMPLES)
    ]


def _rows_per_person(
    draws: Sequence[tuple[float, float, float]], alpha: float, refund_rate: float
) -> float:
    total = 0.0
    for shape_draw, dropout, observed in draws:
        exposure = shape_draw / alpha * observed
        total += 1 + (exposure if dropout == 0 else -math.expm1(-exposure * dropout) / dropout)
    return total / len(draws) * (1 + refund_rate)


def spec_for_transactions(
    customers: int, transactions: int, base: BusinessSpec | None = None
) -> BusinessSpec:
    """``base`` (default spec) with ``customers`` persons and ``alpha`` solved so that the
    export holds about ``transactions`` transaction rows (within a few percent).

    Only the scale of the purchase rates changes; bench uses this to size its inputs.
    """
    spec = replace(base or BusinessSpec(), customers=customers)
    target = transactions / customers
    draws = _plan_draws(spec)
    low, high = math.log(1e-3), math.log(1e6)
    reachable = (
        _rows_per_person(draws, math.exp(high), spec.refund_rate),
        _rows_per_person(draws, math.exp(low), spec.refund_rate),
    )
    if not reachable[0] <= target <= reachable[1]:
        raise ValueError(
            f"{transactions} transactions for {customers} persons is out of reach: every "
            "person buys at least once, and the dropout rate caps the rest "
            f"(reachable: {reachable[0]:.2f} to {reachable[1]:.0f} per person)"
        )
    for _ in range(25):  # the bracket is 21 wide in log(alpha): 25 halvings give 1e-6
        middle = (low + high) / 2
        if _rows_per_person(draws, math.exp(middle), spec.refund_rate) > target:
            low = middle
        else:
            high = middle
    return replace(spec, alpha=math.exp((low + high) / 2))
