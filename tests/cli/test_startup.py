"""What a user sees when a server cannot start, and the CLI's version, help and
exit codes. A server that cannot start says why in one line naming the address,
database or variable, adds a hint, and exits 5; never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_client_verbs import wq
from tests.conftest import free_port
from wonderq import __version__


def wonderq(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m wonderq *args`` in a subprocess (a server must really try to start)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")}
    return subprocess.run([sys.executable, "-m", "wonderq", *args], capture_output=True, text=True,
                          env=clean | env, timeout=60, check=False)


def assert_cannot_start(r: subprocess.CompletedProcess[str], *named: str) -> None:
    lines = r.stderr.splitlines()
    assert r.returncode == 5, r
    assert "Traceback" not in r.stderr and len(lines) == 2, r.stderr
    assert lines[0].startswith("wonderq: cannot start the "), lines
    assert lines[1].startswith("  hint: "), lines
    for text in named:
        assert text in lines[0], (text, lines)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
def test_a_busy_port(busy_port: int, tmp_path: Path, cluster: list[str]) -> None:
    r = wonderq("broker", "--port", str(busy_port), "--db", str(tmp_path / "w.db"), *cluster)
    assert_cannot_start(r, f"cannot listen on 127.0.0.1:{busy_port}: Address already in use")
    assert "--port or WONDERQ_PORT" in r.stderr


def test_a_busy_port_of_the_dev_tool(busy_port: int) -> None:
    r = wonderq("dev", WONDERQ_DEV_PORT=str(busy_port))
    assert_cannot_start(r, f"cannot start the dev tool: cannot listen on 127.0.0.1:{busy_port}")
    assert "choose another port (--port or WONDERQ_DEV_PORT)" in r.stderr


def test_up_names_its_own_flag_for_a_busy_port(busy_port: int, tmp_path: Path) -> None:
    r = wonderq("up", "--port", str(free_port()), "--dev-port", str(busy_port), "--user-port", str(free_port()),
                "--db", str(tmp_path / "w.db"))
    assert r.returncode == 5 and "Traceback" not in r.stderr, r
    said = [line for line in r.stderr.splitlines() if "cannot start" in line or "hint" in line]
    assert said == [f"wonderq: cannot start the dev tool: cannot listen on 127.0.0.1:{busy_port}: Address already"
                    " in use", "  hint: another process listens there (`wonderq up` already?); choose another port"
                    " (--dev-port or WONDERQ_DEV_PORT)"], r.stderr


def test_up_refuses_two_services_on_one_port_before_any_starts() -> None:
    port = str(free_port())
    r = wonderq("up", "--port", port, "--dev-port", port)
    assert (r.returncode, r.stdout) == (2, ""), r  # nothing started: no address printed
    assert r.stderr == (f"wonderq: the broker and the dev tool cannot both listen on port {port}: give each its"
                        " own (--port or WONDERQ_PORT; --dev-port or WONDERQ_DEV_PORT)\n")
    r = wonderq("up", "--port", port, WONDERQ_USER_PORT=port)  # a variable, the same
    assert (r.returncode, r.stdout) == (2, "") and "the broker and the user app cannot both" in r.stderr, r


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
def test_a_database_in_a_missing_directory(cluster: list[str]) -> None:
    r = wonderq("broker", "--port", str(free_port()), "--db", "/no/such/dir/w.db", *cluster)
    assert_cannot_start(r, "cannot open the database /no/such/dir/w.db: unable to open database file")
    assert "--db or WONDERQ_DB" in r.stderr


def test_an_unreachable_postgresql_names_the_url_not_the_password() -> None:
    url = f"postgresql://wonderq:secret@127.0.0.1:{free_port()}/wonderq"
    r = wonderq("broker", "--port", str(free_port()), WONDERQ_DB=url)
    assert_cannot_start(r, "cannot open the database postgresql://wonderq:***@127.0.0.1:")
    assert "secret" not in r.stderr


def test_up_passes_on_that_it_could_not_start(busy_port: int, tmp_path: Path) -> None:
    r = wonderq("up", "--port", str(busy_port), "--db", str(tmp_path / "w.db"),
                WONDERQ_DEV_PORT=str(free_port()), WONDERQ_USER_PORT=str(free_port()))
    assert r.returncode == 5 and "Traceback" not in r.stderr, r
    assert f"cannot listen on 127.0.0.1:{busy_port}" in r.stderr
    assert r.stdout == "", r.stdout  # no service's address printed, as if it had started


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"WONDERQ_PORT": "abc"}, "wonderq: WONDERQ_PORT must be an integer, not 'abc'\n"),
        ({"WONDERQ_HEADER_TIMEOUT": "soon"}, "wonderq: WONDERQ_HEADER_TIMEOUT must be a number, not 'soon'\n"),
        ({"WONDERQ_ACCESS_LOG": "maybe"}, "wonderq: WONDERQ_ACCESS_LOG must be true or false, not 'maybe'\n"),
    ],
)
def test_a_bad_variable_is_named_and_is_usage(env: dict[str, str], said: str) -> None:
    r = wq(None, "queues", **env)
    assert (r.returncode, r.stderr) == (2, said)


def test_a_broker_url_without_scheme_is_usage_not_an_outage() -> None:
    r = wq(None, "queues", "--broker-url", "127.0.0.1:3313")
    assert r.returncode == 2 and "must start with http:// or https://, not '127.0.0.1:3313'" in r.stderr, r


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
@pytest.mark.parametrize(
    ("db", "said"),
    [
        ("postgresql://u:se%40cret@[::1/db", "wonderq: --db is not a valid URL: Invalid IPv6 URL\n"),
        ("postgresql://u:secret@127.0.0.1:port/db",  # one only the backend can judge
         "wonderq: --db or WONDERQ_DB is not a valid URL: invalid literal for int() with base 10: 'port'\n"),
    ],
)
def test_a_malformed_database_url_is_one_line_of_usage(db: str, said: str, cluster: list[str]) -> None:
    r = wonderq("broker", "--port", str(free_port()), "--db", db, *cluster)
    assert (r.returncode, r.stderr) == (2, said), r


def test_a_malformed_url_in_a_variable_names_the_variable() -> None:
    r = wonderq("broker", "--port", str(free_port()), WONDERQ_DB="postgresql://u:x@[::1/db")
    assert (r.returncode, r.stderr) == (2, "wonderq: WONDERQ_DB is not a valid URL: Invalid IPv6 URL\n"), r


def test_an_unsupported_database_url_is_usage() -> None:
    r = wonderq("broker", "--port", str(free_port()), "--db", "mysql://db/wonderq")
    assert r.returncode == 2 and "unsupported database URL 'mysql://db/wonderq'" in r.stderr, r
    assert "Traceback" not in r.stderr


def test_version() -> None:
    r = wq(None, "--version")
    assert (r.returncode, r.stdout) == (0, f"wonderq {__version__}\n")


@pytest.mark.parametrize("verb", ["broker", "up", "dev", "queues", "receive", "migrate"])
def test_help_names_the_variables_and_one_exit_code_table(verb: str) -> None:
    text = " ".join(wq(None, verb, "--help").stdout.split())
    assert "WONDERQ_SOME_FLAG" not in text  # a rule its own example broke (WONDERQ_URL for --broker-url)
    assert (verb == "migrate") == ("environment:" not in text)  # migrate's flags have no variables
    for said in ("0 ok", "1 the broker said no", "2 bad usage", "3 broker unreachable",
                 "4 receive found no message", "5 a server could not start", "130 interrupted"):
        assert said in text, (verb, said)


def test_broker_help_names_its_variables() -> None:
    text = " ".join(wq(None, "broker", "--help").stdout.split())
    for variable in ("WONDERQ_PORT", "WONDERQ_HOST", "WONDERQ_DB", "WONDERQ_CLUSTER", "WONDERQ_DURABILITY",
                     "WONDERQ_LOG_LEVEL", "WONDERQ_ACCESS_LOG", "WONDERQ_POOL_SIZE", "WONDERQ_ALLOWED_HOSTS"):
        assert variable in text, variable


@pytest.mark.parametrize(
    "args", [("receive", "q", "--size", "100"), ("receive", "q", "--wait", "21"),
             ("receive", "q", "--visibility-timeout", "-1"), ("create", "q", "--delay", "901")],
)
def test_out_of_range_flags_are_refused_by_the_parser(args: tuple[str, ...]) -> None:
    r = wq("http://127.0.0.1:9", *args)  # no broker there: the parser must refuse first
    assert r.returncode == 2 and "must be" in r.stderr and "usage: wonderq" in r.stderr, r


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
def test_an_exposed_bind_without_keys_refuses_to_start(tmp_path: Path, cluster: list[str]) -> None:
    r = wonderq("broker", "--host", "0.0.0.0", "--port", str(free_port()), "--db", str(tmp_path / "w.db"), *cluster)
    assert_cannot_start(r, "it would serve 0.0.0.0 with no API key")
    assert "wonderq keys create" in r.stderr and "--insecure-no-auth" in r.stderr


@pytest.mark.parametrize("verb", [["user"], ["up", "--dev-port", str(free_port()), "--user-port", str(free_port())]])
def test_the_user_app_on_an_exposed_bind_refuses_to_start(tmp_path: Path, verb: list[str]) -> None:
    """It has no login and acts with its own key for whoever reaches it. `up` says so before it
    prints an address or starts anything."""
    r = wonderq(*verb, "--host", "0.0.0.0", "--port", str(free_port()), WONDERQ_DB=str(tmp_path / "w.db"))
    assert_cannot_start(r, "user app", "it would serve 0.0.0.0 with no login")
    assert "--insecure-no-auth" in r.stderr and r.stdout == ""


def test_a_database_path_that_is_a_directory_or_no_database_gets_its_own_hint(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not sqlite")
    for db, hint in ((str(tmp_path), "that is a directory"), (str(tmp_path / "junk.db"), "not a SQLite database")):
        r = wonderq("broker", "--port", str(free_port()), "--db", db)
        assert_cannot_start(r, f"cannot open the database {db}")
        assert hint in r.stderr.splitlines()[1], r.stderr


def test_an_exposed_bind_serves_with_a_key_or_when_told_insecure(tmp_path: Path) -> None:
    from tests.conftest import BrokerProcess

    open_broker = BrokerProcess(tmp_path / "open.db", "--host", "0.0.0.0", "--insecure-no-auth").start()
    try:
        assert httpx.get(open_broker.url + "/queues").status_code == 200
    finally:
        open_broker.stop()
    assert "WITHOUT AUTHENTICATION (--insecure-no-auth)" in open_broker.log.read_text()
    assert wq(None, "keys", "create", "--db", str(tmp_path / "keyed.db"), "--scope", "read").returncode == 0
    keyed = BrokerProcess(tmp_path / "keyed.db", "--host", "0.0.0.0").start()
    try:
        assert httpx.get(keyed.url + "/queues").status_code == 401
    finally:
        keyed.stop()


def test_a_loose_credentials_file_is_named_with_its_own_hint(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("AKIDEXAMPLE wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY admin\n")
    creds.chmod(0o644)
    r = wonderq("broker", "--port", str(free_port()), "--db", str(tmp_path / "w.db"), "--sqs-credentials", str(creds))
    assert_cannot_start(r, str(creds), "chmod 600")
    assert "--sqs-credentials" in r.stderr and "database" not in r.stderr
