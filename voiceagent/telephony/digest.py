"""SIP digest authentication (RFC 3261 22, RFC 2617 with qop=auth, MD5): the challenge a UAS sends with 401 and
the check of the caller's answer. Nonces are the server's own, each good for a limited time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

NONCE_LIFETIME_S = 300.0
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class DigestAuth:
    def __init__(self, user: str, password: str, realm: str = "voiceagent"):
        self.user, self.password, self.realm = user, password, realm
        self._nonces: dict[str, float] = {}

    def challenge(self) -> str:
        """A WWW-Authenticate value with a fresh nonce."""
        now = time.monotonic()
        self._nonces = {n: t for n, t in self._nonces.items() if now - t < NONCE_LIFETIME_S}
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = now
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'

    def check(self, method: str, authorization: str | None) -> bool:
        """Whether an Authorization header answers one of our challenges with the right password."""
        if not authorization or not authorization.lstrip().lower().startswith("digest"):
            return False
        given = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(authorization)}
        nonce = given.get("nonce", "")
        issued = self._nonces.get(nonce)
        if issued is None or time.monotonic() - issued > NONCE_LIFETIME_S:
            return False
        if given.get("username") != self.user or given.get("realm") != self.realm or "uri" not in given:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{given['uri']}")
        if given.get("qop") == "auth":
            expected = _md5(f"{ha1}:{nonce}:{given.get('nc', '')}:{given.get('cnonce', '')}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        return hmac.compare_digest(expected, given.get("response", ""))
