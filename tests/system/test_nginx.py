"""deploy/nginx.conf in front of two brokers on one PostgreSQL database.

The example configuration is rendered with this test's ports and with every path under a
temporary directory, then carries producers, long-polling consumers and deletes. Every message
must be delivered once, both brokers must serve, and nginx must neither cut off a full-length
long poll nor keep one going after its client hung up.

Needs nginx (``apt-get install nginx``): with ``CI`` set its absence fails the test, otherwise
it skips it.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess, free_port, fresh_database

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
MESSAGES = 2000
BATCH = 10
PRODUCERS = 4
CONSUMERS = 16
STOP = "stop"  # passed from consumer to consumer: each one that receives it hands it back and exits
# uvicorn's access log (--access-log): '<time> broker[<pid>] INFO <ip>:<port> - "<method> <path> HTTP/1.1" <status>'
ACCESS = re.compile(r' INFO [\d.]+:(\d+) - "(\w+) (\S+) HTTP/([\d.]+)" (\d+)', re.MULTILINE)
# deploy/nginx.conf's log format, for requests that went to a single broker
NGINX_ACCESS = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \d+ upstream=(\S+) ')


def render(template: str, brokers: tuple[int, int], port: int, prefix: Path) -> str:
    """The example configuration with our broker and listen ports, and every file under prefix."""
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx would run its workers as www-data, who may not enter pytest's 0700 tmp dir;
    # as anyone else it runs them as that user and ignores the line with a warning.
    user = "user root;" if os.geteuid() == 0 else "# user: nginx runs as whoever starts it"
    edits: list[tuple[str, Callable[[re.Match[str]], str]]] = [
        (r"^user \S+;$", lambda m: user),
        (r"^pid \S+;$", lambda m: f"pid {prefix}/nginx.pid;"),
        (r"^error_log \S+", lambda m: f"error_log {prefix}/error.log"),
        (r"^(\s+)access_log \S+", lambda m: f"{m[1]}access_log {prefix}/access.log"),
        (r"^(\s+)listen 8080;", lambda m: f"{m[1]}listen 127.0.0.1:{port};"),
        (r"^(\s+)server 127\.0\.0\.1:3213 ", lambda m: f"{m[1]}server 127.0.0.1:{brokers[0]} "),
        (r"^(\s+)server 127\.0\.0\.1:3214 ", lambda m: f"{m[1]}server 127.0.0.1:{brokers[1]} "),
        (r"^http \{\n", lambda m: m[0] + temp),
    ]
    for pattern, replace in edits:
        template, n = re.subn(pattern, replace, template, flags=re.MULTILINE)
        assert n == 1, f"{TEMPLATE}: {pattern!r} matched {n} times; keep that line substitutable"
    return template


@pytest.fixture
def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is required in CI and is not installed (apt-get install nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


class Nginx:
    """nginx in the foreground on a rendered copy of deploy/nginx.conf; its files under prefix."""

    def __init__(self, binary: str, brokers: tuple[int, int], prefix: Path) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = prefix / "nginx.conf"
        conf.write_text(render(TEMPLATE.read_text(), brokers, self.port, prefix))
        self.cmd = [binary, "-c", str(conf), "-p", f"{prefix}/", "-e", str(prefix / "error.log")]
        self.cmd += ["-g", "daemon off;"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        with (self.prefix / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.log('nginx.out')}{self.log('error.log')}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {self.log('error.log')}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self, name: str) -> str:
        path = self.prefix / name
        return path.read_text() if path.exists() else ""

    def errors(self) -> list[str]:
        lines = self.log("error.log").splitlines()
        return [line for line in lines if re.search(r"\[(error|crit|alert|emerg)\]", line)]


@pytest.fixture
def database(postgres: str) -> str:
    return fresh_database(postgres)


@pytest.fixture
def auth(database: str) -> dict[str, str]:
    """An admin key made first, as deploy/README.md says: with none, a broker refuses what a
    proxy forwards (every request through nginx comes from loopback)."""
    made = subprocess.run([sys.executable, "-m", "wonderq", "keys", "create", "--db", database, "--scope", "admin"],
                          capture_output=True, text=True, check=True)
    return {"Authorization": f"Bearer {made.stdout.strip()}"}


@pytest.fixture
def two_brokers(broker_factory: type[BrokerProcess], database: str, auth: dict[str, str],
                tmp_path: Path) -> list[BrokerProcess]:
    """Two brokers on one fresh database with a key, each logging a line per request."""
    args = ("--log-level", "info", "--access-log", "--pool-size", "10")
    return [broker_factory(database, *args, log_dir=tmp_path).start() for _ in range(2)]


@pytest.fixture
def nginx(nginx_binary: str, two_brokers: list[BrokerProcess], tmp_path: Path) -> Iterator[Nginx]:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    proxy = Nginx(nginx_binary, (two_brokers[0].port, two_brokers[1].port), prefix).start()
    yield proxy
    proxy.stop()


def test_two_brokers_behind_nginx(nginx: Nginx, two_brokers: list[BrokerProcess], auth: dict[str, str]) -> None:
    with httpx.Client(base_url=nginx.url, timeout=30) as client:
        assert client.get("/queues").status_code == 401
        client.headers.update(auth)
        for name in ("jobs", "idle", "hangup"):
            r = client.post("/queues", json={"name": name})
            assert r.status_code == 200, r.text

        with ThreadPoolExecutor(1 + PRODUCERS + CONSUMERS) as pool:
            # The longest long poll there is, on an empty queue, runs beside everything else.
            idle = pool.submit(long_poll, nginx.url, auth, "idle", 20)
            check_hung_up_poll_claims_nothing(client)
            received = run_producers_and_consumers(client, pool)
            status, body, elapsed = idle.result(timeout=30)
            assert (status, body) == (200, []), "nginx cut off a 20 s long poll"
            assert 19.5 <= elapsed < 25, elapsed

        # Every message once, none twice (visibility_timeout=120 rules out honest redelivery).
        counts = Counter(received)
        assert sorted(counts) == [f"m{i:05d}" for i in range(MESSAGES)]
        assert [body for body, n in counts.items() if n > 1] == []

        # The stop message went through every consumer once, by visibility changes through nginx.
        [last] = client.get("/messages/consume", params={"queue_name": "jobs", "wait_time": 0}).json()
        assert (last["body"], last["receive_count"]) == (STOP, CONSUMERS + 1)
        r = client.delete(f"/messages/{last['id']}", params={"reservation_token": last["reservation_token"]})
        assert r.status_code == 200, r.text
        jobs = next(q for q in client.get("/queues").json() if q["name"] == "jobs")
        assert jobs["queue_size"] == 0

        check_both_brokers_served(nginx, two_brokers)
        assert nginx.errors() == []
        check_failover(nginx, client, two_brokers)
    for broker in two_brokers:
        assert "Traceback" not in broker.log.read_text()


def run_producers_and_consumers(client: httpx.Client, pool: ThreadPoolExecutor) -> list[str]:
    """Consumers first (so they park in long polls), then producers; once every message has been
    received, the stop message sends the consumers home. Returns the bodies received."""
    url, auth = str(client.base_url), {"Authorization": client.headers["authorization"]}
    received: list[str] = []  # list.append is atomic
    failed = threading.Event()  # consumers give up if the test fails
    consumers = [pool.submit(consume, url, auth, seed, received, failed) for seed in range(CONSUMERS)]
    try:
        for future in [pool.submit(produce, url, auth, n) for n in range(PRODUCERS)]:
            future.result()
        wait_until(lambda: len(received) >= MESSAGES, consumers, timeout=60)
        r = client.post("/messages", json={"queue_name": "jobs", "body": STOP})
        assert r.status_code == 200, r.text
        for future in consumers:
            future.result(timeout=30)
    finally:
        failed.set()
    return received


def long_poll(url: str, auth: dict[str, str], queue: str, wait_time: int) -> tuple[int, Any, float]:
    start = time.monotonic()
    params = {"queue_name": queue, "wait_time": wait_time}
    r = httpx.get(url + "/messages/consume", params=params, headers=auth, timeout=wait_time + 10)
    return r.status_code, r.json(), time.monotonic() - start


def check_hung_up_poll_claims_nothing(client: httpx.Client) -> None:
    """A consumer hangs up mid-poll: nginx closes its broker connection too, so the broker's
    parked consume returns without claiming, and the next message goes to the next consumer."""
    with pytest.raises(httpx.ReadTimeout):
        client.get("/messages/consume", params={"queue_name": "hangup", "wait_time": 20}, timeout=1)
    time.sleep(0.5)
    r = client.post("/messages", json={"queue_name": "hangup", "body": "for the next consumer"})
    assert r.status_code == 200, r.text
    got = client.get("/messages/consume", params={"queue_name": "hangup", "wait_time": 0}).json()
    assert [(m["body"], m["receive_count"]) for m in got] == [("for the next consumer", 1)]


def produce(url: str, auth: dict[str, str], n: int) -> None:
    """Producer n sends its share of the messages in batches of BATCH."""
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        for batch in range(n, MESSAGES // BATCH, PRODUCERS):
            bodies = [{"body": f"m{i:05d}"} for i in range(batch * BATCH, (batch + 1) * BATCH)]
            r = client.post("/messages", json={"queue_name": "jobs", "messages": bodies})
            assert r.status_code == 200, r.text
            assert len(r.json()["ids"]) == BATCH


def consume(url: str, auth: dict[str, str], seed: int, received: list[str], failed: threading.Event) -> None:
    """Long-poll, record and delete with the reservation token until the stop message arrives."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers=auth, timeout=40) as client:
        while not failed.is_set():
            wait_time = rng.randint(5, 20)
            params = {"queue_name": "jobs", "size": 10, "wait_time": wait_time, "visibility_timeout": 120}
            r = client.get("/messages/consume", params=params)
            assert r.status_code == 200, r.text
            for m in r.json():
                token = m["reservation_token"]
                if m["body"] == STOP:  # hand it back at once for the next consumer, and leave
                    change = {"reservation_token": token, "visibility_timeout": 0}
                    r = client.post(f"/messages/{m['id']}/visibility", json=change)
                    assert r.status_code == 200, r.text
                    return
                received.append(m["body"])
                r = client.delete(f"/messages/{m['id']}", params={"reservation_token": token})
                assert r.status_code == 200, r.text


