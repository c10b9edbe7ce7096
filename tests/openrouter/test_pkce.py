import string

import pytest

from openrouter.pkce import make_verifier, s256_challenge


def test_the_rfc_7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_challenge_is_base64url_without_padding() -> None:
    for _ in range(50):
        challenge = s256_challenge(make_verifier())
        assert len(challenge) == 43
        assert set(challenge) <= set(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifiers_are_unreserved_characters_of_the_allowed_length(length: int) -> None:
    verifier = make_verifier(length)
    assert len(verifier) == length
    assert set(verifier) <= set(string.ascii_letters + string.digits + "-._~")


def test_verifiers_are_fresh_each_time() -> None:
    assert len({make_verifier() for _ in range(100)}) == 100


@pytest.mark.parametrize("length", [42, 129])
def test_a_verifier_of_a_forbidden_length_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        make_verifier(length)
