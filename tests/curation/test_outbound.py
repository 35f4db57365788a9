"""The one outbound client: address checks at connection time, redirects re-checked, retry hints.

Every test here guards ``socket.create_connection``: a connection to anything
outside 127.0.0.0/8 fails the test, so no packet can leave the machine, and
the refusal tests also prove nothing was even attempted.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess

import pytest

from curation import outbound
from tests.curation.receiver import Receiver

REAL_CREATE_CONNECTION = socket.create_connection
REAL_GETADDRINFO = socket.getaddrinfo


def fake_dns(monkeypatch, answer):
    """Answer look-ups of names with ``answer(host)``; IP literals resolve as usual (no DNS)."""

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in answer(host)
            ]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    """Every address the client connects to; anything outside loopback fails the test."""
    seen: list[str] = []

    def guarded(address, *args, **kwargs):
        host = address[0]
        seen.append(host)
        assert ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8"), (
            f"the client tried to connect to {host}"
        )
        return REAL_CREATE_CONNECTION(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return seen


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def only_127_0_0_1(settings):
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = False
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture(autouse=True)
def default_policy(settings, monkeypatch):
    for name in ("BALLOT_WEBHOOK_ALLOW_PRIVATE", "BALLOT_WEBHOOK_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = False
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = []
    settings.BALLOT_WEBHOOK_MAX_REDIRECTS = 3


def _post(url: str) -> outbound.OutboundResponse:
    return outbound.post(url, body=b'{"a":1}', headers={"Content-Type": "application/json"})


def test_it_posts_to_a_loopback_receiver_the_setting_allows(only_127_0_0_1, receiver, connections):
    response = _post(receiver.url)
    assert response.status_code == 200
    assert [r.body for r in receiver.requests] == [b'{"a":1}']
    assert connections == ["127.0.0.1"]


def test_it_refuses_loopback_by_default_without_connecting(receiver, connections):
    with pytest.raises(outbound.AddressRefused) as refused:
        _post(receiver.url)
    assert "loopback" in refused.value.message
    assert refused.value.permanent
    assert receiver.requests == []
    assert connections == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://10.255.255.254:8080/hook",
        "http://192.168.1.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
        "http://100.100.100.200/hook",
        "http://100.64.0.1/hook",
        "https://127.0.0.1/hook",
    ],
)
def test_it_refuses_private_link_local_metadata_and_special_addresses_before_any_packet(
    url, connections
):
    with pytest.raises(outbound.AddressRefused):
        _post(url)
    assert connections == []


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch, connections):
    fake_dns(monkeypatch, lambda host: ["10.1.2.3"])
    with pytest.raises(outbound.AddressRefused) as refused:
        _post("http://intranet.example/hook")
    assert "10.1.2.3" in refused.value.message
    assert connections == []


def test_a_name_with_any_refused_address_is_refused_whole(monkeypatch, only_127_0_0_1, connections):
    fake_dns(monkeypatch, lambda host: ["127.0.0.1", "169.254.169.254"])
    with pytest.raises(outbound.AddressRefused):
        _post("http://mixed.example/hook")
    assert connections == []


def test_it_connects_to_the_checked_address_and_never_resolves_again(
    monkeypatch, only_127_0_0_1, receiver, connections
):
    # DNS rebinding: the first answer passes the check, every later one is private.
    answers = iter(["127.0.0.1"])
    lookups: list[str] = []

    def rebinding(host):
        lookups.append(host)
        return [next(answers, "10.0.0.1")]

    fake_dns(monkeypatch, rebinding)
    response = _post(f"http://rebind.example:{receiver.port}/hook")
    assert response.status_code == 200
    assert lookups == ["rebind.example"]
    assert connections == ["127.0.0.1"]
    # The name still travels in the Host header (and would be the TLS server name).
    assert receiver.requests[0].headers["host"] == f"rebind.example:{receiver.port}"


def test_a_redirect_to_another_loopback_address_outside_the_allowed_network_is_refused(
    only_127_0_0_1, receiver, connections
):
    other = Receiver(host="127.0.0.2").start()
    try:
        receiver.redirect_to = other.url
        with pytest.raises(outbound.AddressRefused) as refused:
            _post(receiver.url)
        assert "127.0.0.2" in refused.value.message
        assert len(receiver.requests) == 1
        assert other.requests == []
        assert connections == ["127.0.0.1"]
    finally:
        other.stop()


def test_a_redirect_to_the_metadata_address_is_refused_before_connecting(
    only_127_0_0_1, receiver, connections
):
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/iam/"
    with pytest.raises(outbound.AddressRefused) as refused:
        _post(receiver.url)
    assert "metadata" in refused.value.message
    assert connections == ["127.0.0.1"]


def test_allow_private_opens_loopback_but_never_the_metadata_address(
    settings, receiver, connections
):
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = True
    assert _post(receiver.url).status_code == 200
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(outbound.AddressRefused):
        _post(receiver.url)
    assert connections == ["127.0.0.1", "127.0.0.1"]


def test_redirects_between_allowed_addresses_are_followed_and_can_be_switched_off(
    settings, only_127_0_0_1, receiver
):
    target = Receiver().start()
    try:
        receiver.redirect_to = target.url + "?moved=1"
        response = _post(receiver.url)
        assert response.status_code == 200
        assert response.url == target.url + "?moved=1"
        assert [r.body for r in target.requests] == [b'{"a":1}']
        settings.BALLOT_WEBHOOK_MAX_REDIRECTS = 0
        with pytest.raises(outbound.TransportError) as refused:
            _post(receiver.url)
        assert refused.value.permanent and refused.value.status_code == 307
        assert len(target.requests) == 1
    finally:
        target.stop()


def test_server_errors_are_worth_a_retry_and_client_errors_are_not(only_127_0_0_1, receiver):
    receiver.answers = [500, 429, 404]
    for status, permanent in ((500, False), (429, False), (404, True)):
        with pytest.raises(outbound.TransportError) as failed:
            _post(receiver.url)
        assert (failed.value.status_code, failed.value.permanent) == (status, permanent)


def test_a_connection_refused_is_transient(only_127_0_0_1):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(outbound.TransportError) as failed:
        _post(f"http://127.0.0.1:{port}/hook")
    assert not failed.value.permanent


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http://user:pw@127.0.0.1/", "http:///x"]
)
def test_other_schemes_credentials_and_hostless_urls_are_refused(url, only_127_0_0_1, connections):
    with pytest.raises(outbound.TransportError) as refused:
        _post(url)
    assert refused.value.permanent
    assert connections == []


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for the name hook.test (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=hook.test",
            "-addext",
            "subjectAltName=DNS:hook.test",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_goes_to_the_checked_address_and_verifies_the_certificate_against_the_name(
    monkeypatch, only_127_0_0_1, certificate, connections
):
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    tls_receiver = Receiver(tls=server_tls).start()
    try:
        monkeypatch.setattr(
            outbound, "_tls_context", lambda: ssl.create_default_context(cafile=str(cert))
        )
        fake_dns(monkeypatch, lambda host: ["127.0.0.1"])
        response = _post(f"https://hook.test:{tls_receiver.port}/hook")
        assert response.status_code == 200
        assert tls_receiver.requests[0].headers["host"] == f"hook.test:{tls_receiver.port}"
        assert connections == ["127.0.0.1"]
        # Same address, another name: the certificate does not match, nothing is sent.
        with pytest.raises(outbound.TransportError) as failed:
            _post(f"https://other.test:{tls_receiver.port}/hook")
        assert "certificate" in failed.value.message.lower()
        assert len(tls_receiver.requests) == 1
    finally:
        tls_receiver.stop()


def test_a_url_http_client_cannot_encode_is_a_permanent_transport_error(only_127_0_0_1, receiver):
    """A non-ASCII path used to escape the client as UnicodeEncodeError (a 500 in the
    judge test and a crash in webhook delivery) instead of a TransportError."""
    with pytest.raises(outbound.TransportError) as failed:
        _post(receiver.url.rstrip("/") + "/caf\u00e9")
    assert failed.value.permanent and "cannot be sent" in failed.value.message
    assert receiver.requests == []
