"""``wonderq dev``, ``wonderq user`` and ``wonderq up`` as subprocesses on free ports.

The three services run as real processes, as a user starts them."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_client_verbs import wait_for
from tests.conftest import BrokerProcess, free_port
from wonderq import Client


def children(pid: int) -> dict[str, int]:
    """``{verb: pid}`` of the ``python -m wonderq VERB`` children of ``pid``."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    found = {}
    for child in map(int, out.split()):
        with open(f"/proc/{child}/cmdline", "rb") as f:
            found[f.read().split(b"\0")[3].decode()] = child
    return found


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.TransportError:
        return False


def installed(verb: str) -> bool:
    return importlib.util.find_spec({"dev": "wonderq.apps.devtool", "user": "wonderq.apps.userapp"}[verb]) is not None


Up = tuple[subprocess.Popen[str], dict[str, int], Path]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    """``wonderq up`` on free ports (the broker's by flag, the others' by environment)."""
    ports = {"broker": free_port(), "dev": free_port(), "user": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")} | {
        "WONDERQ_DEV_PORT": str(ports["dev"]), "WONDERQ_USER_PORT": str(ports["user"]),
        "WONDERQ_DB": str(tmp_path / "up.db"), "WONDERQ_LOG_LEVEL": "warning",
    }
    with (tmp_path / "up.out").open("w") as out, (tmp_path / "up.err").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "wonderq", "up", "--port", str(ports["broker"])],
                                stdout=out, stderr=err, text=True, env=env)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{ports['broker']}/readyz"))
        yield proc, ports, tmp_path
    finally:
        for pid in children(proc.pid).values() if proc.poll() is None else ():
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_up_runs_all_three_and_stops_on_sigint(up: Up) -> None:
    proc, ports, folder = up
    running = [verb for verb in ("broker", "dev", "user") if verb == "broker" or installed(verb)]
    for verb in running:
        wait_for(lambda verb=verb: answers(f"http://127.0.0.1:{ports[verb]}/"))
    kids = children(proc.pid)
    assert sorted(kids) == sorted(running)
    for verb, pid in kids.items():  # one set of settings: the broker's URL and every port
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        assert environ[b"WONDERQ_URL"] == f"http://127.0.0.1:{ports['broker']}".encode(), verb
        assert environ[b"WONDERQ_DEV_PORT"] == str(ports["dev"]).encode()
    with Client(f"http://127.0.0.1:{ports['broker']}") as c:
        c.create_queue("up")
        assert [q.name for q in c.list_queues()] == ["up"]
    out = (folder / "up.out").read_text()
    for verb, what in (("broker", "broker  "), ("dev", "dev tool"), ("user", "user app")):
        assert (f"{what}  http://127.0.0.1:{ports[verb]}" in out) == (verb in running), out

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, (folder / "up.err").read_text()
    for pid in kids.values():  # stopped and reaped
        assert not os.path.exists(f"/proc/{pid}")
    assert not any(answers(f"http://127.0.0.1:{ports[verb]}/") for verb in running)


def test_up_stops_the_others_when_one_dies(up: Up) -> None:
    proc, _, folder = up
    kids = children(proc.pid)
    os.kill(kids["broker"], signal.SIGKILL)
    assert proc.wait(30) == 1
    assert "wonderq: the broker exited (status -9); stopping the others" in (folder / "up.err").read_text()
    for pid in kids.values():
        assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("verb", ["dev", "user"])
def test_dev_and_user_serve_on_their_port(verb: str, module_broker: BrokerProcess) -> None:
    port = free_port()
    flags = ["--port", str(port)] if verb == "dev" else []
    env = os.environ | {"WONDERQ_URL": module_broker.url, "WONDERQ_USER_PORT": str(port),
                        "WONDERQ_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "wonderq", verb, *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not installed(verb):
            assert proc.wait(30) == 1
            assert "is not installed" in proc.communicate()[1]
            return
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/") or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        err = proc.communicate()[1]
    assert "Traceback" not in err and "interrupted" not in err, err
