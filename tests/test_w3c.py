"""The W3C trace-context test suite's cases, levels 1 and 2 (strict), through
a sidecar: the suite's "service under test" is here the inbound listener, an
application that forwards only traceparent and tracestate to the callback
URLs it is given (the suite's protocol), and the outbound listener.

The suite (github.com/w3c/trace-context, test/) is a Python harness that is
not published on any registry this project installs from, so its cases are
restated here from the spec, one row each, with what the suite expects of
the callback the harness receives.
"""
from __future__ import annotations

import http.client
import json
import re
import uuid

import pytest

from harness import TraceContextApp
from meshtrace_testkit import LOOPBACK
from meshtrace_testkit.sidecar import Sidecar

T = "12345678901234567890123456789012"
P = "1234567890123456"
TP = f"00-{T}-{P}-01"
TP0 = f"00-{T}-{P}-00"
TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.fixture(scope="module")
def sut():
    sc = Sidecar({"propagators": ["tracecontext"]}, app=TraceContextApp())
    yield sc
    assert not sc.close(), "the module panicked"


def callbacks(sc, headers: list[tuple[str, str]], count=1) -> list[dict]:
    """Sends the suite's request (headers as a list, repeats allowed) and
    returns the headers of the `count` callbacks the harness received."""
    scope = uuid.uuid4().hex
    paths = [f"/{scope}.{i}" for i in range(count)]
    body = json.dumps([{"url": f"http://{LOOPBACK}:{sc.upstream.port}{p}", "arguments": []}
                       for p in paths]).encode()
    conn = http.client.HTTPConnection(LOOPBACK, sc.inbound_port, timeout=10)
    try:
        conn.putrequest("POST", "/test")
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("content-type", "application/json")
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    got = [sc.upstream.by_path(p) for p in paths]
    assert all(h is not None for h in got), "the service called every callback"
    return got


def traceparent(h: dict) -> tuple[str, str, str, int]:
    values = h.get("traceparent", [])
    assert len(values) == 1, f"expect one traceparent header, got {values}"
    m = TRACEPARENT.match(values[0])
    assert m, f"invalid traceparent {values[0]!r}"
    version, trace, parent, flags = m.groups()
    return version, trace, parent, int(flags, 16)


def tracestate(h: dict) -> list[tuple[str, str]]:
    """The members as the harness parses them: every header, comma-split,
    OWS around members stripped."""
    out = []
    for value in h.get("tracestate", []):
        for member in re.split(r"[ \t]*,[ \t]*", value.strip(" \t")):
            if member:
                k, _, v = member.partition("=")
                out.append((k, v))
    return out


def trace_of(h):
    return traceparent(h)[1]


def same_trace(h):
    v, trace, parent, _ = traceparent(h)
    assert trace == T and parent != P, (trace, parent)


def restarted(h):
    assert trace_of(h) != T, "a new trace id"


def kept(h):
    assert trace_of(h) == T, "the caller's trace id"


def not_one_of(*ids):
    def check(h):
        assert trace_of(h) not in ids, "a new trace id"
    return check


def members(*want):
    def check(h):
        ts = dict(tracestate(h))
        for kv in want:
            k, _, v = kv.partition("=")
            assert ts.get(k) == v, f"{kv} in {tracestate(h)}"
        assert trace_of(h) == T
    return check


def absent(*keys):
    def check(h):
        ts = dict(tracestate(h))
        for k in keys:
            assert k not in ts, f"{k} discarded: {tracestate(h)}"
        assert trace_of(h) == T, "the traceparent holds"
    return check


def no_tracestate(h):
    assert not tracestate(h), tracestate(h)


KEY = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
COUNT32 = ["bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
           "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
           "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30"]


def count_is(n):
    def check(h):
        assert len(tracestate(h)) == n, tracestate(h)
    return check


def ordered(h):
    value = ",".join(f"{k}={v}" for k, v in tracestate(h))
    pos = [value.index(m) for m in ("foo=1", "bar=2", "rojo=1", "congo=2", "baz=3")]
    assert pos == sorted(pos), value
    assert trace_of(h) == T


def one_of(*options):
    def check(h):
        value = ",".join(f"{k}={v}" for k, v in tracestate(h))
        assert any(o in value for o in options), value
        assert trace_of(h) == T
    return check


def random_flag(h):
    same_trace(h)
    assert traceparent(h)[3] & 0x02, "random flag propagated"


