"""AWS Signature Version 4, verified against the access keys of a credentials file.

Two forms, as AWS documents them:

- the header: ``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/sqs/aws4_request,
  SignedHeaders=host;x-amz-date;…, Signature=<hex>`` with ``X-Amz-Date`` (or ``Date``); refused
  more than 15 minutes from the server's clock;
- the query string (presigned): ``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``,
  ``X-Amz-Expires`` (at most 7 days), ``X-Amz-SignedHeaders``, ``X-Amz-Signature``; refused
  past its date plus its expiry.

The server rebuilds the canonical request (method, canonical URI, canonical query string, the
signed headers' trimmed values, the payload's SHA-256), the string to sign and the signing key,
and compares with :func:`hmac.compare_digest`. The payload hash is the body's (or the
``X-Amz-Content-Sha256`` the client sent, which must be it); ``UNSIGNED-PAYLOAD`` only stands
for a request without a body, so a body is always signed. The credential scope must name this
broker's region and ``sqs``. Errors are SQS's: ``MissingAuthenticationToken``,
``IncompleteSignature``, ``InvalidClientTokenId``, ``SignatureDoesNotMatch``, ``RequestExpired``.

The credentials file holds one key a line, ``#`` starting a comment line::

    <access key id> <secret access key> <read|write|admin> [queue patterns: a,orders-*]

and must be readable by its owner only, as ssh insists for private keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote_plus

from wonderq.broker.access import Grant, queue_patterns
from wonderq.broker.sqs.faults import (
    INCOMPLETE_SIGNATURE,
    INVALID_CLIENT_TOKEN_ID,
    MISSING_AUTHENTICATION_TOKEN,
    REQUEST_EXPIRED,
    SIGNATURE_DOES_NOT_MATCH,
    SqsError,
)
from wonderq.edge.params import natural
from wonderq.edge.requests import Request

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
TERMINATOR = "aws4_request"
MAX_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 7 * 24 * 3600  # seconds: a presigned URL's longest life
MAX_SIGNED = 64  # SignedHeaders names at most (botocore signs a handful)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TIMESTAMP = "%Y%m%dT%H%M%SZ"
BASIC_ISO = re.compile(r"[0-9]{8}T[0-9]{6}Z")
FORMAT = "<access key id> <secret access key> <read|write|admin> [queue patterns, comma-separated]"
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your"
            " AWS Secret Access Key and signing method. Consult the service documentation for details.")

Keys = Mapping[str, tuple[str, Grant]]  # access key id -> (secret access key, what it may do)


# -- the credentials file -----------------------------------------------------------


class CredentialsError(ValueError):
    """The credentials file cannot be used: its line, and why (never a secret)."""


def load_keys(path: str) -> dict[str, tuple[str, Grant]]:
    """The keys of the file at ``path``; refused if others may read it."""
    where = f"the SQS credentials file {path} (--sqs-credentials)"
    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode  # of the file read, not of whatever the path names later
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise CredentialsError(f"{where} is open to other users (mode {stat.S_IMODE(mode):04o}); it"
                                       f" holds secrets: chmod 600 {path}")
            text = file.read()
    except OSError as exc:
        raise CredentialsError(f"cannot read {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"{where} is not UTF-8 text") from None
    return parse_keys(text, where)


def parse_keys(text: str, where: str = "the SQS credentials file") -> dict[str, tuple[str, Grant]]:
    keys: dict[str, tuple[str, Grant]] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        key_id, secret, grant = parse_line(words, f"{where}, line {number}")
        if key_id in keys:
            raise CredentialsError(f"{where}, line {number}: access key id {key_id} is on line {lines[key_id]}"
                                   " already")
        keys[key_id], lines[key_id] = (secret, grant), number
    if not keys:
        raise CredentialsError(f"{where} has no keys; one a line: {FORMAT}")
    return keys


def parse_line(words: Sequence[str], where: str) -> tuple[str, str, Grant]:
    if len(words) < 3:
        raise CredentialsError(f"{where}: expected {FORMAT}; found {len(words)} field(s)")
    key_id, secret, scope = words[:3]
    if "/" in key_id or not key_id.isprintable():
        raise CredentialsError(f"{where}: an access key id cannot hold a / (it separates the credential scope)")
    try:
        return key_id, secret, Grant(key_id, scope, queue_patterns(" ".join(words[3:])))
    except ValueError as exc:
        raise CredentialsError(f"{where}: {exc}") from None


# -- what a request claims ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A signature as the request states it, in either form."""

    key_id: str
    scope: tuple[str, str, str, str]  # date, region, service, terminator
    timestamp: str  # X-Amz-Date, ISO 8601 basic: 20261201T120000Z
    headers: tuple[str, ...]  # SignedHeaders, lower case
    signature: str
    expires: int | None = None  # presigned: X-Amz-Expires (seconds); None for the header form

    @property
    def credential_scope(self) -> str:
        return "/".join(self.scope)


