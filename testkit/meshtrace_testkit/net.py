"""Loopback ports, one-shot HTTP requests, and waiting with errors that say what was awaited."""
from __future__ import annotations

import collections
import http.client
import itertools
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from .procs import tail

LOOPBACK = "127.0.0.1"


class NotReady(AssertionError):
    """A wait ran out of time, or the process it waited on exited; the message says which, what was
    awaited and, when there is a log, how it ends. An AssertionError, so a test reports it as a failure."""


# The ports free_port handed out lately. The kernel may hand a port out again once its probing socket
# is closed, before whoever asked has bound it: a bootstrap's listener then got the same port as the
# admin picked after it (Envoy exits: "Address already in use").
_given = collections.deque(maxlen=4096)
_given_lock = threading.Lock()
_next = itertools.count()


def _below_ephemeral() -> range:
    """Ports from 10000 up to the kernel's ephemeral range (`ip_local_port_range`), empty when that range
    starts too low. A port inside the ephemeral range can become the source port of any outgoing
    connection while nothing listens on it yet (Envoy's upstream connections, a client retrying that very
    port: TCP's self-connect), and whoever binds it later finds it in use."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10000, low) if low > 11000 else range(0)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def free_port(preferred: int | None = None) -> int:
    """A loopback TCP port nobody listens on, and that this process was not given lately: `preferred`
    if it is free, else one below the kernel's ephemeral range (processes start at different places,
    by pid), else one the kernel hands out."""
    with _given_lock:
        if preferred and preferred not in _given and _bindable(preferred):
            _given.append(preferred)
            return preferred
        ports = _below_ephemeral()
        start = os.getpid() * 7919
        for _ in range(len(ports)):
            port = ports[(start + next(_next) * 13) % len(ports)]
            if port not in _given and _bindable(port):
                _given.append(port)
                return port
        while True:
            with socket.socket() as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _given:
                _given.append(port)
                return port


def request(port: int, path: str = "/", headers: dict | None = None, method: str = "GET",
            timeout: float = 10.0, body: bytes | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request to loopback; returns (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.05,
               proc: subprocess.Popen | None = None, log: Path | None = None):
    """Calls `predicate` until it returns something truthy, and returns that. Raises NotReady naming
    `what` after `timeout` seconds, or as soon as `proc` (when given) has exited, with the end of `log`.
    Exceptions from `predicate` propagate: a readiness probe catches its own (see `wait_for_http`)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise NotReady(f"{what}: the process exited with {proc.returncode}" + _log_end(log))
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise NotReady(f"timed out after {timeout:g} s waiting for {what}" + _log_end(log))
        time.sleep(interval)


def http_ok(port: int, path: str, timeout: float = 1.0) -> bool:
    """Whether GET `path` on loopback `port` answers 200 now (False while nothing listens)."""
    try:
        return request(port, path, timeout=timeout)[0] == 200
    except OSError:
        return False


def port_open(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on loopback `port` now."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_http(port: int, path: str, timeout: float = 60.0, what: str | None = None,
                  proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Waits until GET `path` on loopback `port` answers 200 (a readiness endpoint)."""
    wait_until(lambda: http_ok(port, path), timeout, what or f"{LOOPBACK}:{port}{path} to answer 200",
               interval=0.1, proc=proc, log=log)


def wait_for_port(port: int, timeout: float = 60.0, what: str | None = None,
                  proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Waits until loopback `port` accepts connections."""
    wait_until(lambda: port_open(port), timeout, what or f"{LOOPBACK}:{port} to accept connections",
               interval=0.1, proc=proc, log=log)


def _log_end(log: Path | None) -> str:
    return f"\n--- {log} ends:\n{tail(log)}" if log is not None else ""
