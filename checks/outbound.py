"""Outbound: nothing Ballot calls on a user's behalf reaches a private address.

Two halves.

**In process, against ``curation.outbound``** (the one client webhooks and LM judges
go through), with a resolver the check controls and every connection intercepted:
only the check's own loopback listener is ever really connected to, nothing leaves
the machine. Literal private, loopback, link-local, metadata, CGNAT and multicast
addresses in every spelling (decimal, hex, octal, short, IPv4-mapped IPv6); names
that resolve to them, or to a public and a private address at once; a DNS answer
that changes between the check and the connection (the connection must go to the
address that was checked); redirects to private addresses from an allowed first
hop; and the settings that open the policy (private allowed: metadata still refused).

**Against the running app**, as A's admin: webhooks and judges pointed at the
same hostile spellings of a loopback listener the check runs (and at the metadata
address). Saving must refuse them or the test delivery / judge test must fail,
and the listener must never see a connection.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from contextlib import contextmanager, suppress
from typing import Any
from unittest import mock

import requests

from checks.core import Context, Figure, Tally
from checks.surface import clients

SECTION = "outbound"
PUBLIC = "93.184.216.34"  # documentation-style public address; never really connected to
# (label, host) literal spellings of refused addresses.
LITERALS = [
    ("loopback", "127.0.0.1"),
    ("loopback, short", "127.1"),
    ("loopback, decimal", "2130706433"),
    ("loopback, hex", "0x7f000001"),
    ("loopback, dotted hex", "0x7f.0x0.0x0.0x1"),
    ("loopback, octal", "0177.0.0.01"),
    ("loopback IPv6", "[::1]"),
    ("loopback, IPv4-mapped", "[::ffff:127.0.0.1]"),
    ("localhost", "localhost"),
    ("unspecified", "0.0.0.0"),
    ("metadata", "169.254.169.254"),
    ("metadata, decimal", "2852039166"),
    ("metadata, IPv4-mapped", "[::ffff:169.254.169.254]"),
    ("metadata, NAT64", "[64:ff9b::a9fe:a9fe]"),
    ("metadata IPv6 (AWS)", "[fd00:ec2::254]"),
    ("metadata (Alibaba)", "100.100.100.200"),
    ("private 10/8", "10.0.0.1"),
    ("private 172.16/12", "172.16.0.1"),
    ("private 192.168/16", "192.168.1.1"),
    ("CGNAT", "100.64.0.1"),
    ("link-local", "169.254.1.1"),
    ("link-local IPv6", "[fe80::1]"),
    ("unique local IPv6", "[fd12:3456::1]"),
    ("multicast", "224.0.0.1"),
]
# Names the controlled resolver answers.
NAMES = {
    "private.check.invalid": ["10.1.2.3"],
    "loopback.check.invalid": ["127.0.0.1"],
    "metadata.check.invalid": ["169.254.169.254"],
    "mixed.check.invalid": [PUBLIC, "192.168.0.10"],
    "mapped.check.invalid": ["::ffff:10.0.0.1"],
}


class Listener:
    """A loopback HTTP server that counts connections and answers a redirect or 200."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.hits: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                listener.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if listener.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", listener.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.redirect_to = redirect_to
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def controlled_network(answers: dict[str, list[list[str]]], listener_port: int | None = None):
    """Patch name resolution and connections: ``answers`` maps a name to the address
    lists successive look-ups return (the last repeats); real resolution is kept for IP
    literals (which resolve without DNS). Every connection is recorded; only one to the
    check's own listener on loopback is really made, the rest are refused."""
    real_getaddrinfo = socket.getaddrinfo
    real_create = socket.create_connection
    lookups: dict[str, int] = {}
    connections: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = str(host).lower()
        if name in answers:
            n = lookups.get(name, 0)
            lookups[name] = n + 1
            addresses = answers[name][min(n, len(answers[name]) - 1)]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in addresses
            ]
        if name.endswith(".invalid") or not _literal_like(name):
            raise socket.gaierror(socket.EAI_NONAME, "not resolvable in the check")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        host, port = address[0], address[1]
        connections.append(f"{host}:{port}")
        if host == "127.0.0.1" and listener_port and port == listener_port:
            return real_create(address, *args, **kwargs)
        raise ConnectionRefusedError(f"the check refuses {host}:{port}")

    with (
        mock.patch("socket.getaddrinfo", getaddrinfo),
        mock.patch("socket.create_connection", create_connection),
    ):
        yield connections


