"""A business the agent answers the phone for, read from a TOML file in ``configs/domains/``.

The file names the company, the agent's persona, its greeting, the opening hours, where a call is transferred,
the currency, the shop's database, and the FAQ (``[[faq]]`` tables). See ``configs/domains/shop.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voiceagent.config import read_toml
from voiceagent.dialogue.knowledge import FaqEntry, KnowledgeBase
from voiceagent.dialogue.shop import create_demo_database
from voiceagent.errors import ConfigError

_TEXT_KEYS = ("name", "persona", "greeting", "opening_hours", "transfer_target", "currency", "database")
_FAQ_KEYS = ("id", "question", "answer")


@dataclass(frozen=True)
class Domain:
    """One business: who the agent is, what it says first, where it transfers, what it knows, where its data is."""

    name: str
    persona: str
    greeting: str
    opening_hours: str
    transfer_target: str  # a SIP URI
    currency: str
    database: Path
    knowledge: KnowledgeBase


def _text(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _faq_entry(table: object, where: str) -> FaqEntry:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each [[faq]] must be a table")
    unknown = set(table) - {*_FAQ_KEYS, "keywords"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} in [[faq]]")
    keywords = table.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
        raise ConfigError(f"{where}: 'keywords' of [[faq]] {table.get('id')!r} must be a list of strings")
    return FaqEntry(*(_text(table, key, where) for key in _FAQ_KEYS), keywords=tuple(k.strip() for k in keywords))


def load_domain(path: str | Path) -> Domain:
    """The domain in the TOML file at ``path``, checked; its database is made with the demo data if missing."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - {*_TEXT_KEYS, "faq"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    text = {key: _text(raw, key, str(path)) for key in _TEXT_KEYS}
    if not text["transfer_target"].startswith(("sip:", "sips:")):
        raise ConfigError(f"{path}: 'transfer_target' must be a SIP URI like sip:user@host")
    faq = raw.get("faq")
    if not isinstance(faq, list) or not faq:
        raise ConfigError(f"{path}: no FAQ entries: add [[faq]] tables with id, question, answer and keywords")
    entries = [_faq_entry(table, str(path)) for table in faq]
    ids = [entry.id for entry in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{path}: FAQ id {duplicates[0]!r} is used twice")

    database = path.parent / text.pop("database")
    if not database.exists():
        create_demo_database(database)
    return Domain(**text, database=database, knowledge=KnowledgeBase(entries))
