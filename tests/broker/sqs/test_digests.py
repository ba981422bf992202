"""The digests SQS defines, against values computed by AWS and by other
implementations (the SDKs verify them; boto3 does not, so we check here)."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import platform
import random

import pytest

from wonderq.broker.sqs import message_attributes as ma
from wonderq.broker.sqs.faults import SqsError


@pytest.fixture(autouse=True, params=["builtin", "openssl"])
def md5(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every digest here, with CPython's own MD5 and with the fallback (OpenSSL's, as
    FIPS builds allow it)."""
    if request.param == "openssl":
        monkeypatch.setattr(ma, "md5", functools.partial(hashlib.md5, usedforsecurity=False))


def string(value: str, kind: str = "String") -> dict[str, str]:
    return {"DataType": kind, "StringValue": value}


def binary(value: bytes, kind: str = "Binary") -> dict[str, str]:
    return {"DataType": kind, "BinaryValue": base64.b64encode(value).decode()}


@pytest.mark.parametrize(("attributes", "digest"), [
    # Amazon's own samples
    ({"test_attribute_name_2": string("test_attribute_value_2"),
      "test_attribute_name_1": string("test_attribute_value_1")}, "d53f3b558fe951154770f25cb63dbba9"),
    ({"test_attribute_name": binary(b"test_attribute_value")}, "23f6bd27ea87aab7dfeadcc9aebee495"),
    # a Number beside a String, and the SDK documentation's example
    ({"ordinal": string("1", "Number"), "category": string("test")}, "d21ae90c49061e927f57df5f5d72be1f"),
    ({"SellerName": string("Example Store")}, "cd28f3b68aeee4b2eac9c66f2f694b58"),
])
def test_attribute_digests_match_known_values(attributes: ma.Attributes, digest: str) -> None:
    assert ma.md5_attributes(ma.check(attributes)) == digest


def test_custom_types_are_part_of_the_digest() -> None:
    plain = ma.md5_attributes({"a": string("1", "Number")})
    custom = ma.md5_attributes({"a": string("1", "Number.int")})
    assert plain != custom
    assert ma.md5_attributes(ma.check({"pic": binary(b"\x89PNG", "Binary.png")})) != ma.md5_attributes(
        ma.check({"pic": binary(b"\x89PNG")})
    )


def test_body_digest_is_md5_of_utf8() -> None:
    assert ma.md5_bodies([b"hello"]) == ["5d41402abc4b2a76b9719d911017c592"]
    assert len(ma.md5_bodies(["é".encode()])[0]) == 32


@pytest.mark.usefixtures("lanes")
async def test_the_digests_asked_for_in_one_turn_are_taken_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Single sends ask in the same turn of the loop; each reads its own body's digest,
    from one md5_bodies call made once the turn's ready callbacks have run."""
    calls: list[int] = []
    md5_bodies = ma.md5_bodies
    monkeypatch.setattr(ma, "md5_bodies", lambda bodies: (calls.append(len(bodies)), md5_bodies(bodies))[1])
    digests = ma.BodyDigests()
    bodies = [b"x" * n for n in range(1, 21)]
    tickets = [digests.ask(b) for b in bodies]
    assert calls == []  # not before the turn's ready callbacks have run
    await asyncio.sleep(0)
    assert calls == [20]
    assert [digests.digest(t) for t in tickets] == [hashlib.md5(b).hexdigest() for b in bodies]
    assert calls == [20]  # read, not taken again
    later = digests.ask(b"later")  # the next turn: anew
    await asyncio.sleep(0)
    assert digests.digest(later) == hashlib.md5(b"later").hexdigest()
    assert calls == [20, 1]


async def test_a_send_answered_before_the_take_takes_the_digests_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read before the turn's take ran (a write answered at once) takes the asks then,
    once: the take scheduled for them finds them done, and the next ask starts afresh."""
    calls: list[int] = []
    md5_bodies = ma.md5_bodies
    monkeypatch.setattr(ma, "md5_bodies", lambda bodies: (calls.append(len(bodies)), md5_bodies(bodies))[1])
    digests = ma.BodyDigests()
    first, second = digests.ask(b"a"), digests.ask(b"b")
    assert digests.digest(second) == hashlib.md5(b"b").hexdigest()
    assert digests.digest(first) == hashlib.md5(b"a").hexdigest()
    third = digests.ask(b"c")
    await asyncio.sleep(0)
    assert calls == [2, 1]
    assert digests.digest(third) == hashlib.md5(b"c").hexdigest()


async def test_a_failed_take_fails_each_send_that_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error in the take (MemoryError in the lanes, say) reaches every send of the turn,
    as it would have alone, from one try (not one a send, nor an error the loop logs); the
    next turn's sends are not held by it."""
    tries: list[int] = []

    def no_memory(bodies: list[bytes]) -> list[str]:
        tries.append(len(bodies))
        raise MemoryError

    real = ma.md5_bodies
    monkeypatch.setattr(ma, "md5_bodies", no_memory)
    loop = asyncio.get_running_loop()
    logged: list[dict[str, object]] = []
    monkeypatch.setattr(loop, "call_exception_handler", logged.append)
    digests = ma.BodyDigests()
    tickets = [digests.ask(b"a"), digests.ask(b"b")]
    await asyncio.sleep(0)
    for ticket in tickets:
        with pytest.raises(MemoryError):
            digests.digest(ticket)
    assert (tries, logged) == ([2], [])
    monkeypatch.setattr(ma, "md5_bodies", real)
    ticket = digests.ask(b"c")
    assert digests.digest(ticket) == hashlib.md5(b"c").hexdigest()


