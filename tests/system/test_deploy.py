"""deploy/: the container's entry point, run directly (no container engine runs on
the test machine: see deploy/README.md), the systemd unit's readiness check, and
that the Dockerfile and compose file name files that exist."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, fresh_database

DEPLOY = Path(__file__).parents[2] / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
BIN = Path(sys.executable).parent


def environment(**settings: str) -> dict[str, str]:
    """This venv's wonderq first on PATH, the given WONDERQ_* settings and no others."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")}
    return env | {"PATH": f"{BIN}:{os.environ['PATH']}"} | settings


def ready(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the broker did not become ready"
        time.sleep(0.1)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(ENTRYPOINT), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        proc.kill()
    err = proc.communicate()[1]
    assert "Traceback" not in err, err
    return err


def test_no_arguments_run_the_broker_as_the_process_itself(tmp_path: Path) -> None:
    port = free_port()
    proc = start(environment(WONDERQ_PORT=str(port), WONDERQ_DB=str(tmp_path / "w.db")))
    try:
        ready(f"http://127.0.0.1:{port}", proc)
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:  # exec: the broker is PID 1 in a container
            assert b"wonderq\0broker" in f.read()
    finally:
        err = stop(proc)
    assert proc.returncode == -signal.SIGTERM and "INFO stopped" in err, err


def test_it_waits_for_postgresql_then_starts(postgres: str) -> None:
    port = free_port()
    proc = start(environment(WONDERQ_PORT=str(port), WONDERQ_DB=fresh_database(postgres)), "broker")
    try:
        ready(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)


def test_a_database_that_never_answers_is_one_line_and_exit_5() -> None:
    dead = free_port()
    env = environment(WONDERQ_DB=f"postgresql://u:secret@127.0.0.1:{dead}/db", WONDERQ_DB_WAIT="1")
    done = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 5, done
    assert done.stderr.startswith(f"wonderq-entrypoint: the database at 127.0.0.1:{dead} did not accept"
                                  " connections within 1 s"), done.stderr
    assert "secret" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_verbs_flags_and_other_commands() -> None:
    env = environment()
    run = [str(ENTRYPOINT)]
    version = subprocess.run([*run, "--version"], env=env, capture_output=True, text=True, check=True)
    assert version.stdout.startswith("wonderq ")
    queues = subprocess.run([*run, "queues"], env=env | {"WONDERQ_URL": f"http://127.0.0.1:{free_port()}"},
                            capture_output=True, text=True, check=False)
    assert queues.returncode == 3 and "broker_unreachable" in queues.stderr  # wonderq's own verb
    echo = subprocess.run([*run, "echo", "hi"], env=env, capture_output=True, text=True, check=True)
    assert echo.stdout == "hi\n"


def test_the_entry_point_knows_every_verb() -> None:
    """A verb left out of its list ran as a shell command: `ready` did (exec: ready: not found)."""
    import argparse

    from wonderq.cli import parser

    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    verbs = set(actions[0].choices)
    listed = re.search(r'VERBS=" ([^"]*) "', ENTRYPOINT.read_text())
    assert listed is not None and set(listed[1].split()) == verbs


def unit() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (DEPLOY / "wonderq.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_the_unit_restarts_on_failure_and_is_ready_through_readyz(tmp_path: Path) -> None:
    keys = unit()
    assert keys["Restart"] == ["on-failure"] and keys["ExecStart"] == ["/opt/wonderq/bin/wonderq broker"]
    (check,) = keys["ExecStartPost"]
    assert check == "/opt/wonderq/bin/wonderq ready --wait 30"
    port = free_port()
    env = environment(WONDERQ_PORT=str(port), WONDERQ_DB=str(tmp_path / "w.db"))
    ready = [str(BIN / "wonderq"), "ready", "--wait", "30"]
    refused = subprocess.run([*ready[:2], "--wait", "0.5"], env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 3 and "is not ready" in refused.stderr  # nothing listens yet
    proc = subprocess.Popen([sys.executable, "-m", "wonderq", "broker"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:  # as systemd runs it, with the service's environment, while the broker starts
        done = subprocess.run(ready, env=env, timeout=40, check=False)
        assert done.returncode == 0
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        stop(proc)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    text = (DEPLOY / "wonderq.service").read_text().replace("/opt/wonderq/bin/wonderq", str(BIN / "wonderq"))
    (tmp_path / "wonderq.service").write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "wonderq.service")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_dockerfile_and_compose_file_name_what_exists() -> None:
    root = DEPLOY.parent
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (root / path).exists(), path
    assert 'ENTRYPOINT ["wonderq-entrypoint"]' in dockerfile and "/readyz" in dockerfile
    compose = (DEPLOY / "compose.yaml").read_text()
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in compose  # the tested nginx.conf, unchanged
    for port in ("3213", "3214"):  # the two upstreams nginx.conf names
        assert f"server 127.0.0.1:{port} " in (DEPLOY / "nginx.conf").read_text()
        assert f'WONDERQ_PORT: "{port}"' in compose
    assert "dockerfile: deploy/Dockerfile" in compose and "context: .." in compose
