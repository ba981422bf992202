"""Message attributes: their checks, their size, the selection a receive asks
for, and the MD5 digests SQS defines over them.

An attribute is ``{"DataType": "String"|"Number"|"Binary"[.custom],
"StringValue": str}`` or ``{..., "BinaryValue": base64 str}``, stored as
given (JSON text in :attr:`Message.attributes`). The digest of a set of
attributes, as the AWS SDKs verify it: for each attribute in name order, the
name, the data type and the value, each as a 4-byte big-endian length and its
bytes, with a transport byte (1 string, 2 binary) before the value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import importlib
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from wonderq.broker.sqs.faults import INVALID_PARAMETER_VALUE, SqsError, invalid

Attributes = dict[str, dict[str, str]]
MAX_ATTRIBUTES = 10
NAME = re.compile(r"[A-Za-z0-9_\-.]{1,256}")
RESERVED = ("aws.", "amazon.")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # ASCII: \d takes "٣" too
# XML 1.0 characters, which is what SQS allows in bodies and string values
XML_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
SYSTEM_ATTRIBUTES = ("AWSTraceHeader",)
md5: Callable[[bytes], hashlib._Hash]  # CPython's own MD5 where it has one: no OpenSSL context per call
try:
    md5 = importlib.import_module("_md5").md5
except ImportError:  # pragma: no cover - a Python built without it (a FIPS build, say)
    md5 = functools.partial(hashlib.md5, usedforsecurity=False)
try:  # the digests of a batch at once, in AVX2's lanes: compiled where the install could (setup.py)
    from wonderq.broker.sqs._md5many import LANES, hexdigests
except ImportError:  # pragma: no cover - installed without a compiler, or not on x86-64
    LANES = 0


CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13))  # the ASCII that XML 1.0 refuses


def valid_text(text: str, encoded: bytes | None = None) -> bool:
    """Only characters XML 1.0 allows (what SQS allows in bodies and values).
    ASCII (``encoded`` is its UTF-8, if the caller has it) needs only its
    control characters looked for, which bytes.translate does fastest."""
    if text.isascii():
        data = encoded if encoded is not None else text.encode()
        return len(data.translate(None, CONTROLS)) == len(data)
    return text.isprintable() or not XML_INVALID.search(text)


def check(raw: object, system: bool = False) -> Attributes:
    """Validated attributes (``system``: MessageSystemAttributes), or raise."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise invalid("message attributes must be a map of names to values")
    if len(raw) > MAX_ATTRIBUTES:
        raise invalid(f"Number of message attributes [{len(raw)}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].")
    checked: Attributes = {}
    for name, value in raw.items():
        check_name(name, system)
        checked[name] = check_value(name, value)
        if system and checked[name]["DataType"] != "String":  # as SQS: AWSTraceHeader is a String
            raise invalid(f"The message system attribute '{name}' must be of type String.")
    return checked


def check_name(name: object, system: bool) -> None:
    if system:
        if name not in SYSTEM_ATTRIBUTES:
            raise invalid(f"Message system attribute name '{name}' is invalid.")
        return
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid(f"Message attribute name '{name}' has an invalid character or is too long.")
    if name.lower().startswith(RESERVED) or ".." in name or name.startswith(".") or name.endswith("."):
        raise invalid(f"Message attribute name '{name}' is reserved or malformed.")