def incomplete(message: str) -> SqsError:
    return SqsError(INCOMPLETE_SIGNATURE, message)


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def query_pairs(query: bytes) -> list[tuple[str, str]]:
    """The query string's pairs, percent-decoded, in order; ``+`` is a space, as the parameters
    read it (else ``a+b`` would pass for a signed ``a%2Bb`` and be read as ``a b``)."""
    pairs = []
    for part in query.decode("latin-1").split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def claim_of(request: Request, query: Mapping[str, str]) -> Claim | None:
    """The request's signature (None: it has none); IncompleteSignature if malformed."""
    header = text(request.header(b"authorization"))
    presigned = "X-Amz-Signature" in query or "X-Amz-Algorithm" in query or "X-Amz-Credential" in query
    if header is not None and presigned:
        raise incomplete("Only one auth mechanism allowed: the Authorization header or the X-Amz-* query"
                         " parameters, not both.")
    if header is not None:
        return from_header(header, request)
    return from_query(query) if presigned else None


def from_header(value: str, request: Request) -> Claim:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'; this server takes {ALGORITHM}.")
    fields: dict[str, str] = {}
    for part in (p.strip() for p in rest.split(",")):
        name, equals, field = part.partition("=")
        if not equals:
            raise incomplete(f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header:"
                             f" '{value}'.")
        fields[name.strip()] = field.strip()
    missing = [f"Authorization header requires '{n}' parameter." for n in ("Credential", "SignedHeaders",
                                                                            "Signature") if not fields.get(n)]
    if missing:
        raise incomplete(" ".join(missing) + f" Authorization={value}")
    key_id, scope = credential(fields["Credential"])
    return Claim(key_id, scope, header_date(request), signed_headers(fields["SignedHeaders"]), fields["Signature"])


def header_date(request: Request) -> str:
    """X-Amz-Date, or the Date header in X-Amz-Date's format."""
    amz = text(request.header(b"x-amz-date"))
    if amz is not None:
        if not BASIC_ISO.fullmatch(amz):
            raise incomplete(f"X-Amz-Date must be in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z', not '{amz}'.")
        return amz
    date = text(request.header(b"date"))
    if date is None:
        raise incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    try:
        return parsedate_to_datetime(date).astimezone(UTC).strftime(TIMESTAMP)
    except (TypeError, ValueError):
        raise incomplete(f"The Date header is not an HTTP date: '{date}'.") from None


def from_query(query: Mapping[str, str]) -> Claim:
    names = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [n for n in names if not query.get(n)]
    if missing:
        raise incomplete(f"AWS query-string parameters must include {', '.join(missing)}. Re-examine the"
                         " query-string parameters.")
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise incomplete(f"Unsupported AWS 'algorithm': '{query['X-Amz-Algorithm']}'; this server takes"
                         f" {ALGORITHM}.")
    expires = query.get("X-Amz-Expires", "")
    seconds = natural(expires)
    if seconds is None or not 1 <= seconds <= MAX_EXPIRES:
        raise incomplete(f"X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES} (7 days),"
                         f" not '{expires[:40]}'.")
    if not BASIC_ISO.fullmatch(query["X-Amz-Date"]):
        raise incomplete(f"X-Amz-Date must be in the ISO 8601 basic format, not '{query['X-Amz-Date']}'.")
    key_id, scope = credential(query["X-Amz-Credential"])
    return Claim(key_id, scope, query["X-Amz-Date"], signed_headers(query["X-Amz-SignedHeaders"]),
                 query["X-Amz-Signature"], seconds)


def credential(value: str) -> tuple[str, tuple[str, str, str, str]]:
    parts = value.split("/")
    if len(parts) != 5 or not all(parts):
        raise incomplete(f"Credential must be <access key id>/<YYYYMMDD>/<region>/{SERVICE}/{TERMINATOR},"
                         f" not '{value}'.")
    return parts[0], (parts[1], parts[2], parts[3], parts[4])


def signed_headers(value: str) -> tuple[str, ...]:
    """SignedHeaders, each name once (each costs a pass over the request's headers)."""
    names = tuple(value.split(";"))
    if len(names) > MAX_SIGNED or len(set(names)) != len(names):
        raise incomplete(f"SignedHeaders must name each header once, at most {MAX_SIGNED} of them.")
    if "host" not in names:
        raise incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    return names


# -- the check ------------------------------------------------------------------------