def _literal_like(host: str) -> bool:
    return all(c in "0123456789abcdefx.:[]" for c in host) or host in ("localhost",)


def _in_process(ctx: Context) -> Figure:
    from django.test import override_settings

    from curation import outbound

    tally = Tally(SECTION)
    closed = {
        "BALLOT_WEBHOOK_ALLOW_PRIVATE": False,
        "BALLOT_OUTBOUND_ALLOW_PRIVATE": False,
        "BALLOT_WEBHOOK_ALLOWED_NETWORKS": [],
        "BALLOT_OUTBOUND_ALLOWED_NETWORKS": [],
    }

    def attempt(url: str) -> tuple[str, list[str]]:
        with controlled_network({k: [v] for k, v in NAMES.items()}) as connections:
            try:
                outbound.post(url, body=b"{}", headers={}, timeout=2)
                outcome = "sent"
            except outbound.AddressRefused:
                outcome = "refused"
            except outbound.TransportError as exc:
                outcome = f"failed: {exc.message[:80]}"
        return outcome, connections

    with override_settings(**closed):
        for label, host in LITERALS:
            for scheme in ("http", "https"):
                url = f"{scheme}://{host}:8080/hook"
                outcome, connections = attempt(url)
                # Refused before connecting, or failing without any connection (a
                # spelling the resolver does not read as an address at all).
                tally.check(not connections, f"{label} {url}: {outcome}, connected {connections}")
        for name in NAMES:
            outcome, connections = attempt(f"https://{name}/hook")
            tally.check(
                outcome == "refused" and not connections,
                f"{name} -> {NAMES[name]}: {outcome}, connected {connections}",
            )
        # DNS rebinding: public at the check, loopback at any later look-up.
        rebinding = {"rebind.check.invalid": [[PUBLIC], ["127.0.0.1"]]}
        with controlled_network(rebinding) as connections, suppress(outbound.TransportError):
            outbound.post("http://rebind.check.invalid/hook", body=b"{}", headers={}, timeout=2)
        tally.check(
            connections == [f"{PUBLIC}:80"],
            f"rebinding: connected to {connections}, expected only the checked {PUBLIC}",
        )
        # Redirects from an allowed first hop (the check's listener) to refused places.
        for target in (
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://2130706434/",  # 127.0.0.2: loopback, outside the allowed 127.0.0.1/32
            "http://private.check.invalid/",
            "http://metadata.check.invalid/",
        ):
            with (
                Listener(redirect_to=target) as listener,
                override_settings(BALLOT_OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"]),
                controlled_network(
                    {k: [v] for k, v in NAMES.items()}, listener_port=listener.port
                ) as connections,
            ):
                try:
                    outbound.post(
                        f"http://127.0.0.1:{listener.port}/start", body=b"{}", headers={}, timeout=2
                    )
                    outcome = "sent"
                except outbound.AddressRefused:
                    outcome = "refused"
                except outbound.TransportError as exc:
                    outcome = f"failed: {exc.message[:60]}"
            others = [c for c in connections if c != f"127.0.0.1:{listener.port}"]
            tally.check(
                outcome == "refused" and not others and len(listener.hits) == 1,
                f"redirect to {target}: {outcome}, connected {connections}",
            )
    # The settings open what they say and no more.
    with override_settings(**{**closed, "BALLOT_OUTBOUND_ALLOW_PRIVATE": True}):
        outcome, connections = attempt("http://10.0.0.1/hook")
        tally.check(
            connections == ["10.0.0.1:80"], f"private allowed, 10.0.0.1: {outcome} {connections}"
        )
        outcome, connections = attempt("http://169.254.169.254/hook")
        tally.check(
            outcome == "refused" and not connections,
            f"private allowed, metadata: {outcome} {connections}",
        )
    return tally.figure(
        "guarded client, controlled DNS",
        f"{len(LITERALS)} address spellings x http/https, {len(NAMES)} names, rebinding, "
        "5 redirects, the allow settings",
    )


def _against_app(ctx: Context) -> Figure:
    """Webhooks and judges of A pointed at a loopback listener in hostile spellings."""
    world = ctx.world
    admin = clients(ctx.base_url, world)["admin"]
    project = world.project_a
    tally = Tally(SECTION)
    with Listener() as listener:
        port = listener.port
        hosts = [
            f"127.0.0.1:{port}",
            f"127.1:{port}",
            f"2130706433:{port}",
            f"0x7f000001:{port}",
            f"[::ffff:127.0.0.1]:{port}",
            f"localhost:{port}",
            f"[::1]:{port}",
            "169.254.169.254",
            "[fd00:ec2::254]",
        ]
        if ctx.quick:
            hosts = hosts[::3]
        created: list[tuple[str, str]] = []
        for host in hosts:
            url = f"http://{host}/hook"
            answer = admin.request(
                "POST",
                f"/api/v1/projects/{project}/webhooks/",
                json={"url": url, "events": ["job.finished"], "description": "outbound check"},
            )
            if answer.status_code == 201:
                webhook_id = answer.json()["id"]
                created.append(("webhook", str(webhook_id)))
                test = admin.request(
                    "POST", f"/api/v1/projects/{project}/webhooks/{webhook_id}/test/", json={}
                )
                outcome = _delivery_outcome(admin, project, webhook_id, test)
                tally.check(
                    test.status_code < 500 and outcome.startswith("refused"),
                    f"webhook {url}: saved, test delivery {outcome}",
                )
            else:
                tally.check(
                    answer.status_code == 400,
                    f"webhook {url}: saving answered {answer.status_code}",
                )
            answer = admin.request(
                "POST",
                f"/api/v1/projects/{project}/judges/",
                json={
                    "name": f"outbound-{int(time.time() * 1000) % 10**9}-{len(created)}",
                    "backend": "openai",
                    "base_url": f"http://{host}/v1",
                    "model": "m",
                    "max_retries": 0,
                    "timeout_seconds": 2,
                },
            )
            if answer.status_code == 201:
                judge_id = answer.json()["id"]
                created.append(("judge", str(judge_id)))
                try:
                    test = admin.request(
                        "POST",
                        f"/api/v1/projects/{project}/judges/{judge_id}/test/",
                        json={"item": world.rows_a["item_id"]},
                        timeout=20,
                    )
                except requests.Timeout:
                    tally.check(False, f"judge http://{host}/v1: the test did not answer in 20 s")
                    continue
                body = (
                    test.json()
                    if test.headers.get("Content-Type", "").startswith("application/json")
                    else {}
                )
                tally.check(
                    test.status_code < 500 and bool(body.get("error") or test.status_code >= 400),
                    f"judge http://{host}/v1: saved, test answered {test.status_code} {str(body)[:120]}",
                )
            else:
                tally.check(
                    answer.status_code == 400,
                    f"judge http://{host}/v1: saving answered {answer.status_code}",
                )
        # Deliveries may be retried by a worker: give them a moment to try.
        time.sleep(0.5 if ctx.quick else 2)
        for kind, object_id in created:
            admin.request("DELETE", f"/api/v1/projects/{project}/{kind}s/{object_id}/")
        hits = list(listener.hits)
    tally.check(not hits, f"the loopback listener was reached: {hits[:3]}")
    return tally.figure(
        "webhooks and judges via the app",
        f"{len(hosts)} hostile hosts x (webhook + judge); listener hits: {len(hits)}",
    )


def _delivery_outcome(admin, project: int, webhook_id: int, test) -> str:
    """The test delivery's status once it has been tried (polled briefly)."""
    deadline = time.monotonic() + 5
    while True:
        answer = admin.request(
            "GET", f"/api/v1/projects/{project}/webhooks/{webhook_id}/deliveries/"
        )
        rows = answer.json().get("results", []) if answer.ok else []
        if rows and rows[0].get("status") != "pending":
            row = rows[0]
            return f"{row.get('status')} ({(row.get('last_error') or '')[:80]})"
        if time.monotonic() > deadline:
            state = rows[0].get("status") if rows else "none"
            return f"still {state} after 5 s (test answered {test.status_code})"
        time.sleep(0.2)


def run(ctx: Context) -> list[Figure]:
    return [_in_process(ctx), _against_app(ctx)]
