import shutil
from pathlib import Path

import pytest

from voiceagent.dialogue.domain import load_domain
from voiceagent.dialogue.shop import ShopDatabase
from voiceagent.errors import ConfigError

SHOP = Path(__file__).resolve().parents[1] / "configs" / "domains" / "shop.toml"

MINIMAL = """
name = "Test Shop"
persona = "A test."
greeting = "Hello."
opening_hours = "Always."
transfer_target = "sip:desk@127.0.0.1"
currency = "GBP"
database = "db/test.sqlite"

[[faq]]
id = "hours"
question = "When are you open?"
answer = "Always."
keywords = ["open"]
"""


@pytest.fixture
def shop_toml(tmp_path) -> Path:
    """A copy of the demo domain, so that its database is made in tmp_path, not in the checkout."""
    return Path(shutil.copy(SHOP, tmp_path / "shop.toml"))


def test_demo_domain_loads_and_makes_its_database(shop_toml):
    domain = load_domain(shop_toml)
    assert domain.database == shop_toml.parent / "shop.sqlite" and domain.database.is_file()
    assert domain.transfer_target.startswith("sip:") and domain.currency == "GBP"
    assert 10 <= len(domain.knowledge.entries) <= 14
    assert domain.name in domain.greeting
    assert ShopDatabase(domain.database).find_order("4567").customer_name == "Alice Martin"
    assert domain.knowledge.search("what time do you open on saturday")[0][0].id == "opening-hours"


def test_an_existing_database_is_kept(shop_toml):
    database = shop_toml.parent / "shop.sqlite"
    database.write_bytes(b"kept")
    assert load_domain(shop_toml).database.read_bytes() == b"kept"


def test_answers_are_speakable(shop_toml):
    for entry in load_domain(shop_toml).knowledge.entries:
        assert not any(c in entry.answer for c in "£$€%*#_[]<>@0123456789"), entry.id


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domain.toml"
    path.write_text(text)
    return path


def test_minimal_domain(tmp_path):
    domain = load_domain(write(tmp_path, MINIMAL))
    assert domain.database == tmp_path / "db" / "test.sqlite" and domain.database.is_file()
    assert domain.knowledge.entries[0].keywords == ("open",)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace('name = "Test Shop"\n', ""), "'name' must be a non-empty string"),
        (lambda t: t.replace('"A test."', '""'), "'persona' must be a non-empty string"),
        (lambda t: t.replace('"Hello."', "3"), "'greeting' must be a non-empty string"),
        (lambda t: t + "colour = 'blue'\n", "unknown key 'colour'"),
        (lambda t: t.replace("sip:desk@127.0.0.1", "desk"), "must be a SIP URI"),
        (lambda t: t[: t.index("[[faq]]")], "no FAQ entries"),
        (lambda t: t + '\n[[faq]]\nid = "hours"\nquestion = "Q?"\nanswer = "A."\n', "FAQ id 'hours' is used twice"),
        (lambda t: t.replace('answer = "Always."', ""), "'answer' must be a non-empty string"),
        (lambda t: t.replace('["open"]', '"open"'), "'keywords' of \\[\\[faq\\]\\] 'hours' must be a list"),
        (lambda t: t.replace('keywords = ["open"]', 'keywords = ["open"]\nscore = 2'), "unknown key 'score'"),
        (lambda t: t.replace("[[faq]]", "[faq]"), "no FAQ entries"),
        (lambda t: t + "[[[", "not valid TOML"),
    ],
)
def test_bad_domains_are_config_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_domain(write(tmp_path, change(MINIMAL)))
    assert not (tmp_path / "db").exists()  # nothing made for a domain that does not load


def test_missing_domain_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_domain(tmp_path / "none.toml")
