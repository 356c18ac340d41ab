"""The demo shop's data and tools: customers and orders in SQLite, order lookup, caller checks, cancelling.

Whatever the agent says about an order (its status, dates, amount) comes from an ``Order`` these tools
returned. Each call opens its own short connection, so one ``ShopDatabase`` may serve calls on many threads.
The demo data is made from a seed and fixed dates, the same rows every time, with a few orders tests rely on:
4567 (Alice Martin, SW1A 1AA, shipped), 1234 (Bob Smith, M1 1AE, processing, so it can be cancelled), no 9999.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from voiceagent.dialogue.slots import normalize_postcode
from voiceagent.errors import VoiceAgentError

STATUSES = ("processing", "shipped", "delivered", "cancelled")


class ShopError(VoiceAgentError):
    """A shop tool that cannot do what was asked."""


class ShopDatabaseError(ShopError):
    """The shop's database file is missing, corrupt, or not a shop database."""


class OrderNotFound(ShopError):
    """No order has that number."""


class OrderNotCancellable(ShopError):
    """The order is past the point where it can be cancelled (it has shipped, or is cancelled already)."""


@dataclass(frozen=True)
class Order:
    """One order as the tools found it: every fact the agent may state about it."""

    number: str
    customer_name: str
    postcode: str
    status: str
    placed: date
    shipped: date | None
    expected_delivery: date | None
    carrier: str | None
    total: Decimal  # GBP
    items: str


SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    postcode TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL
);
CREATE TABLE orders (
    number TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    placed TEXT NOT NULL,
    shipped TEXT,
    expected_delivery TEXT,
    carrier TEXT,
    total_pence INTEGER NOT NULL,
    items TEXT NOT NULL
);
"""

# The day the demo data pretends it is: orders are placed, shipped and due around it.
DEMO_TODAY = date(2026, 11, 27)
CUSTOMERS = 40
ORDERS = 100

_FIXED_CUSTOMERS = [("Alice Martin", "SW1A 1AA"), ("Bob Smith", "M1 1AE")]
# number, customer, status, placed, shipped, expected delivery, carrier, total in pence, items
_FIXED_ORDERS = [
    ("4567", "Alice Martin", "shipped", "2026-11-23", "2026-11-25", "2026-11-28", "Royal Mail", 2450,
     "2 x ceramic mug, 1 x tea towel"),
    ("1234", "Bob Smith", "processing", "2026-11-26", None, "2026-12-01", None, 8999, "1 x desk lamp"),
]  # fmt: skip
_NO_SUCH_ORDERS = {"9999"}  # numbers the demo keeps free, for "no such order"

_FIRST_NAMES = (
    "Amara", "Ben", "Chloe", "Daniel", "Ella", "Farid", "Grace", "Harry", "Isla", "Jack", "Kiran", "Lily", "Mohammed",
    "Niamh", "Oliver", "Priya", "Ruby", "Samuel", "Tom", "Uma", "Victoria", "William", "Yusuf", "Zara",
)  # fmt: skip
_LAST_NAMES = (
    "Ahmed", "Brown", "Campbell", "Davies", "Evans", "Fraser", "Green", "Hughes", "Jones", "Khan", "Lewis", "Murphy",
    "Patel", "Roberts", "Taylor", "Walker", "Wilson", "Wright",
)  # fmt: skip
_OUTWARD_CODES = ("B2", "BN1", "BS1", "CB2", "CF10", "EH1", "G1", "L1", "LS1", "NE1", "NG1", "OX1", "PL1", "S1", "YO1")
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a UK postcode's last part uses
_CARRIERS = ("Royal Mail", "DPD", "Evri", "DHL")
_CATALOGUE = (
    ("ceramic mug", 875), ("tea towel", 700), ("desk lamp", 8999), ("linen cushion", 2400), ("wool throw", 5500),
    ("scented candle", 1450), ("photo frame", 1299), ("bath towel", 1800), ("plant pot", 950), ("wall clock", 3200),
)  # fmt: skip


def _demo_customers(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(name, postcode, email, phone) of every customer; phones in Ofcom's range kept for drama (07700 900xxx)."""
    names = [name for name, _ in _FIXED_CUSTOMERS]
    people = list(_FIXED_CUSTOMERS)
    while len(people) < CUSTOMERS:
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        if name not in names:
            names.append(name)
            inward = f"{rng.randint(1, 9)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
            people.append((name, f"{rng.choice(_OUTWARD_CODES)} {inward}"))
    return [
        (name, postcode, f"{name.lower().replace(' ', '.')}@example.com", f"07700 900{index:03d}")
        for index, (name, postcode) in enumerate(people)
    ]


