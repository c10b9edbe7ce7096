"""PKCE authorization codes and the API keys they are exchanged for.

Keys are checked without any stored state: ``sk-or-v1-`` + 32 hex of nonce + 32 hex of
HMAC-SHA256(fixed secret, nonce). A key handed out before a sandbox restart therefore still works
after it, like a real key stored by the app. The secret is fixed on purpose: this is an offline
stand-in and its keys guard nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

KEY_PREFIX = "sk-or-v1-"
_SECRET = b"openrouter-sandbox: not a secret, keys only need to survive a restart"
_KEY_PATTERN = re.compile(r"sk-or-v1-([0-9a-f]{32})([0-9a-f]{32})")

CODE_TTL_SECONDS = 600.0  # OpenRouter's codes expire after 10 minutes
METHODS = ("S256", "plain")


def _mac(nonce: str) -> str:
    return hmac.new(_SECRET, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def key_mint() -> str:
    nonce = secrets.token_hex(16)
    return f"{KEY_PREFIX}{nonce}{_mac(nonce)}"


def key_is_valid(key: str) -> bool:
    match = _KEY_PATTERN.fullmatch(key)
    return match is not None and hmac.compare_digest(match[2], _mac(match[1]))


def key_user_id(key: str) -> str:
    """A stable user id per key (the sandbox has one user per key)."""
    return "user_" + hashlib.sha256(key.encode()).hexdigest()[:26]


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    """What the user agreed to on the consent page, waiting to be exchanged."""

    challenge: str | None
    method: str | None
    label: str | None
    issued_at: float


class ExchangeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CodeStore:
    """Single-use authorization codes, in memory. ``clock`` is injectable so expiry is testable."""

    def __init__(
        self, ttl: float = CODE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._grants: dict[str, Grant] = {}

    def issue(self, *, challenge: str | None, method: str | None, label: str | None) -> str:
        self._forget_expired()
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(challenge, method, label, self.clock())
        return code

    def redeem(self, *, code: str, verifier: str | None, method: str | None) -> Grant:
        """Checks the code and verifier and consumes the code; raises ExchangeError otherwise.

        A method sent at exchange must equal the one given at authorize (400). An omitted method
        means "the one I used", which is how the seed's example exchanges. Only a successful
        exchange consumes the code.
        """
        grant = self._grants.get(code)
        if grant is None:
            raise ExchangeError(403, "Invalid code: unknown or already used")
        if self.clock() - grant.issued_at > self.ttl:
            del self._grants[code]
            raise ExchangeError(403, "Invalid code: expired")
        if grant.challenge is not None:
            if method is not None and method != grant.method:
                raise ExchangeError(
                    400,
                    f"code_challenge_method mismatch: authorized with {grant.method}, "
                    f"exchanged with {method}",
                )
            if not verifier or not _verifier_matches(grant, verifier):
                raise ExchangeError(403, "Invalid code_verifier")
        del self._grants[code]
        return grant

    def _forget_expired(self) -> None:
        now = self.clock()
        for code in [c for c, g in self._grants.items() if now - g.issued_at > self.ttl]:
            del self._grants[code]


def _verifier_matches(grant: Grant, verifier: str) -> bool:
    if grant.method == "S256":
        try:
            expected = s256_challenge(verifier)
        except UnicodeEncodeError:  # the RFC's verifier alphabet is ASCII
            return False
    else:
        expected = verifier
    return hmac.compare_digest(expected.encode(), (grant.challenge or "").encode())
