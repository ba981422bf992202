"""The README, followed literally from top to bottom, works: its own examples run in
order against a fresh ``wonderq up`` and print what it says they print.

What runs: every ``$ command`` line of the README's ``sh`` blocks (a trailing ``\\``
continues it), and the plain ``curl`` lines of blocks without ``$`` (the first
screen's; a streaming ``curl -sN`` is left running a moment, then hung up, as a
reader would with Ctrl-C), in one shell's environment: what a command exports
(``export WONDERQ_API_KEY=…``) or unsets, the next ones see. After a command that
makes or revokes an API key it waits as long as a broker takes to see that (about a
second), as a reader typing the next command does. The servers the README starts
(``make run``, ``wonderq broker …`` without a ``$``) are this test's ``wonderq up``,
on free ports: the README's ports are mapped onto them, and
``$ . .venv-run/bin/activate`` is this interpreter's ``bin`` first on ``PATH``. Once all
have run, the broker must take a request without a key, as the examples the test
cannot run (boto3's, the dashboard) expect.

What is checked: the lines after a ``$ command`` (stdout and stderr, as a terminal
shows them), compared without whitespace (tables, wrapped JSON). ``…`` stands for
anything; times, ``message_id``s, tokens and API key ids match any of their kind, and a
token or key id a later command quotes is replaced by the one this run received.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from wonderq.broker.keys import RELOAD_SECONDS

README = Path(__file__).parents[2] / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOKEN = r"[0-9a-f]{16}-\d+"
KEY_ID = r"(?<![0-9A-Za-z])[0-9a-f]{16}(?![0-9A-Za-z-])"  # wq_<id>_…, "key <id>", a table's column
VARYING = re.compile(rf"(…)|({TOKEN}|{KEY_ID})|([0-9a-f]{{8}}-[0-9a-f-]{{27}})|(\d{{4}}-\d\d-\d\d[T ][\d:.]+Z)")
KEYS_CHANGE = re.compile(r"\bwonderq keys (create|revoke)\b")
KEYS_SEEN = RELOAD_SECONDS + 0.5  # a running broker sees a key change within this
SHELLS_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})  # what bash sets itself, not the README
PORTS = {"3213": "broker", "3210": "dev", "3000": "user", "3313": "spare"}


@dataclass
class Example:
    command: str
    output: str | None  # None: not checked (the first screen's)


def examples(text: str) -> list[Example]:
    found = []
    for block in BLOCK.findall(text):
        lines = block.splitlines()
        if not any(line.startswith("$ ") for line in lines):
            found += [Example(line, None) for line in lines if line.startswith("curl ")]
            continue
        for line in lines:
            if line.startswith("$ "):
                found.append(Example(line[2:], ""))
            elif found[-1].command.endswith("\\") and found[-1].output == "":
                found[-1].command = found[-1].command[:-1] + line.strip()
            else:
                found[-1].output = f"{found[-1].output}{line}\n"
    return found


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pattern(expected: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """A regex for the expected output (whitespace removed), and {group: the README's token
    or key id}. The varying parts are found before whitespace is removed, where a key id
    still stands apart from the words around it."""
    parts, tokens, at = [], {}, 0
    for m in VARYING.finditer(expected):
        parts.append(re.escape(squeezed(expected[at:m.start()])))
        if m.group(1):
            parts.append(".*?")
        elif m.group(2):
            name = f"t{len(tokens)}"
            tokens[name] = m.group(2)
            parts.append(f"(?P<{name}>{TOKEN})" if "-" in m.group(2) else f"(?P<{name}>[0-9a-f]{{16}})")
        else:
            parts.append(r"[0-9A-Za-z:.\-]+")
        at = m.end()
    parts.append(re.escape(squeezed(expected[at:])))
    return re.compile("".join(parts), re.DOTALL), tokens


@pytest.fixture
def up(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh ``wonderq up`` on free ports; the README's ports mapped onto them."""
    ports = {name: str(free_port()) for name in PORTS.values()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")} | {
        "WONDERQ_DEV_PORT": ports["dev"], "WONDERQ_USER_PORT": ports["user"],
        "WONDERQ_DB": str(tmp_path / "wonderq.db"), "WONDERQ_URL": f"http://127.0.0.1:{ports['broker']}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with (tmp_path / "up.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wonderq", "up", "--port", ports["broker"]],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        wait_until_ready(ports)
        yield env | {f"port_{readme}": ports[name] for readme, name in PORTS.items()}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(30) == 0, (tmp_path / "up.log").read_text()
        finally:
            proc.kill()
    assert "Traceback" not in (tmp_path / "up.log").read_text()


def wait_until_ready(ports: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    for name in ("broker", "dev", "user"):
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{ports[name]}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"the {name} did not start"
                time.sleep(0.1)


def localize(command: str, env: dict[str, str], tokens: dict[str, str]) -> str:
    for readme in PORTS:
        command = re.sub(rf"\b{readme}\b", env[f"port_{readme}"], command)
    for theirs, ours in tokens.items():
        command = command.replace(theirs, ours)
    return command


def run(command: str, env: dict[str, str], cwd: Path) -> str:
    """What the command prints; ``env`` becomes the environment it leaves, as a shell's."""
    if command.startswith("curl -sN"):  # a stream: watch it a moment, then hang up
        proc = subprocess.Popen(["bash", "-c", command], stdout=subprocess.DEVNULL, env=env, cwd=cwd)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        return ""
    after = cwd / "readme.env"
    done = subprocess.run(["bash", "-c", f"{command}\nenv -0 > {after}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, timeout=60, check=False)
    left = dict(item.split("=", 1) for item in after.read_text().split("\0") if "=" in item)
    for name in env.keys() - left.keys() - SHELLS_OWN:
        del env[name]  # unset
    env |= {name: value for name, value in left.items() if name not in SHELLS_OWN}
    if KEYS_CHANGE.search(command):
        time.sleep(KEYS_SEEN)
    return done.stdout


def test_the_readme_examples_in_order(up: dict[str, str], tmp_path: Path) -> None:
    found = examples(README.read_text())
    assert len(found) > 25, "the README's examples were not found"
    tokens: dict[str, str] = {}
    for example in found:
        if example.command.startswith(". "):  # activating the venv: PATH already has it
            continue
        got = run(localize(example.command, up, tokens), up, tmp_path)
        if example.output is None:
            continue
        regex, theirs = pattern(example.output)
        match = regex.fullmatch(squeezed(got))
        assert match, f"$ {example.command}\nprinted:\n{got}\nthe README says:\n{example.output}"
        tokens |= {readme: match.group(name) for name, readme in theirs.items()}
    # What it does not run needs no key either (boto3 and the others, "any credentials"; the
    # dashboard): the README leaves no key behind, in the shell or the database.
    assert "WONDERQ_API_KEY" not in up
    r = httpx.get(f"http://127.0.0.1:{up['port_3213']}/queues", timeout=10)
    assert r.status_code == 200, r.text


def test_the_readme_links_only_what_a_clone_has() -> None:
    text = README.read_text()
    assert "../shared" not in text
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (README.parent / target).exists(), target
