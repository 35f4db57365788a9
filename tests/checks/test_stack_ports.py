"""The check's stack never fails because a port it would like is held: CI ran ``make
check`` right after the suite, and a port inside the kernel's ephemeral range was taken."""

from __future__ import annotations

import socket

from checks.stack import _ephemeral_range, _port_free, pick_port


def test_a_free_preferred_port_is_kept():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert pick_port(port) == port


def test_a_taken_port_is_replaced_by_a_free_one_below_the_ephemeral_range():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        port = pick_port(taken)
        assert port != taken
        assert _port_free(port)
        low, high = _ephemeral_range()
        assert not low <= port <= high


def test_ports_already_handed_out_are_not_handed_out_again():
    first = pick_port(25432)
    second = pick_port(first, {first})
    assert second != first


def test_the_default_ports_lie_below_the_ephemeral_range():
    import inspect

    from checks.stack import Stack

    low, high = _ephemeral_range()
    defaults = inspect.signature(Stack.__init__).parameters
    for name in ("pg_port", "redis_port", "web_port"):
        assert not low <= defaults[name].default <= high, name
