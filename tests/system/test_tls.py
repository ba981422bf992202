"""TLS on every service, with a self-signed certificate for 127.0.0.1 and localhost made here:
real processes serve HTTPS to a client that trusts the certificate, refuse plain HTTP on the same
port, and are refused by a client that does not trust it; ``wonderq up`` has its dev tool and user
app reach the broker over https; a certificate without its key (or a bad one) stops startup in
one line."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.cli.test_startup import assert_cannot_start, wonderq
from tests.conftest import free_port, terminate


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path

    def trusted(self) -> ssl.SSLContext:
        """A client's verification that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cafile=self.cert)


def self_signed(folder: Path, name: str = "localhost") -> Pem:
    """A certificate for localhost and 127.0.0.1 that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = Pem(folder / f"{name}.crt", folder / f"{name}.key")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pem


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    return self_signed(tmp_path_factory.mktemp("tls"))


class Service:
    """``python -m wonderq <args>`` in a subprocess, ready once ``path`` answers over https."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log = tmp_path / f"{args[0]}.{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERQ_")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "wonderq", *args], stdout=out,
                                         stderr=subprocess.STDOUT, env=env)

    def wait(self, url: str, verify: ssl.SSLContext) -> None:
        """Until ``url`` answers over https, trusting ``verify``."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"it exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                httpx.get(url, verify=verify, timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"it did not start: {self.log.read_text()}")

    def stop(self) -> str:
        terminate(self.proc, 15)
        return self.log.read_text()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        log = s.stop()
        assert "Traceback" not in log, log


def start(services: list[Service], tmp_path: Path, pem: Pem, url: str, *args: str) -> Service:
    """A service with the certificate, ready once ``url`` answers."""
    s = Service(tmp_path, *args, "--tls-cert", str(pem.cert), "--tls-key", str(pem.key))
    services.append(s)
    s.wait(url, pem.trusted())
    return s


def assert_only_https(url: str, pem: Pem, path: str) -> None:
    """A client trusting the certificate is served; plain HTTP and a client that does not are not."""
    assert url.startswith("https://")
    r = httpx.get(url + path, verify=pem.trusted(), timeout=10)
    assert r.status_code == 200, r.text
    with pytest.raises(httpx.TransportError):
        httpx.get(url.replace("https://", "http://") + path, timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url + path, timeout=10, trust_env=False)  # certifi's public CAs only


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
def test_the_broker_serves_https(services: list[Service], tmp_path: Path, pem: Pem, cluster: list[str]) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    s = start(services, tmp_path, pem, url + "/readyz", "broker", "--port", str(port),
              "--db", str(tmp_path / "w.db"), *cluster)
    for _ in range(4):  # more than one worker answers, each over TLS
        assert_only_https(url, pem, "/readyz")
        assert_only_https(url.replace("127.0.0.1", "localhost"), pem, "/healthz")
    with httpx.Client(base_url=url, verify=pem.trusted()) as c:
        assert c.post("/queues", json={"name": "jobs"}).status_code == 200
        assert c.post("/messages", json={"queue_name": "jobs", "body": "over tls"}).status_code == 200
    assert f"listening on {url}" in s.log.read_text()
    env = os.environ | {"WONDERQ_PORT": str(port), "WONDERQ_TLS_CERT": str(pem.cert)}
    ready = subprocess.run([sys.executable, "-m", "wonderq", "ready"], env=env, capture_output=True, text=True)
    assert ready.returncode == 0, ready.stderr  # systemd's and docker's readiness check, over TLS too


@pytest.mark.parametrize("cluster", [[], ["--cluster", "2"]])
def test_a_handshake_that_never_comes_is_closed_like_silent_headers(
    services: list[Service], tmp_path: Path, pem: Pem, cluster: list[str]
) -> None:
    """Before its handshake a TLS socket is not a connection the cap counts, so it gets the
    header timeout too (asyncio alone would keep it 60 s)."""
    port = free_port()
    start(services, tmp_path, pem, f"https://127.0.0.1:{port}/healthz", "broker", "--port", str(port),
          "--db", str(tmp_path / "w.db"), "--header-timeout", "1", *cluster)
    with socket.create_connection(("127.0.0.1", port)) as silent:
        silent.settimeout(30)  # far under 60 s, far over the 1 s asked for
        assert silent.recv(1) == b""  # closed by the server, not timed out here


@pytest.mark.parametrize(("verb", "path"), [("dev", "/"), ("user", "/listeners")])
def test_the_dev_tool_and_user_app_serve_https(
    services: list[Service], tmp_path: Path, pem: Pem, verb: str, path: str
) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    s = start(services, tmp_path, pem, url + path, verb, "--port", str(port))
    assert_only_https(url, pem, path)
    assert f"listening on {url}" in s.log.read_text()


def test_up_serves_all_three_over_https_and_they_talk_over_it(
    services: list[Service], tmp_path: Path, pem: Pem
) -> None:
    broker, dev, user = free_port(), free_port(), free_port()
    s = start(services, tmp_path, pem, f"https://127.0.0.1:{user}/listeners", "up", "--port", str(broker),
              "--dev-port", str(dev), "--user-port", str(user), "--db", str(tmp_path / "w.db"))
    s.wait(f"https://127.0.0.1:{broker}/readyz", pem.trusted())
    trusted: dict[str, Any] = {"verify": pem.trusted(), "timeout": 30}
    r = httpx.post(f"https://127.0.0.1:{user}/dispatch", params={"queue_name": "jobs", "stub": 3}, **trusted)
    assert (r.status_code, r.json()["created"]) == (200, 3), r.text  # the user app reached the broker
    r = httpx.get(f"https://127.0.0.1:{dev}/queues", **trusted)  # and so did the dev tool
    assert r.status_code == 200 and [q["queue_size"] for q in r.json()] == [3], r.text
    r = httpx.get(f"https://127.0.0.1:{broker}/queues", **trusted)
    assert [q["name"] for q in r.json()] == ["jobs"]
    printed = services[0].log.read_text()
    for what, port in (("broker", broker), ("dev tool", dev), ("user app", user)):
        assert f"{what:<8}  https://127.0.0.1:{port}\n" in printed, printed


def test_the_cli_trusts_a_private_ca_from_wonderq_ca_file(
    services: list[Service], tmp_path: Path, pem: Pem
) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    start(services, tmp_path, pem, url + "/readyz", "broker", "--port", str(port), "--db", str(tmp_path / "w.db"))
    r = wonderq("create", "jobs", "--broker-url", url, WONDERQ_CA_FILE=str(pem.cert))
    assert r.returncode == 0, r
    r = wonderq("queues", "--broker-url", url, WONDERQ_CA_FILE=str(pem.cert))
    assert r.returncode == 0 and "jobs" in r.stdout, r
    r = wonderq("queues", "--broker-url", url)  # the system's CAs only
    assert r.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in r.stderr and "WONDERQ_CA_FILE" in r.stderr, r
    r = wonderq("queues", "--broker-url", url, WONDERQ_CA_FILE=str(tmp_path / "none.pem"))
    assert (r.returncode, r.stderr) == (2, f"wonderq: cannot use the CA file {tmp_path / 'none.pem'}"
                                           " (WONDERQ_CA_FILE): No such file or directory\n")


@pytest.mark.parametrize("verb", ["broker", "dev", "user", "up"])
def test_a_certificate_without_its_key_does_not_start(tmp_path: Path, pem: Pem, verb: str) -> None:
    missing = tmp_path / "missing.key"
    r = wonderq(verb, "--port", str(free_port()), "--tls-cert", str(pem.cert), "--tls-key", str(missing))
    assert_cannot_start(r, f"cannot read the key {missing} (--tls-key): No such file or directory")
    assert "--tls-cert and --tls-key" in r.stderr
    r = wonderq(verb, "--port", str(free_port()), WONDERQ_TLS_CERT=str(pem.cert))
    assert_cannot_start(r, "--tls-cert needs --tls-key too")


def test_a_bad_certificate_or_key_does_not_start(tmp_path: Path, pem: Pem) -> None:
    other = self_signed(tmp_path, "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for cert, key, said in (
        (junk, pem.key, f"the certificate {junk} (--tls-cert) is not a PEM certificate"),
        (pem.cert, junk, f"the key {junk} (--tls-key) is not a PEM key"),
        (pem.cert, other.key, f"cannot serve the certificate {pem.cert} with the key {other.key}:"
                              " it is not the certificate's key"),
        (tmp_path, pem.key, f"cannot read the certificate {tmp_path} (--tls-cert): Is a directory"),
    ):
        r = wonderq("broker", "--port", str(free_port()), "--db", str(tmp_path / "w.db"),
                    "--tls-cert", str(cert), "--tls-key", str(key))
        assert_cannot_start(r, said)
