"""Instructions per request, counted by valgrind's callgrind: a cost that does not drift with
the machine. Its counts agree run to run within about 2 %; a timed run on this kind of machine
drifts by 10-25 % (fsync latency, neighbours), as much as most changes measured.

The broker app runs in one process on a throwaway SQLite database with its defaults
(durability full), driven by 32 concurrent kept-alive clients through the edge's own HTTP/1.1
connections (``wonderq.edge.connections``: parsing, routing, the response written), with no
sockets: each connection's transport is a stand-in that hands the response back. Each
operation runs twice under callgrind, with N1 and N2 requests; (count(N2) - count(N1)) /
(N2 - N1) is the cost of one request on both threads (the event loop's and the SQLite
writer's), in user space: the kernel's share (fsync, the thread hand-offs' futex calls, the
socket's reads and writes) is not counted.

    .venv/bin/python bench/instructions.py                     # every operation, ~4 minutes
    .venv/bin/python bench/instructions.py rest-send sqs-send  # some

    operation     one request
    rest-send     POST /messages, one 1 KiB message
    rest-batch    POST /messages, 10 messages
    rest-consume  GET /messages/consume (10) + POST /messages/delete of the 10
    sqs-send      SendMessage
    sqs-batch     SendMessageBatch of 10
    sqs-consume   ReceiveMessage (10) + DeleteMessageBatch of the 10

Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

BODY = "x" * 1024
CLIENTS = 32
HOST = [(b"host", b"127.0.0.1:3213")]
JSON = [(b"content-type", b"application/json"), *HOST]
URL = "http://127.0.0.1:3213/000000000000/bench"
COUNTS = {"send": (320, 960), "batch": (160, 480), "consume": (160, 480)}  # N1, N2 per kind of operation
OPERATIONS = [f"{api}-{kind}" for api in ("rest", "sqs") for kind in COUNTS]
PREFILL = 8_000  # messages, for the consume operations: more than any run takes


def sqs_headers(action: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/x-amz-json-1.0"), (b"x-amz-target", f"AmazonSQS.{action}".encode()),
            *HOST, (b"authorization", b"AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/sqs/aws4_request")]


class Wire:
    """One client's kept-alive connection into the edge, with no socket: it is the
    :class:`~wonderq.edge.connection.Connection`'s transport, and each response the
    connection writes (one ``write`` a response) answers the request in flight."""

    def __init__(self, connections: Any) -> None:
        self.answer: asyncio.Future[bytes] | None = None
        self.conn = connections()
        self.conn.connection_made(self)

    async def request(self, raw: bytes) -> bytes:
        self.answer = asyncio.get_running_loop().create_future()
        self.conn.data_received(raw)
        return await self.answer

    def write(self, data: bytes) -> None:
        assert self.answer is not None
        self.answer.set_result(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


async def call(wire: Wire, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"",
               query: bytes = b"") -> bytes:
    """One request through the edge's HTTP/1.1 connection; its body (a status other than 200 raises)."""
    target = f"{path}?{query.decode()}" if query else path
    head = [f"{method} {target} HTTP/1.1".encode(), *(n + b": " + v for n, v in headers),
            b"content-length: " + str(len(body)).encode()]
    raw = await wire.request(b"\r\n".join(head) + b"\r\n\r\n" + body)
    status, _, rest = raw.partition(b"\r\n")
    answer = rest.partition(b"\r\n\r\n")[2]
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{method} {path}: {status!r} {answer[:200]!r}")
    return answer


def rest_batch_body(n: int) -> bytes:
    return orjson.dumps({"queue_name": "bench", "messages": [{"body": BODY} for _ in range(n)]})


def sqs_batch_body(n: int) -> bytes:
    return orjson.dumps({"QueueUrl": URL, "Entries": [{"Id": str(i), "MessageBody": BODY} for i in range(n)]})


