"""An upstream that sends what it should not: malformed or huge meshes, outputs hosted on private
addresses or redirecting there, JSON of the wrong shape. Nothing of it may be stored, fetched
or turned into a 500.

The generations run through ``generation_run`` — the worker's code, minus Celery — against a real
HTTP upstream: the sandbox where it can misbehave that way, else ``HostileUpstream``. The
well-behaved upstream faults (every status, mid-stream errors, drops, stalls, slow connects,
non-JSON bodies) are proven in tests/openrouter/test_client.py, tests/openrouter/test_objects.py
and, through the chat socket, tests/chat/test_streaming.py.
"""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client, override_settings

from accounts.models import User
from accounts.services import api_key_store
from generations import services
from generations.models import Generation
from openrouter import client as openrouter_client
from tests.reliability.conftest import HostileUpstream

pytestmark = pytest.mark.django_db

GOOD_PLY = (
    b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    b"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
)
MALFORMED = {
    "a PLY header that never ends": b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n"
    + bytes(range(256)),
    "a PLY whose body is shorter than its header says": (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 100000\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + b"\x00" * 12
    ),
    "a GLB whose length field lies": b"glTF" + struct.pack("<II", 2, 1_000_000) + b"\x00" * 20,
    "a GLB that is only a magic number": b"glTF" + b"\xff" * 40,
    "an HTML page with a script": b"<!doctype html><script>alert(document.cookie)</script>",
}


def generation_for(user: User, prompt: str = "a chair", **fields: Any) -> Generation:
    return Generation.objects.create(user=user, prompt=prompt, **fields)


def run(generation: Generation) -> Generation:
    """One attempt, exactly as a worker runs it (no automatic retry left)."""
    services.generation_run(generation_id=generation.pk, retries_left=False)
    generation.refresh_from_db()
    return generation


def nothing_stored(generation: Generation) -> None:
    assert generation.state == Generation.State.FAILED
    assert generation.error_message.endswith((".", "!")), generation.error_message
    assert generation.outputs.count() == 0
    folder = f"generations/{generation.user_id}/{generation.pk}"
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        files = []
    assert files == [], files


@pytest.fixture
def keyed_user(user: User) -> User:
    """A user with a stored key; the hostile upstream accepts any."""
    api_key_store(user=user, plain_key="sk-or-v1-" + "ab" * 32, source="pasted")
    return user


def answer_with(hostile: HostileUpstream, *outputs: dict[str, str]) -> None:
    hostile.reply("/api/v1/objects/generations", {"generations": list(outputs)})


def data_uri(data: bytes, kind: str = "application/x-ply") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


# --- meshes -----------------------------------------------------------------------------------


def test_a_well_formed_mesh_from_the_hostile_upstream_is_stored(
    keyed_user: User, hostile: HostileUpstream
) -> None:
    """The control for the refusals below: the same path stores a good file."""
    answer_with(hostile, {"uri": data_uri(GOOD_PLY)})
    with override_settings(OPENROUTER_URL=hostile.url):
        generation = run(generation_for(keyed_user))
    assert generation.state == Generation.State.SUCCEEDED, generation.error_message
    assert generation.outputs.get().file.read() == GOOD_PLY


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_mesh_is_refused_not_stored(
    keyed_user: User, hostile: HostileUpstream, name: str
) -> None:
    answer_with(hostile, {"uri": data_uri(MALFORMED[name])})
    with override_settings(OPENROUTER_URL=hostile.url):
        generation = run(generation_for(keyed_user, extension="ply"))
    nothing_stored(generation)


def test_the_sandboxs_html_and_javascript_outputs_are_refused_not_stored(
    connected_user: User,
) -> None:
    generation = run(generation_for(connected_user, model="sandbox/xss"))
    nothing_stored(generation)