def wait_until(done: Callable[[], bool], workers: list[Future[None]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for future in workers:
            if future.done():
                future.result()  # a worker that failed: raise its error here
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def requests_served(broker: BrokerProcess) -> list[tuple[int, str, str, str, int]]:
    """(nginx's source port, method, path, HTTP version, status) of each request nginx passed on."""
    found = [(int(p), m, path, v, int(s)) for p, m, path, v, s in ACCESS.findall(broker.log.read_text())]
    return [r for r in found if r[2] != "/readyz"]  # those are BrokerProcess.start's own


def check_both_brokers_served(nginx: Nginx, brokers: list[BrokerProcess]) -> None:
    """Both brokers served a fair share, over HTTP/1.1 and kept-alive connections, and each
    broker's own access log agrees with nginx's about which sends and deletes it served."""
    nginx_says = Counter(
        (upstream, method)
        for method, path, _, upstream in NGINX_ACCESS.findall(nginx.log("access.log"))
        if path.startswith("/messages") and method in ("POST", "DELETE")
    )
    total = sum(len(requests_served(b)) for b in brokers)
    for broker in brokers:
        served = requests_served(broker)
        assert len(served) > 0.2 * total, f"broker {broker.port} served {len(served)} of {total}"
        assert {version for _, _, _, version, _ in served} == {"1.1"}
        assert [r for r in served if r[4] >= 500] == []
        connections = len({port for port, *_ in served})
        assert connections < len(served) / 5, f"{connections} connections for {len(served)} requests"
        for method in ("POST", "DELETE"):
            own = sum(1 for _, m, path, _, _ in served if m == method and path.startswith("/messages"))
            assert own == nginx_says[(f"127.0.0.1:{broker.port}", method)], method


def check_failover(nginx: Nginx, client: httpx.Client, brokers: list[BrokerProcess]) -> None:
    """With one broker dead, reads and sends still succeed: nginx retries a refused connection on
    the other broker (a request that never reached a broker is safe to send anywhere). With none
    left, nginx's own 502 is JSON in the broker's error envelope."""
    dead, alive = (f"127.0.0.1:{b.port}" for b in brokers)
    brokers[0].stop(signal.SIGKILL)
    time.sleep(0.2)  # nginx notices its kept-alive connections to the dead broker closing
    for i in range(20):
        r = client.get("/queues/find", params={"name": "jobs"})
        assert r.status_code == 200, r.text
        r = client.post("/messages", json={"queue_name": "jobs", "body": f"after failover {i}"})
        assert r.status_code == 200, r.text
    assert f"upstream={dead}, {alive} upstream_status=502, 200 " in nginx.log("access.log")
    assert nginx.errors() != []
    assert [e for e in nginx.errors() if "connect() failed (111: Connection refused)" not in e] == []

    brokers[1].stop(signal.SIGKILL)
    for r in (client.get("/queues"), client.delete("/queues/jobs")):
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "unavailable"
