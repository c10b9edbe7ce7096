"""3D generation through the client: outputs decoded whatever their form, downloads guarded."""

from __future__ import annotations

import base64

import pytest
from django.test import override_settings

from openrouter import client
from openrouter.client import MediaOutput
from openrouter.errors import OpenRouterError

MB = 1024 * 1024


def payload(prompt: str, **extra: object) -> dict[str, object]:
    return {"prompt": prompt, "num_outputs": 2, **extra}


def test_ply_outputs_arrive_as_data_uris_and_decode(api_key: str) -> None:
    outputs = client.generate_object(api_key, payload("a chair"))
    assert len(outputs) == 2
    for output in outputs:
        assert output.uri and output.uri.startswith("data:")
        assert client.fetch_output(output, max_bytes=MB).startswith(b"ply\n")


def test_glb_outputs_decode_to_binary_gltf(api_key: str) -> None:
    (output, _) = client.generate_object(api_key, payload("a ball", extension="glb"))
    assert client.fetch_output(output, max_bytes=MB)[:4] == b"glTF"


def test_bare_base64_and_hosted_urls_give_the_same_kind_of_file(api_key: str) -> None:
    (bare, _) = client.generate_object(api_key, payload("a bare donut"))
    assert bare.uri and not bare.uri.startswith("data:")
    (hosted, _) = client.generate_object(api_key, payload("a url donut"))
    assert hosted.url and not hosted.uri
    data = client.fetch_output(hosted, max_bytes=MB, allow_private=True)
    assert data.startswith(b"ply\n")


def test_decode_uri_tolerates_whitespace_and_refuses_garbage() -> None:
    raw = b"\x00\x01binary\xff"
    encoded = base64.b64encode(raw).decode()
    assert client.decode_uri(f"\n  data:application/x-ply;base64,{encoded}\n") == raw
    assert client.decode_uri(f"  {encoded[:4]}\n{encoded[4:]}  ") == raw
    with pytest.raises(OpenRouterError):
        client.decode_uri("data:text/plain,hello")
    with pytest.raises(OpenRouterError):
        client.decode_uri("not base64 at all!")


@pytest.mark.parametrize(
    ("model_or_prompt", "status"),
    [({"prompt": "a flagged thing"}, 451), ({"model": "sandbox/error-402"}, 402)],
)
def test_permanent_errors_keep_their_status(
    api_key: str, model_or_prompt: dict, status: int
) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, {**payload("a chair"), **model_or_prompt})
    assert error.value.status == status
    assert not error.value.retryable


def test_an_upstream_without_3d_says_so(api_key: str) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, payload("a chair", model="sandbox/no-3d"))
    assert error.value.status == 404
    assert "makes no 3D objects with this model" in error.value.message


def test_a_fail_once_prompt_is_retryable_then_succeeds(api_key: str) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, payload("fail once teapot"))
    assert error.value.retryable
    assert client.generate_object(api_key, payload("fail once teapot"))


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/x.ply", "not https"),
        ("https://127.0.0.1/x.ply", "private address"),
        ("https://10.1.2.3/x.ply", "private address"),
        ("https://169.254.169.254/latest/meta-data", "private address"),
        ("https://[::1]/x.ply", "private address"),
        ("https://localhost/x.ply", "private address"),
    ],
)
def test_downloads_outside_development_need_https_and_a_public_address(
    url: str, words: str
) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.fetch_output(MediaOutput(url=url), max_bytes=MB, allow_private=False)
    assert words in error.value.message


def test_downloads_are_size_capped(api_key: str) -> None:
    (hosted, _) = client.generate_object(api_key, payload("a url donut"))
    with pytest.raises(OpenRouterError) as error:
        client.fetch_output(hosted, max_bytes=100, allow_private=True)
    assert error.value.status == 413
    assert "larger than 100 bytes" in error.value.message


def test_an_answer_over_its_cap_is_refused_naming_the_cap(api_key: str) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, payload("a huge cube"), max_bytes=MB)
    assert error.value.status == 413
    assert error.value.message.startswith("OpenRouter's answer was larger than 1 MB,")


def test_a_check_that_raises_ends_a_long_wait_for_the_answer(api_key: str) -> None:
    class Cancelled(Exception):
        pass

    def check() -> None:
        raise Cancelled

    stalled = {**payload("a cube"), "model": "sandbox/stall"}  # keep-alives, never an answer
    with pytest.raises(Cancelled):
        client.generate_object(api_key, stalled, check=check)


def test_an_oversized_uri_is_refused_before_decoding() -> None:
    huge = MediaOutput(uri="A" * (2 * MB))
    with pytest.raises(OpenRouterError) as error:
        client.fetch_output(huge, max_bytes=MB)
    assert error.value.status == 413
    assert error.value.message.startswith("A generated object was larger than 1 MB,")


@override_settings(OPENROUTER_GENERATION_TIMEOUT=60)
def test_the_body_may_start_with_whitespace_keep_alives(api_key: str, sandbox_url: str) -> None:
    response = client.sync_client().post(
        client.api_url("objects/generations"),
        headers=client.headers(api_key),
        json=payload("a cube"),
    )
    assert response.content[:1].isspace()  # the sandbox pads like the historical runner
    assert client.generate_object(api_key, payload("a cube"))  # and we read it anyway


@override_settings(OPENROUTER_GENERATION_TIMEOUT=1.5)
def test_keep_alives_cannot_stretch_a_stalled_generation_past_the_total_limit(
    api_key: str,
) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, payload("a chair", model="sandbox/stall"))
    assert error.value.retryable
    assert "did not answer in time" in error.value.message


def test_an_error_after_the_keep_alives_is_reported(api_key: str) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.generate_object(api_key, payload("a chair", model="sandbox/midstream-error"))
    assert error.value.status == 502