def test_a_huge_output_is_refused_not_stored(connected_user: User) -> None:
    generation = run(generation_for(connected_user, prompt="a huge chair"))
    nothing_stored(generation)
    assert generation.error_code == "413"


@pytest.mark.parametrize(
    "model",
    [
        "sandbox/not-json",
        "sandbox/drop",
        "sandbox/truncated",
        "sandbox/midstream-error",
        "sandbox/slow-connect",
        "sandbox/stall",
    ],
)
@override_settings(OPENROUTER_GENERATION_TIMEOUT=2)
def test_a_broken_generation_response_fails_with_a_sentence_and_stores_nothing(
    connected_user: User, model: str
) -> None:
    """The sandbox's own faults on the 3D endpoint, once retries are used up."""
    nothing_stored(run(generation_for(connected_user, model=model)))


# --- where outputs may be fetched from --------------------------------------------------------


def private_targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/files/a.ply",  # not https
        f"https://127.0.0.1:{port}/files/a.ply",  # loopback
        f"https://localhost:{port}/files/a.ply",
        f"https://[::1]:{port}/files/a.ply",
        f"https://127.1:{port}/files/a.ply",  # loopback, abbreviated
        f"https://2130706433:{port}/files/a.ply",  # loopback, as one decimal number
        f"https://0.0.0.0:{port}/files/a.ply",
        "https://10.1.2.3/files/a.ply",  # private
        "https://192.168.1.1/files/a.ply",
        "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "https://[fe80::1]/files/a.ply",
        f"file:///etc/passwd#{port}",
        "javascript:alert(1)",
    ]


@override_settings(GENERATION_ALLOW_PRIVATE_URLS=False)
def test_outputs_hosted_on_private_addresses_or_not_https_are_refused_and_never_fetched(
    keyed_user: User, hostile: HostileUpstream
) -> None:
    hostile.reply("/files/a.ply", GOOD_PLY)
    failures = []
    for url in private_targets(hostile.port):
        answer_with(hostile, {"url": url})
        with override_settings(OPENROUTER_URL=hostile.url):
            generation = run(generation_for(keyed_user))
        if generation.state != Generation.State.FAILED or generation.outputs.exists():
            failures.append((url, generation.state))
    assert not failures, failures
    assert not hostile.fetched("/files/a.ply")


@override_settings(GENERATION_ALLOW_PRIVATE_URLS=True)
def test_in_development_the_same_local_url_is_fetched(
    keyed_user: User, hostile: HostileUpstream
) -> None:
    """The control: the refusals above are the policy, not an unreachable server."""
    hostile.reply("/files/a.ply", GOOD_PLY)
    answer_with(hostile, {"url": f"http://127.0.0.1:{hostile.port}/files/a.ply"})
    with override_settings(OPENROUTER_URL=hostile.url):
        generation = run(generation_for(keyed_user))
    assert generation.state == Generation.State.SUCCEEDED, generation.error_message
    assert hostile.fetched("/files/a.ply")


PUBLIC_HOST = "files.cdn.example"  # stands for a public CDN host
PUBLIC_IP = "93.184.215.14"
REBINDING_HOST = "rebind.example"  # a hostile name: public when checked, private when used
PRIVATE_IP = "10.9.9.9"


@dataclass
class Internet:
    """Offline, no public address can be reached, so the network is stood in for — and only
    that: made-up names resolve to the addresses listed in ``names`` (one answer per lookup,
    the last one repeating, as a hostile DNS server with a zero TTL answers), and connections to
    the listed addresses are routed to local TLS servers. Certificates are real (self-signed,
    trusted through ``SSL_CERT_FILE`` like a private CA); everything else resolves and connects
    as usual."""

    public: HostileUpstream  # what answers at PUBLIC_IP
    private: HostileUpstream  # an internal service, at PRIVATE_IP
    names: dict[str, list[str]]


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Internet]:
    public = HostileUpstream(tls_for=PUBLIC_HOST)
    private = HostileUpstream(tls_for=REBINDING_HOST)
    net = Internet(public, private, {PUBLIC_HOST: [PUBLIC_IP]})
    routes = {PUBLIC_IP: ("127.0.0.1", public.port), PRIVATE_IP: ("127.0.0.1", private.port)}
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        answers = net.names.get(host)
        if not answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] in routes:
            address = routes[address[0]]
        return real_connect(sock, address)

    bundle = tmp_path / "ca.pem"
    bundle.write_text("".join(Path(s.ca_file or "").read_text() for s in (public, private)))
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setattr(openrouter_client, "_sync_client", None)  # a client that trusts them
    yield net
    public.close()
    private.close()


