"""The digests SQS puts on messages, computed as AWS documents them, independently of any server.

boto3 checks none of them, so the tests check them with these; the Java, .NET and PHP SDKs verify
all three and the JavaScript SDK the body's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode()).hexdigest()


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """MD5OfMessageAttributes (and, over the system attributes, MD5OfMessageSystemAttributes):
    for each attribute in name order, the length-prefixed name, the length-prefixed data type,
    one transport byte (1 string, 2 binary), then the length-prefixed value."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        attribute = attributes[name]
        digest.update(_field(name.encode()) + _field(attribute["DataType"].encode()))
        if "BinaryValue" in attribute:
            value = attribute["BinaryValue"]
            digest.update(b"\x02" + _field(value if isinstance(value, bytes) else value.encode()))
        else:
            digest.update(b"\x01" + _field(attribute["StringValue"].encode()))
    return digest.hexdigest()