def operation(name: str) -> Callable[[Wire], Awaitable[object]]:
    """The request (or pair) that ``name`` counts as one."""
    rest_one = orjson.dumps({"queue_name": "bench", "body": BODY})
    sqs_one = orjson.dumps({"QueueUrl": URL, "MessageBody": BODY})
    receive = orjson.dumps({"QueueUrl": URL, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0})
    # each action's headers made once, as REST's are: the client's own work is not the broker's
    send, batch, receiving, deleting = (sqs_headers(a) for a in ("SendMessage", "SendMessageBatch",
                                                                 "ReceiveMessage", "DeleteMessageBatch"))

    async def rest_consume(wire: Wire) -> None:
        got = orjson.loads(await call(wire, "GET", "/messages/consume", HOST, query=b"queue_name=bench&size=10"
                                                                                  b"&wait_time=0"))
        entries = [{"id": m["id"], "reservation_token": m["reservation_token"]} for m in got]
        await call(wire, "POST", "/messages/delete", JSON, orjson.dumps({"messages": entries}))

    async def sqs_consume(wire: Wire) -> None:
        got = orjson.loads(await call(wire, "POST", "/", receiving, receive))["Messages"]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        await call(wire, "POST", "/", deleting, orjson.dumps({"QueueUrl": URL, "Entries": entries}))

    return {
        "rest-send": lambda wire: call(wire, "POST", "/messages", JSON, rest_one),
        "rest-batch": lambda wire: call(wire, "POST", "/messages", JSON, rest_batch_body(10)),
        "rest-consume": rest_consume,
        "sqs-send": lambda wire: call(wire, "POST", "/", send, sqs_one),
        "sqs-batch": lambda wire: call(wire, "POST", "/", batch, sqs_batch_body(10)),
        "sqs-consume": sqs_consume,
    }[name]


async def drive(name: str, requests: int) -> None:
    """The child: the broker app's lifespan, a queue, a prefill for consumes, a warm-up, then ``requests``."""
    from wonderq.broker.app import create_app
    from wonderq.edge.connections import Connections
    from wonderq.edge.limits import Limits
    from wonderq.settings import Settings

    folder = tempfile.mkdtemp(prefix="wonderq-instructions-")
    app = create_app(Settings(db=f"sqlite:///{folder}/wonderq.db"))
    connections = Connections(app, Limits())
    async with app.served():
        wires = [Wire(connections) for _ in range(CLIENTS)]
        await call(wires[0], "POST", "/queues", JSON, b'{"name": "bench"}')
        if name.endswith("consume"):
            fill = (lambda w: call(w, "POST", "/messages", JSON, rest_batch_body(10))) if name.startswith("rest") \
                else (lambda w: call(w, "POST", "/", sqs_headers("SendMessageBatch"), sqs_batch_body(10)))
            await clients(wires, fill, PREFILL // 10)
        one = operation(name)
        await clients(wires, one, CLIENTS * 2)  # warm: every client's first request, the queue cached
        await clients(wires, one, requests)
        connections.deadlines.stop()
    shutil.rmtree(folder, ignore_errors=True)


async def clients(wires: list[Wire], one: Callable[[Wire], Awaitable[object]], requests: int) -> None:
    left = [requests]

    async def client(wire: Wire) -> None:
        while left[0] > 0:
            left[0] -= 1
            await one(wire)

    await asyncio.gather(*(client(wire) for wire in wires))


def counted(name: str, requests: int) -> int:
    """Instructions callgrind counted for a child that made ``requests`` requests."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
                               sys.executable, __file__, "run", name, str(requests)], capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{name} ({requests} requests) failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(name: str) -> float:
    low, high = COUNTS[name.split("-", 1)[1]]
    with ThreadPoolExecutor(2) as pool:  # valgrind runs a process on one core: two at once
        a, b = pool.map(lambda n: counted(name, n), (low, high))
    return (b - a) / (high - low)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        import uvloop

        uvloop.run(drive(sys.argv[2], int(sys.argv[3])))
        return 0
    names = sys.argv[1:] or OPERATIONS
    unknown = set(names) - set(OPERATIONS)
    if unknown:
        print(f"unknown operations: {', '.join(sorted(unknown))}; known: {', '.join(OPERATIONS)}")
        return 2
    costs: dict[str, float] = {}
    for name in names:
        costs[name] = per_request(name)
        messages = 1 if name.endswith("send") else 10
        print(f"{name:14} {costs[name]:12,.0f} instructions a request, {costs[name] / messages:10,.0f} a message",
              flush=True)
    for kind in COUNTS:
        rest, sqs = costs.get(f"rest-{kind}"), costs.get(f"sqs-{kind}")
        if rest and sqs:
            print(f"{kind}: SQS costs {sqs / rest:.2f} x REST (REST / SQS = {rest / sqs:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