# (case, request headers, check of the callback's headers)
LEVEL_1 = [
    ("both traceparent and tracestate missing", [], traceparent),
    ("traceparent included, tracestate missing", [("traceparent", TP)], same_trace),
    ("traceparent duplicated", [("traceparent", f"00-{T[:-1]}1-{P}-01"), ("traceparent", TP)],
     not_one_of(T, T[:-1] + "1")),
    ("header name trace-parent", [("trace-parent", TP)], restarted),
    ("header name trace.parent", [("trace.parent", TP)], restarted),
    ("header name TraceParent", [("TraceParent", TP)], kept),
    ("header name TrAcEpArEnT", [("TrAcEpArEnT", TP)], kept),
    ("header name TRACEPARENT", [("TRACEPARENT", TP)], kept),
    ("version 00 with a trailing character", [("traceparent", TP + ".")], restarted),
    ("version 00 with trailing fields", [("traceparent", TP + "-what-the-future-will-be-like")], restarted),
    ("version cc", [("traceparent", f"cc-{T}-{P}-01")], kept),
    ("version cc with trailing fields", [("traceparent", f"cc-{T}-{P}-01-what-the-future-will-be-like")],
     kept),
    ("version cc with a bad separator", [("traceparent", f"cc-{T}-{P}-01.what-the-future-will-be-like")],
     restarted),
    ("version ff", [("traceparent", f"ff-{T}-{P}-01")], restarted),
    ("version .0", [("traceparent", f".0-{T}-{P}-01")], restarted),
    ("version 0.", [("traceparent", f"0.-{T}-{P}-01")], restarted),
    ("version 000", [("traceparent", f"000-{T}-{P}-01")], restarted),
    ("version 0000", [("traceparent", f"0000-{T}-{P}-01")], restarted),
    ("version 0", [("traceparent", f"0-{T}-{P}-01")], restarted),
    ("trace id all zero", [("traceparent", f"00-{'0' * 32}-{P}-01")],
     not_one_of("0" * 32)),
    ("trace id .", [("traceparent", f"00-.{T[1:]}-{P}-01")], restarted),
    ("trace id ending in .", [("traceparent", f"00-{T[:-1]}.-{P}-01")], restarted),
    ("trace id of 33 digits", [("traceparent", f"00-{T}3-{P}-01")],
     not_one_of(T, T[1:] + "3")),
    ("trace id of 31 digits", [("traceparent", f"00-{T[:-1]}-{P}-01")], restarted),
    ("parent id all zero", [("traceparent", f"00-{T}-{'0' * 16}-01")], restarted),
    ("parent id .", [("traceparent", f"00-{T}-.{P[1:]}-01")], restarted),
    ("parent id ending in .", [("traceparent", f"00-{T}-{P[:-1]}.-01")], restarted),
    ("parent id of 17 digits", [("traceparent", f"00-{T}-{P}7-01")], restarted),
    ("parent id of 15 digits", [("traceparent", f"00-{T}-{P[:-1]}-01")], restarted),
    ("flags .0", [("traceparent", f"00-{T}-{P}-.0")], restarted),
    ("flags 0.", [("traceparent", f"00-{T}-{P}-0.")], restarted),
    ("flags of 3 digits", [("traceparent", f"00-{T}-{P}-001")], restarted),
    ("flags of 1 digit", [("traceparent", f"00-{T}-{P}-1")], restarted),
    ("traceparent with a leading space", [("traceparent", " " + TP)], kept),
    ("traceparent with a leading tab", [("traceparent", "\t" + TP)], kept),
    ("traceparent with a trailing space", [("traceparent", TP + " ")], kept),
    ("traceparent with a trailing tab", [("traceparent", TP + "\t")], kept),
    ("traceparent within tabs and spaces", [("traceparent", "\t " + TP + " \t")],
     kept),
    ("tracestate without traceparent", [("tracestate", "foo=1,bar=2")], no_tracestate),
    ("tracestate with traceparent", [("traceparent", TP0), ("tracestate", "foo=1,bar=2")],
     members("foo=1", "bar=2")),
    ("header name trace-state", [("traceparent", TP0), ("trace-state", "foo=1")], absent("foo")),
    ("header name trace.state", [("traceparent", TP0), ("trace.state", "foo=1")], absent("foo")),
    ("header name TraceState", [("traceparent", TP0), ("TraceState", "foo=1")], members("foo=1")),
    ("header name TrAcEsTaTe", [("traceparent", TP0), ("TrAcEsTaTe", "foo=1")], members("foo=1")),
    ("header name TRACESTATE", [("traceparent", TP0), ("TRACESTATE", "foo=1")], members("foo=1")),
    ("empty tracestate", [("traceparent", TP0), ("tracestate", "")],
     lambda h: (kept(h), no_tracestate(h))),
    ("tracestate then an empty one", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "")],
     members("foo=1")),
    ("an empty tracestate then one", [("traceparent", TP0), ("tracestate", ""), ("tracestate", "foo=1")],
     members("foo=1")),
    ("tracestate headers combined in order",
     [("traceparent", TP0), ("tracestate", "foo=1,bar=2"), ("tracestate", "rojo=1,congo=2"), ("tracestate", "baz=3")],
     ordered),
    ("every allowed character", [("traceparent", TP0), ("tracestate", f"{KEY}={VALUE}")], members(f"{KEY}={VALUE}")),
    ("every allowed character, @ in the key", [("traceparent", TP0), ("tracestate", f"{KEY}@a-z0-9_-*/={VALUE}")],
     members(f"{KEY}@a-z0-9_-*/={VALUE}")),
    ("tracestate OWS between members", [("traceparent", TP0), ("tracestate", "foo=1 \t , \t bar=2, \t baz=3")],
     members("foo=1", "bar=2", "baz=3")),
    ("tracestate tabs between members", [("traceparent", TP0), ("tracestate", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")],
     members("foo=1", "bar=2", "baz=3")),
    ("tracestate leading space", [("traceparent", TP0), ("tracestate", " foo=1")], members("foo=1")),
    ("tracestate leading tab", [("traceparent", TP0), ("tracestate", "\tfoo=1")], members("foo=1")),
    ("tracestate trailing space", [("traceparent", TP0), ("tracestate", "foo=1 ")], members("foo=1")),
    ("tracestate trailing tab", [("traceparent", TP0), ("tracestate", "foo=1\t")], members("foo=1")),
    ("tracestate within tabs and spaces", [("traceparent", TP0), ("tracestate", "\t foo=1 \t")], members("foo=1")),
]

# Level 1's strict cases (STRICT_LEVEL=2): an invalid list is discarded whole.
STRICT = [
    ("duplicated keys, same value", [("traceparent", TP0), ("tracestate", "foo=1,foo=1")], one_of("foo=1")),
    ("duplicated keys, other value", [("traceparent", TP0), ("tracestate", "foo=1,foo=2")], one_of("foo=1", "foo=2")),
    ("duplicated keys over two headers", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "foo=1")],
     one_of("foo=1")),
    ("duplicated keys over two headers, other value",
     [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "foo=2")], one_of("foo=1", "foo=2")),
    ("key with a space", [("traceparent", TP0), ("tracestate", "foo =1")], absent("foo ")),
    ("upper-case key", [("traceparent", TP0), ("tracestate", "FOO=1")], absent("FOO")),
    ("key with a dot", [("traceparent", TP0), ("tracestate", "foo.bar=1")], absent("foo.bar")),
    ("key ending in @", [("traceparent", TP0), ("tracestate", "foo@=1,bar=2")], members("foo@=1", "bar=2")),
    ("key starting with @", [("traceparent", TP0), ("tracestate", "@foo=1,bar=2")], absent("bar")),
    ("key with @@", [("traceparent", TP0), ("tracestate", "foo@@bar=1,bar=2")], members("foo@@bar=1", "bar=2")),
    ("key with two @", [("traceparent", TP0), ("tracestate", "foo@bar@baz=1,bar=2")],
     members("foo@bar@baz=1", "bar=2")),
    ("32 members", [("traceparent", TP0), *[("tracestate", v) for v in COUNT32], ("tracestate", "bar31=31,bar32=32")],
     lambda h: (members("bar01=01")(h), count_is(32)(h))),
    ("33 members", [("traceparent", TP0), *[("tracestate", v) for v in COUNT32],
                    ("tracestate", "bar31=31,bar32=32,bar33=33")], absent("bar01")),
    ("256-character key", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "z" * 256 + "=1")],
     members("foo=1", "z" * 256 + "=1")),
    ("257-character key", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "z" * 257 + "=1")],
     absent("foo")),
    ("241 + @ + 14 characters", [("traceparent", TP0), ("tracestate", "foo=1"),
                                 ("tracestate", "t" * 241 + "@" + "v" * 14 + "=1")],
     members("foo=1", "t" * 241 + "@" + "v" * 14 + "=1")),
    ("242 + @ + 1 characters", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "t" * 242 + "@v=1")],
     members("foo=1", "t" * 242 + "@v=1")),
    ("1 + @ + 15 characters", [("traceparent", TP0), ("tracestate", "foo=1"), ("tracestate", "t@" + "v" * 15 + "=1")],
     members("foo=1", "t@" + "v" * 15 + "=1")),
    ("= inside a value", [("traceparent", TP0), ("tracestate", "foo=bar=baz")], absent("foo")),
    ("empty value", [("traceparent", TP0), ("tracestate", "foo=,bar=3")], absent("foo", "bar")),
]

LEVEL_2 = [
    ("random flag propagated", [("traceparent", f"00-{T}-{P}-02")], random_flag),
]

CASES = LEVEL_1 + STRICT + LEVEL_2


@pytest.mark.parametrize("headers,check", [(h, c) for _, h, c in CASES], ids=[c[0] for c in CASES])
def test_trace_context_case(sut, headers, check):
    (h,) = callbacks(sut, headers)
    traceparent(h)
    check(h)


@pytest.mark.parametrize("headers,same", [
    ([("traceparent", TP)], True),
    ([], False),
    ([("traceparent", f"00-{'0' * 32}-{P}-01")], False),
], ids=["valid traceparent", "no traceparent", "illegal traceparent"])
def test_several_callbacks_share_the_trace_with_their_own_parents(sut, headers, same):
    got = [traceparent(h) for h in callbacks(sut, headers, count=3)]
    traces = {t for _, t, _, _ in got}
    assert len({p for _, _, p, _ in got}) == 3, "a span per callback"
    assert len(traces) == 1, "one trace"
    assert (traces == {T}) == same
    assert "0" * 32 not in traces
