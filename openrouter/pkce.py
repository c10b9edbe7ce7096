"""PKCE (RFC 7636): a secret verifier stays on our server, its S256 challenge goes to OpenRouter."""

import base64
import hashlib
import secrets
import string

UNRESERVED = string.ascii_letters + string.digits + "-._~"


def make_verifier(length: int = 64) -> str:
    """A code_verifier: ``length`` (43–128) unreserved characters from a CSPRNG."""
    if not 43 <= length <= 128:
        raise ValueError("A PKCE verifier has 43 to 128 characters.")
    return "".join(secrets.choice(UNRESERVED) for _ in range(length))


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without '=' padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
