"""How the CLI names a database: never with its password, even in a URL nothing can parse
(the startup error's handler must not be the thing that crashes)."""

from __future__ import annotations

import pytest

from wonderq.cli.databases import redact, unsupported


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://wonderq:secret@127.0.0.1:5432/wonderq", "postgresql://wonderq:***@127.0.0.1:5432/wonderq"),
        ("postgresql://u:se%40cret@[::1/db", "postgresql://u:***@[::1/db"),  # urlsplit: Invalid IPv6 URL
        ("postgresql://u:x@[::1/db", "postgresql://u:***@[::1/db"),
        ("postgresql://u:pa/ss@word@h/db", "postgresql://u:***@h/db"),  # a password holding / and @
        ("postgresql://u:secret@h1:5432,h2:port/db", "postgresql://u:***@h1:5432,h2:port/db"),
        ("postgresql://u@h/db?password=secret&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://h/db?sslpassword=secret", "postgresql://h/db?sslpassword=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql"),
        ("sqlite:////srv/wonderq.db", "/srv/wonderq.db"),
        ("not a url at all: [::", "not a url at all: [::"),
    ],
)
def test_redact_hides_every_password_and_never_raises(url: str, said: str) -> None:
    assert redact(url) == said
    assert "secret" not in said and "pa/ss" not in said


def test_a_refused_scheme_is_quoted_without_its_password() -> None:
    url = "mysql://u:secret@db/wonderq"
    said = unsupported(ValueError(f"unsupported database URL {url!r}: use sqlite:///path"), url)
    assert said == "unsupported database URL 'mysql://u:***@db/wonderq': use sqlite:///path"