@override_settings(GENERATION_ALLOW_PRIVATE_URLS=False)
def test_a_public_output_url_that_redirects_to_a_private_address_is_refused(
    keyed_user: User, hostile: HostileUpstream, internet: Internet
) -> None:
    cdn = internet.public
    cdn.reply("/files/a.ply", GOOD_PLY)
    cdn.reply("/private/secret", b"internal secrets")
    port = cdn.port
    targets = {
        "the control: another public file": f"https://{PUBLIC_HOST}:{port}/files/a.ply",
        "loopback": f"https://127.0.0.1:{port}/private/secret",
        "localhost": f"https://localhost:{port}/private/secret",
        "not https": f"http://{PUBLIC_HOST}:{port}/private/secret",
        "link-local metadata": "https://169.254.169.254/latest/meta-data/",
        "private": "https://10.0.0.7/private/secret",
    }
    outcomes = {}
    for name, target in targets.items():
        cdn.reply("/files/moved", b"", status=302, Location=target)
        answer_with(hostile, {"url": f"https://{PUBLIC_HOST}:{port}/files/moved"})
        with override_settings(OPENROUTER_URL=hostile.url):
            generation = run(generation_for(keyed_user))
        outcomes[name] = (generation.state, generation.outputs.count())
    assert outcomes.pop("the control: another public file") == ("succeeded", 1)
    assert outcomes == dict.fromkeys(outcomes, ("failed", 0)), outcomes
    assert not cdn.fetched("/private/secret")


@override_settings(GENERATION_ALLOW_PRIVATE_URLS=False)
def test_a_name_that_turns_private_between_the_check_and_the_download_is_not_fetched(
    keyed_user: User, hostile: HostileUpstream, internet: Internet
) -> None:
    """DNS rebinding: the address that was checked must be the address connected to."""
    internet.names[REBINDING_HOST] = [PUBLIC_IP, PRIVATE_IP]
    internet.private.reply("/files/a.ply", GOOD_PLY)  # an internal service that would answer
    internet.public.reply("/files/a.ply", GOOD_PLY)
    answer_with(hostile, {"url": f"https://{REBINDING_HOST}:{internet.public.port}/files/a.ply"})
    with override_settings(OPENROUTER_URL=hostile.url):
        run(generation_for(keyed_user))
    assert not internet.private.fetched("/files/a.ply")


# --- JSON of the wrong shape ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [[], "a string", 42, None, {"data": ["not", "an", "object"]}])
def test_a_key_info_answer_of_the_wrong_shape_is_a_clear_error_not_a_500(
    signed_in: Client, user: User, hostile: HostileUpstream, shape: Any
) -> None:
    api_key_store(user=user, plain_key="sk-or-v1-" + "cd" * 32, source="pasted")
    hostile.reply("/api/v1/key", shape)
    signed_in.raise_request_exception = False
    with override_settings(OPENROUTER_URL=hostile.url):
        credits = signed_in.get("/account/credits.json")
        pasted = signed_in.post("/account/key/", {"key": "sk-or-v1-" + "ef" * 32}, follow=True)
    assert credits.status_code == 502 and credits.json()["error"]
    assert pasted.status_code == 200
    assert "Could not check the key" in pasted.content.decode()