def _demo_order(rng: random.Random, number: str, customer: str) -> tuple:
    """One random order in the shape of ``_FIXED_ORDERS``, its dates consistent with its status."""
    status = rng.choices(STATUSES, weights=(2, 3, 4, 1))[0]
    shipped = expected = carrier = None
    if status == "delivered":
        placed = DEMO_TODAY - timedelta(days=rng.randint(10, 60))
        shipped = placed + timedelta(days=rng.randint(1, 2))
        expected = shipped + timedelta(days=rng.randint(1, 3))
    elif status == "shipped":
        placed = DEMO_TODAY - timedelta(days=rng.randint(2, 5))
        shipped = placed + timedelta(days=1)
        expected = shipped + timedelta(days=rng.randint(2, 4))
    elif status == "processing":
        placed = DEMO_TODAY - timedelta(days=rng.randint(0, 2))
        expected = placed + timedelta(days=5)
    else:
        placed = DEMO_TODAY - timedelta(days=rng.randint(3, 40))
    if shipped:
        carrier = rng.choice(_CARRIERS)
    lines = [(rng.randint(1, 2), product, price) for product, price in rng.sample(_CATALOGUE, rng.randint(1, 3))]
    items = ", ".join(f"{quantity} x {product}" for quantity, product, _ in lines)
    total = sum(quantity * price for quantity, _, price in lines)
    iso = [day.isoformat() if day else None for day in (placed, shipped, expected)]
    return (number, customer, status, *iso, carrier, total, items)


def create_demo_database(path: str | Path, seed: int = 7) -> Path:
    """Write the demo shop (40 customers, 100 orders) to ``path`` and return it: the same rows for the same seed,
    written whole or not at all (a temporary file renamed over ``path``)."""
    path = Path(path)
    rng = random.Random(seed)
    customers = _demo_customers(rng)
    names = [name for name, *_ in customers]
    taken = {number for number, *_ in _FIXED_ORDERS} | _NO_SUCH_ORDERS
    free = [str(n) for n in range(1000, 10000) if str(n) not in taken]
    numbers = rng.sample(free, ORDERS - len(_FIXED_ORDERS))
    orders = list(_FIXED_ORDERS) + [_demo_order(rng, number, rng.choice(names)) for number in numbers]

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        with closing(sqlite3.connect(partial)) as conn:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?)", [(i, *c) for i, c in enumerate(customers, 1)]
            )
            ids = {name: index for index, name in enumerate(names, 1)}
            conn.executemany(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                sorted((number, ids[customer], *rest) for number, customer, *rest in orders),
            )
            conn.commit()
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


_ORDER_QUERY = """
SELECT o.number, c.name, c.postcode, o.status, o.placed, o.shipped, o.expected_delivery, o.carrier,
       o.total_pence, o.items
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE o.number = ?
"""


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


class ShopDatabase:
    """The shop's tools over its SQLite file: find an order, check the caller is its customer, cancel it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ShopDatabaseError(f"{self.path}: no such shop database (make one: scripts/make_shop_db.py)")
        with self._connect() as conn:
            conn.execute(_ORDER_QUERY, ("",)).fetchall()  # every table and column the tools use is there

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call, committed at its end; any SQLite failure as a ShopDatabaseError."""
        try:
            # mode=rw: a file that vanished is an error, not a new empty database.
            with closing(sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True)) as conn, conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            raise ShopDatabaseError(f"{self.path}: not a usable shop database ({exc})") from None

    def find_order(self, number: str) -> Order | None:
        """The order with this number, or None."""
        with self._connect() as conn:
            row = conn.execute(_ORDER_QUERY, (number,)).fetchone()
        if row is None:
            return None
        number, name, postcode, status, placed, shipped, expected, carrier, pence, items = row
        return Order(
            number, name, postcode, status, date.fromisoformat(placed), _day(shipped), _day(expected), carrier,
            Decimal(pence).scaleb(-2), items,
        )  # fmt: skip

    @staticmethod
    def verify(order: Order, postcode: str | None = None, name: str | None = None) -> bool:
        """Whether the caller is the order's customer: every detail given matches, and at least one was given.

        The postcode is compared without spaces or case; the name may be the full name or the surname alone.
        """
        checks = []
        if postcode is not None:
            checks.append(normalize_postcode(postcode) == normalize_postcode(order.postcode))
        if name is not None:
            said, full = (" ".join(n.lower().split()) for n in (name, order.customer_name))
            checks.append(said in (full, full.split()[-1]))
        return bool(checks) and all(checks)

    def cancel_order(self, number: str) -> Order:
        """Cancel an order that is still processing, and return it cancelled; otherwise raise and change nothing."""
        with self._connect() as conn:
            cancelled = conn.execute(
                "UPDATE orders SET status = 'cancelled', expected_delivery = NULL "
                "WHERE number = ? AND status = 'processing'",
                (number,),
            ).rowcount
        order = self.find_order(number)
        if order is None:
            raise OrderNotFound(f"no order {number}")
        if not cancelled:
            raise OrderNotCancellable(f"order {number} is {order.status}: only a processing order can be cancelled")
        return order
