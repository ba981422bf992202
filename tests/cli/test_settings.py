"""Settings as the CLI reads them: every bad value names the flag or the variable it came
from (the flag as the verb spells it), and ``--help`` lists each verb's flags with the
variables :meth:`Settings.load` really reads for them."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from tests.cli.test_client_verbs import wq
from wonderq.cli import parser
from wonderq.settings import Settings


def variable(field: str) -> str:
    return f"WONDERQ_{field.upper()}"

BAD = [  # every setting Settings checks, with a value it refuses
    ("durability", "weird", "must be one of full, normal, not 'weird'"),
    ("log_level", "loud", "must be one of critical, error, warning, info, debug, not 'loud'"),
    ("port", "0", "must be 1-65535, not 0"),
    ("dev_port", "70000", "must be 1-65535, not 70000"),
    ("user_port", "-1", "must be 1-65535, not -1"),
    ("header_timeout", "0", "must be a positive number of seconds, not 0.0"),
    ("body_timeout", "-1", "must be a positive number of seconds, not -1.0"),
    ("keep_alive_timeout", "0", "must be a positive number of seconds, not 0"),
    ("retention_interval", "0", "must be a positive number of seconds, not 0.0"),
    ("max_header_bytes", "100", "must be at least 1024, not 100"),
    ("max_connections", "0", "must be at least 1, not 0"),
    ("max_pending_bytes", "0", "must be at least 1, not 0"),
    ("max_queues", "0", "must be at least 1, not 0"),
    ("max_in_flight", "0", "must be at least 1, not 0"),
    ("pool_size", "0", "must be at least 1, not 0"),
    ("cluster", "-3", "must be at least 0, not -3"),
    ("account_id", "123", "must be 12 digits, not '123'"),
    ("account_id", "\u00b2" * 12, "must be 12 digits, not '" + "\u00b2" * 12 + "'"),
    ("api_key", "wq_secret\r\nX-Evil: 1", "must be printable ASCII with no spaces, as `wonderq keys create` prints it"),
    ("api_key", "wq_s\u00fcecret", "must be printable ASCII with no spaces, as `wonderq keys create` prints it"),
    ("url", "127.0.0.1:3213", "must start with http:// or https://, not '127.0.0.1:3213'"),
    ("url", "http://[::1", "is not a valid URL: Invalid IPv6 URL"),
    ("db", "postgresql://u:se%40cret@[::1/db", "is not a valid URL: Invalid IPv6 URL"),
]


@pytest.mark.parametrize(("field", "value", "problem"), BAD)
def test_a_bad_variable_names_itself(field: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.load({}, env={variable(field): value})
    assert str(refused.value) == f"{variable(field)} {problem}"
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize(("field", "value", "problem"), BAD)
def test_a_bad_flag_names_itself_as_the_verb_spells_it(field: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.load({field: value}, env={variable(field): "ignored"}, flag_names={field: "--the-flag"})
    assert str(refused.value) == f"--the-flag {problem}"


def test_the_cli_names_the_variable_or_the_flag_of_its_verb() -> None:
    r = wq(None, "broker", WONDERQ_DURABILITY="weird")
    assert (r.returncode, r.stderr) == (2, "wonderq: WONDERQ_DURABILITY must be one of full, normal, not 'weird'\n")
    r = wq(None, "dev", "--port", "0")  # its --port is WONDERQ_DEV_PORT
    assert (r.returncode, r.stderr) == (2, "wonderq: --port must be 1-65535, not 0\n")
    r = wq(None, "up", "--dev-port", "0")
    assert (r.returncode, r.stderr) == (2, "wonderq: --dev-port must be 1-65535, not 0\n")
    r = wq(None, "queues", "--broker-url", "http://[::1")
    assert (r.returncode, r.stderr) == (2, "wonderq: --broker-url is not a valid URL: Invalid IPv6 URL\n")


def test_cluster_0_is_what_the_help_says() -> None:
    """0 is the broker in this one process (the default, and what `up` hands its children); a
    negative count is refused, naming the flag."""
    text = " ".join(wq(None, "broker", "--help").stdout.split())
    assert "N defaults to the CPU count; 0, as without the flag: the broker in this one process" in text
    assert Settings.load({"cluster": 0}, env={}).cluster == 0
    r = wq(None, "broker", "--cluster", "-3")
    assert (r.returncode, r.stderr) == (2, "wonderq: --cluster must be at least 0, not -3\n")


def verbs() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("verb", sorted(verbs()))
def test_help_lists_each_flag_with_the_variable_it_reads(verb: str) -> None:
    text = " ".join(wq(None, verb, "--help").stdout.split())
    assert "WONDERQ_SOME_FLAG" not in text
    names = {f.name for f in fields(Settings)}
    for action in verbs()[verb]._actions:
        if action.dest in names and action.option_strings:  # a flag Settings.load reads
            assert f"{action.option_strings[0]} {variable(action.dest)}" in text, (verb, action.dest)


@pytest.mark.parametrize(
    ("verb", "pair"),
    [(("dev",), "--port WONDERQ_DEV_PORT"), (("user",), "--port WONDERQ_USER_PORT"),
     (("up",), "--dev-port WONDERQ_DEV_PORT"), (("up",), "--port WONDERQ_PORT"),
     (("queues",), "--broker-url WONDERQ_URL"), (("broker",), "--db WONDERQ_DB"),
     (("keys", "create"), "--db WONDERQ_DB")],
)
def test_help_names_the_variables_that_differ_from_the_flag(verb: tuple[str, ...], pair: str) -> None:
    text = " ".join(wq(None, *verb, "--help").stdout.split())
    assert pair in text, text


def test_up_takes_every_flag_the_broker_takes() -> None:
    """`wonderq up` hands its settings to the broker it starts, so each of the broker's flags is
    one of its own (--max-queues and --max-in-flight were not)."""
    def flags(verb: str) -> set[str]:
        return {a.dest for a in verbs()[verb]._actions if a.option_strings and a.dest not in ("help", "under_up")}

    assert flags("broker") - flags("up") == set()
