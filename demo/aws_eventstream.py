"""AWS event-stream framing (``application/vnd.amazon.eventstream``), the encoding side.

botocore only parses this framing (botocore.eventstream.EventStreamBuffer), so the fake
Bedrock server writes it here. A message is

    prelude:  total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes (uint32)
    headers:  per header: name length (uint8) | name | type (uint8; 7 = string) | value length (uint16) | value
    payload
    CRC32 of everything before it (uint32)

all big-endian; CRC32 is zlib's (binascii.crc32). Only string headers are written: they are all
Bedrock's event and exception messages use.
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

STRING_HEADER = 7
PRELUDE_BYTES = 12
CRC_BYTES = 4


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    if len(raw_name) > 255 or len(raw_value) > 0xFFFF:
        raise ValueError(f"event-stream header {name!r} is too long")
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", STRING_HEADER, len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string `headers` and `payload`."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = PRELUDE_BYTES + len(raw_headers) + len(payload) + CRC_BYTES
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(event_type: str, data: dict[str, Any]) -> bytes:
    """An ``event`` message of a REST-JSON event stream: `data` is the event member's JSON."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(data).encode())


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message (a modelled error in the middle of a stream)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())