def test_asks_left_on_a_stopped_loop_are_not_lost() -> None:
    """A loop that stops before its asks are taken: each send still reads its digest (it
    takes them itself), and another loop's asks are answered too."""
    digests = ma.BodyDigests()
    stopped, asks = asyncio.new_event_loop(), []
    stopped.call_soon(lambda: asks.append(digests.ask(b"first")))
    stopped.call_soon(stopped.stop)  # after the ask, before its take
    stopped.run_forever()
    stopped.close()

    async def again() -> str:
        ticket = digests.ask(b"second")
        await asyncio.sleep(0)
        return digests.digest(ticket)

    assert asyncio.run(again()) == hashlib.md5(b"second").hexdigest()
    assert digests.digest(asks[0]) == hashlib.md5(b"first").hexdigest()


def test_no_attributes_no_digest() -> None:
    assert ma.md5_attributes({}) is None


@pytest.mark.parametrize("names, kept", [
    (["All"], {"a.x", "a.y", "b"}), ([".*"], {"a.x", "a.y", "b"}), (["a.*"], {"a.x", "a.y"}),
    (["b"], {"b"}), (["c"], set()), ([], set()),
])
def test_select_filters_by_name_and_prefix(names: list[str], kept: set[str]) -> None:
    attributes = {n: string("v") for n in ("a.x", "a.y", "b")}
    assert set(ma.select(attributes, names)) == kept


@pytest.mark.parametrize("bad", [
    {"AWS.x": string("v")}, {"amazon.y": string("v")}, {"a..b": string("v")}, {".a": string("v")},
    {"a": {"DataType": "Float", "StringValue": "1"}}, {"a": string("x", "Number")},
    {"a": {"DataType": "String"}}, {"a": {"DataType": "Binary", "BinaryValue": "%%%"}},
    {"a": string("\x00")}, {f"n{i}": string("v") for i in range(11)},
    {"a": {"DataType": "String", "StringListValues": ["x"]}},
])
def test_bad_attributes_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(SqsError) as e:
        ma.check(bad)
    assert e.value.fault.code == "InvalidParameterValue"


def test_size_counts_names_types_and_values() -> None:
    assert ma.size({"ab": string("xyz")}) == 2 + 6 + 3
    assert ma.size({"b": binary(b"\x00\x01")}) == 1 + 6 + 2


def avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as info:
            return " avx2" in info.read()
    except OSError:
        return False


@pytest.fixture(params=["lanes", "one by one"])
def lanes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """md5_bodies both ways: in the extension's vector lanes, and one body at a time."""
    if request.param == "lanes" and not ma.LANES:
        if os.environ.get("CI") and platform.machine() == "x86_64" and avx2():
            pytest.fail("the AVX2 digests (wonderq/broker/sqs/_md5many.c) were not built")
        pytest.skip("no AVX2 digests on this machine")
    if request.param == "one by one":
        monkeypatch.setattr(ma, "LANES", 0)


@pytest.mark.usefixtures("lanes")
def test_many_bodies_get_the_digests_hashlib_gives() -> None:
    """Every length over the first few blocks (the padding takes one block or two at 56 bytes
    left over), in batches of every size up to two passes of sixteen lanes, lengths mixed."""
    rng = random.Random(9)
    for length in range(200):
        for count in (1, 2, 8, 9, 16, 17, 33):
            bodies = [rng.randbytes(rng.choice((length, rng.randrange(length + 1)))) for _ in range(count)]
            assert ma.md5_bodies(bodies) == [hashlib.md5(b).hexdigest() for b in bodies], (length, count)
    bodies = [rng.randbytes(1 << 20), b"", "é".encode() * 700, b"x" * 1024]
    assert ma.md5_bodies(bodies) == [hashlib.md5(b).hexdigest() for b in bodies]
    assert ma.md5_bodies([]) == []


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("lanes", ["lanes"], indirect=True)
def test_the_lanes_take_bytes_in_batches_of_like_sizes() -> None:
    """The lanes run as long as the longest body: a batch whose bytes are mostly one body's
    (it would be about twice as slow in the lanes), or one body, is left to the caller."""
    assert ma.hexdigests([b"x" * 1024] * 10) == [hashlib.md5(b"x" * 1024).hexdigest()] * 10
    assert ma.hexdigests([b"x" * 262_144] + [b"y" * 100] * 9) is None
    assert ma.hexdigests([b"x" * 1024]) is None
    skewed = [b"x" * 262_144] + [b"y" * 100] * 9
    assert ma.md5_bodies(skewed) == [hashlib.md5(b).hexdigest() for b in skewed]
    with pytest.raises(TypeError):
        ma.hexdigests([b"a", "b"])  # type: ignore[list-item]