def check_value(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise invalid(f"The message attribute '{name}' must have a value.")
    data_type = value.get("DataType")
    if not isinstance(data_type, str) or not data_type:
        raise invalid(f"The message attribute '{name}' must contain non-empty message attribute type.")
    base = data_type.split(".", 1)[0]
    if base not in ("String", "Number", "Binary") or len(data_type) > 256 or not valid_text(data_type):
        raise invalid(f"The type of message attribute '{name}' is invalid. You must use only the following"
                      " supported type prefixes: Binary, Number, String.")
    if value.get("StringListValues") or value.get("BinaryListValues"):
        raise SqsError(INVALID_PARAMETER_VALUE, f"Message attribute '{name}': list values are not supported.")
    if base == "Binary":
        return {"DataType": data_type, "BinaryValue": binary(name, value.get("BinaryValue"))}
    text = value.get("StringValue")
    if not isinstance(text, str) or text == "":
        raise invalid(f"The message attribute '{name}' with type '{base}' must use field 'String'.")
    if base == "Number" and not is_number(text):
        raise invalid(f"Can't cast the value of message (user) attribute '{name}' to a number.")
    if not valid_text(text):
        raise SqsError(INVALID_PARAMETER_VALUE, f"Message attribute '{name}' contains invalid characters.")
    return {"DataType": data_type, "StringValue": text}


def is_number(text: str) -> bool:
    """What SQS takes as a Number: up to 38 significant digits, from 10^-128 to 10^126."""
    if not NUMBER.fullmatch(text):
        return False
    try:
        n = Decimal(text)
    except InvalidOperation:  # an exponent past what decimal holds: 1e99999999999999999999
        return False
    digits = "".join(map(str, n.as_tuple().digits)).strip("0")  # not normalize(): it rounds to 28
    return n.is_zero() or (len(digits) <= 38 and -128 <= n.adjusted() <= 126)


def binary(name: str, value: object) -> str:
    """Base64 text, as both protocols carry blobs; checked and normalised."""
    if not isinstance(value, str) or not value:
        raise invalid(f"The message attribute '{name}' with type 'Binary' must use field 'Binary'.")
    try:
        return base64.b64encode(base64.b64decode(value, validate=True)).decode()
    except (binascii.Error, ValueError):
        raise invalid(f"The message attribute '{name}' has an invalid binary value.") from None


def size(attributes: Attributes) -> int:
    """Bytes toward the message size limit: name, type and value of each."""
    total = 0
    for name, value in attributes.items():
        total += len(name.encode()) + len(value["DataType"].encode())
        if "BinaryValue" in value:
            total += len(base64.b64decode(value["BinaryValue"]))
        else:
            total += len(value["StringValue"].encode())
    return total


def select(attributes: Attributes, names: Iterable[str]) -> Attributes:
    """The attributes a receive asked for: ``All``, ``.*``, a name, or a ``prefix.*``."""
    wanted = list(names)
    if not wanted:
        return {}
    if "All" in wanted or ".*" in wanted:
        return attributes
    prefixes = tuple(n[:-1] for n in wanted if n.endswith(".*"))
    exact = set(wanted)
    return {k: v for k, v in attributes.items() if k in exact or (prefixes and k.startswith(prefixes))}


def md5_bodies(encoded: Sequence[bytes]) -> list[str]:
    """The digests of many bodies (UTF-8): sixteen at once in the CPU's vector lanes where
    it has AVX2 and the extension is built, which for a batch of ten 1 KiB bodies costs a
    fifth of hashing them one by one. The extension says None when the lanes would be the
    slower (one body, or one body most of the bytes): then they are hashed one by one."""
    if LANES and len(encoded) > 1 and (digests := hexdigests(encoded)) is not None:
        return digests
    return [md5(data).hexdigest() for data in encoded]


@dataclass(slots=True)
class Asked:
    """One turn's asks: the bodies, and once taken their digests in the same order (or the
    error that taking them raised)."""

    bodies: list[bytes] = field(default_factory=list)
    digests: list[str] | None = None
    error: Exception | None = None


class BodyDigests:
    """The bodies' digests that single sends ask for in one turn of the event loop, taken
    together by :func:`md5_bodies`: sixteen at once in the vector lanes cost about what three
    one by one do. A SendMessage asks before it awaits its write, and reads its digest after:
    the turn's asks are taken once its ready callbacks have run, while the write is under
    way, so a lone send waits no longer. A send that finds them not yet taken (its write
    answered first, or its loop stopped before the take ran) takes them itself: no future
    per send, and no ask is ever left waiting."""

    def __init__(self) -> None:
        self.asked: Asked | None = None  # this turn's, until taken

    def ask(self, encoded: bytes) -> tuple[Asked, int]:
        """Ask for one body's digest (UTF-8); :meth:`digest` reads it."""
        asked = self.asked
        if asked is None:
            asked = self.asked = Asked()
            asyncio.get_running_loop().call_soon(self.take, asked)
        asked.bodies.append(encoded)
        return asked, len(asked.bodies) - 1

    def digest(self, ticket: tuple[Asked, int]) -> str:
        asked, i = ticket
        if asked.digests is None and asked.error is None:
            self.take(asked)
        if asked.error is not None:
            raise asked.error
        assert asked.digests is not None
        return asked.digests[i]

    def take(self, asked: Asked) -> None:
        """Digest this turn's bodies, once. An error (MemoryError, say) is kept for each
        send of the turn to raise when it reads, as it would have alone."""
        if self.asked is asked:
            self.asked = None
        if asked.digests is not None or asked.error is not None:
            return
        try:
            asked.digests = md5_bodies(asked.bodies)
        except Exception as exc:
            asked.error = exc


def md5_attributes(attributes: Attributes) -> str | None:
    """SQS's MD5OfMessageAttributes (and of system attributes); None for none."""
    if not attributes:
        return None
    digest = md5(b"")
    for name in sorted(attributes):
        value = attributes[name]
        digest.update(_field(name.encode()) + _field(value["DataType"].encode()))
        if "BinaryValue" in value:
            digest.update(b"\x02" + _field(base64.b64decode(value["BinaryValue"])))
        else:
            digest.update(b"\x01" + _field(value["StringValue"].encode()))
    return digest.hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data