def verify(request: Request, keys: Keys, region: str, now_ms: int) -> Grant:
    """The grant of the key that signed ``request``, or the SQS error that says why not."""
    pairs = query_pairs(request.query)
    claim = claim_of(request, dict(pairs))
    if claim is None:
        raise SqsError(MISSING_AUTHENTICATION_TOKEN, "Request is missing Authentication Token: sign it with"
                       " AWS Signature Version 4 (an access key from the broker's credentials file).")
    key = keys.get(claim.key_id)
    if key is None:
        why = "" if keys else (" Authentication is on (the broker has API keys) and it has no SQS credentials:"
                               " start it with --sqs-credentials (WONDERQ_SQS_CREDENTIALS).")
        raise SqsError(INVALID_CLIENT_TOKEN_ID, "The security token included in the request is invalid." + why)
    check_scope(claim, region)
    check_time(claim, datetime.fromtimestamp(now_ms / 1000, UTC))
    if request.header(b"x-amz-target") is not None and "x-amz-target" not in claim.headers:
        raise incomplete("X-Amz-Target must be a signed header.")
    secret, grant = key
    for payload in payload_hashes(request):
        canonical = canonical_request(request, pairs, claim, payload)
        if hmac.compare_digest(signature(secret, claim, canonical).encode(), claim.signature.encode()):
            return grant
    raise SqsError(SIGNATURE_DOES_NOT_MATCH, MISMATCH)


def check_scope(claim: Claim, region: str) -> None:
    date, scope_region, service, terminator = claim.scope
    if date != claim.timestamp[:8]:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Date in Credential scope does not match YYYYMMDD from ISO-8601"
                       f" version of date from HTTP: '{date}' != '{claim.timestamp[:8]}', from '{claim.timestamp}'.")
    if scope_region != region:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Credential should be scoped to a valid region, not"
                       f" '{scope_region}'; this broker's region is '{region}'.")
    if service != SERVICE:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Credential should be scoped to correct service: '{SERVICE}'.")
    if terminator != TERMINATOR:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Credential should be scoped with a valid terminator:"
                       f" '{TERMINATOR}', not '{terminator}'.")


def check_time(claim: Claim, now: datetime) -> None:
    """A header signature within 15 minutes of now; a presigned one before its expiry."""
    try:
        signed = datetime.strptime(claim.timestamp, TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise incomplete(f"X-Amz-Date is not a date: '{claim.timestamp}'.") from None
    if signed > now + MAX_SKEW:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Signature not yet current: {claim.timestamp} is still later"
                       f" than {(now + MAX_SKEW):{TIMESTAMP}} ({now:{TIMESTAMP}} + 15 min.)")
    if claim.expires is not None:
        if signed + timedelta(seconds=claim.expires) < now:
            raise SqsError(REQUEST_EXPIRED, f"Request has expired: signed at {claim.timestamp} for"
                           f" {claim.expires} seconds; it is now {now:{TIMESTAMP}}.")
    elif signed < now - MAX_SKEW:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, f"Signature expired: {claim.timestamp} is now earlier than"
                       f" {(now - MAX_SKEW):{TIMESTAMP}} ({now:{TIMESTAMP}} - 15 min.)")


def payload_hashes(request: Request) -> list[str]:
    """What the canonical request may end with: the body's SHA-256; or, for no body, UNSIGNED-PAYLOAD."""
    body = hashlib.sha256(request.body).hexdigest()
    allowed = [body] if request.body else [body, UNSIGNED_PAYLOAD]
    sent = text(request.header(b"x-amz-content-sha256"))
    if sent is None:
        return allowed
    if sent not in allowed:
        raise SqsError(SIGNATURE_DOES_NOT_MATCH, "The x-amz-content-sha256 header does not match the request"
                       " body's SHA-256 (UNSIGNED-PAYLOAD stands only for a request without a body).")
    return [sent]


def canonical_request(request: Request, pairs: Sequence[tuple[str, str]], claim: Claim, payload: str) -> str:
    return "\n".join((request.method, canonical_uri(request.path), canonical_query(pairs, claim.expires is not None),
                      canonical_headers(request, claim.headers), ";".join(claim.headers), payload))


def canonical_uri(path: str) -> str:
    """The path without dot segments or empty ones, URI-encoded twice as for every service but S3
    (the path arrives decoded: once rebuilds what the client sent, once more is the rule)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    normal = "/" + "/".join(segments) + ("/" if segments and path.endswith("/") else "")
    return quote(quote(normal, safe="/~"), safe="/~")


def canonical_query(pairs: Sequence[tuple[str, str]], presigned: bool) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs
                     if not (presigned and k == "X-Amz-Signature"))
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(request: Request, names: Sequence[str]) -> str:
    wanted = {name.encode("latin-1") for name in names}
    values: dict[bytes, list[str]] = {}
    for k, v in request.headers:  # one pass, however many are signed
        if k in wanted:
            values.setdefault(k, []).append(" ".join(v.decode("latin-1").split()))
    return "".join(f"{name}:{','.join(values.get(name.encode('latin-1'), []))}\n" for name in names)


def signature(secret: str, claim: Claim, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = "\n".join((ALGORITHM, claim.timestamp, claim.credential_scope, digest))
    return hmac.new(signing_key(secret, *claim.scope[:3]), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key
