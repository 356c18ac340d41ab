import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from voiceagent.dialogue.shop import (
    STATUSES,
    Order,
    OrderNotCancellable,
    OrderNotFound,
    ShopDatabase,
    ShopDatabaseError,
    create_demo_database,
)
from voiceagent.errors import VoiceAgentError

TABLES = ("customers", "orders")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_shop_db.py"


def rows(path: Path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(path)) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}


@pytest.fixture
def shop(tmp_path) -> ShopDatabase:
    return ShopDatabase(create_demo_database(tmp_path / "shop.sqlite"))


def test_demo_database_is_deterministic(tmp_path):
    first = rows(create_demo_database(tmp_path / "a.sqlite"))
    assert rows(create_demo_database(tmp_path / "b.sqlite")) == first
    assert rows(create_demo_database(tmp_path / "c.sqlite", seed=8)) != first
    assert len(first["customers"]) == 40 and len(first["orders"]) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "b.sqlite", "c.sqlite"]  # no partial files


def test_demo_data_is_consistent(tmp_path):
    data = rows(create_demo_database(tmp_path / "shop.sqlite"))
    names = [c[1] for c in data["customers"]]
    assert len(set(names)) == len(names) and len({c[4] for c in data["customers"]}) == 40
    for number, _, status, placed, shipped, expected, carrier, pence, items in data["orders"]:
        assert len(number) == 4 and number.isdigit() and number != "9999"
        assert status in STATUSES and pence > 0 and items
        assert (shipped is not None) == (carrier is not None) == (status in ("shipped", "delivered"))
        assert (expected is None) == (status == "cancelled")
        assert placed <= (shipped or placed) <= (expected or placed) and placed <= "2026-11-27"


def test_fixed_orders(shop):
    assert shop.find_order("4567") == Order(
        number="4567",
        customer_name="Alice Martin",
        postcode="SW1A 1AA",
        status="shipped",
        placed=date(2026, 11, 23),
        shipped=date(2026, 11, 25),
        expected_delivery=date(2026, 11, 28),
        carrier="Royal Mail",
        total=Decimal("24.50"),
        items="2 x ceramic mug, 1 x tea towel",
    )
    bob = shop.find_order("1234")
    assert (bob.customer_name, bob.postcode, bob.status) == ("Bob Smith", "M1 1AE", "processing")
    assert bob.total == Decimal("89.99")
    assert bob.shipped is None and bob.carrier is None
    assert shop.find_order("9999") is None
    assert shop.find_order("") is None


def test_verify(shop):
    alice = shop.find_order("4567")
    assert shop.verify(alice, postcode="sw1a 1aa")
    assert shop.verify(alice, postcode="SW1A1AA", name="alice martin")
    assert shop.verify(alice, name="Martin")
    assert shop.verify(alice, name="  ALICE   MARTIN ")
    assert not shop.verify(alice)  # nothing given, nothing verified
    assert not shop.verify(alice, postcode="M1 1AE")
    assert not shop.verify(alice, postcode="SW1A 1AA", name="Bob Smith")  # every detail given must match
    assert not shop.verify(alice, name="Alice")  # a first name is not enough
    assert not shop.verify(alice, name="")
    assert not shop.verify(alice, postcode="")


def test_cancel_only_a_processing_order(shop):
    cancelled = shop.cancel_order("1234")
    assert cancelled.status == "cancelled" and cancelled.expected_delivery is None
    assert shop.find_order("1234") == cancelled
    with pytest.raises(OrderNotCancellable, match="order 1234 is cancelled"):
        shop.cancel_order("1234")
    with pytest.raises(OrderNotCancellable, match="order 4567 is shipped"):
        shop.cancel_order("4567")
    assert shop.find_order("4567").status == "shipped"
    with pytest.raises(OrderNotFound, match="no order 9999"):
        shop.cancel_order("9999")


def test_one_cancel_wins_across_threads(shop):
    def cancel(_):
        try:
            return shop.cancel_order("1234").status
        except OrderNotCancellable:
            return "refused"

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(cancel, range(4))) == ["cancelled", "refused", "refused", "refused"]


def test_missing_or_corrupt_database(tmp_path):
    with pytest.raises(ShopDatabaseError, match="no such shop database"):
        ShopDatabase(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(VoiceAgentError, match="not a usable shop database"):
        ShopDatabase(corrupt)
    empty = tmp_path / "empty.sqlite"  # an empty file is a valid SQLite database with no tables
    empty.write_bytes(b"")
    with pytest.raises(ShopDatabaseError, match="no such table: orders"):
        ShopDatabase(empty)


def test_database_removed_after_opening(tmp_path):
    shop = ShopDatabase(create_demo_database(tmp_path / "shop.sqlite"))
    (tmp_path / "shop.sqlite").unlink()
    with pytest.raises(ShopDatabaseError):
        shop.find_order("4567")
    assert not (tmp_path / "shop.sqlite").exists()


def test_make_shop_db_script(tmp_path):
    out = tmp_path / "out" / "shop.sqlite"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True)
    assert rows(out) == rows(create_demo_database(tmp_path / "same.sqlite"))
