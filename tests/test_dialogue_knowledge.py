from pathlib import Path

import pytest

from voiceagent.config import read_toml
from voiceagent.dialogue.knowledge import FaqEntry, KnowledgeBase, tokenize

SHOP = Path(__file__).resolve().parents[1] / "configs" / "domains" / "shop.toml"


@pytest.fixture(scope="module")
def shop_faq() -> KnowledgeBase:
    """The demo shop's FAQ, read straight from its TOML (no database made)."""
    return KnowledgeBase(
        FaqEntry(e["id"], e["question"], e["answer"], tuple(e["keywords"])) for e in read_toml(SHOP)["faq"]
    )


@pytest.mark.parametrize(
    "query, entry",
    [
        ("what time do you open on saturday", "opening-hours"),
        ("are you open on sundays", "opening-hours"),
        ("when do you close today", "opening-hours"),
        ("can I send it back", "returns"),
        ("I want to return a jumper", "returns"),
        ("how long will delivery take", "delivery-times"),
        ("how much is postage", "delivery-costs"),
        ("what's the delivery charge", "delivery-costs"),
        ("when do I get my money back", "refunds"),
        ("do you take paypal", "payment-methods"),
        ("can I pay with my credit card", "payment-methods"),
        ("where is my parcel", "tracking"),
        ("my mug arrived broken", "damaged-item"),
        ("I've moved house, can you deliver to my new address", "change-address"),
        ("do you ship to france", "international"),
        ("how can I contact you", "contact-email"),
        ("do you sell gift vouchers", "gift-cards"),
        ("I ordered it by mistake", "cancel-policy"),
    ],
)
def test_caller_questions_find_their_entry(shop_faq, query, entry):
    assert shop_faq.search(query)[0][0].id == entry


@pytest.mark.parametrize(
    "query",
    [
        "the weather is nice",
        "hello, how are you",
        "yes please",
        "thank you, goodbye",
        "my name is Alice Martin",
        "my order number is four five six seven",  # a slot value, no question: numbers find nothing
        "my postcode is SW1A 1AA",
        "I'd like to order a pizza",
        "my daughter is two years old",
        "sorry, the line is bad",
        "",
    ],
)
def test_chatter_finds_nothing(shop_faq, query):
    assert shop_faq.search(query) == []


def test_results_are_ranked_and_limited(shop_faq):
    results = shop_faq.search("can I send it back and get a refund", limit=2)
    assert {entry.id for entry, _ in results} == {"returns", "refunds"}
    assert results[0][1] >= results[1][1] >= shop_faq.min_score
    assert len(shop_faq.search("can I send it back and get a refund", limit=1)) == 1


def test_tokenize_drops_stop_words_and_numbers():
    assert tokenize("Hi, um, what's the returns policy for order 4567, four five six seven?") == [
        "returns",
        "policy",
        "order",
    ]


def test_an_empty_knowledge_base_is_an_error():
    with pytest.raises(ValueError, match="at least one entry"):
        KnowledgeBase([])
