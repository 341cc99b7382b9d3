"""The channel between a node agent and the analysis process it runs.

Length-prefixed JSON frames over an inherited socket; bytes travel as ``{"$b64": ...}``.
Nothing is ever unpickled: the analysis process is untrusted code.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from flame_lab.errors import FlameLabError

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # what the analysis side accepts from its node (data, messages)
_CLOSED = "the other end closed the channel"


class ChannelClosed(FlameLabError):
    """The other end of the channel went away."""

    default_hint = "The analysis process or its node agent stopped."


class FrameRefused(ChannelClosed):
    """The other end announced a frame above this end's bound; nothing of it was read."""

    default_hint = "Send smaller values: the node's policy.toml bounds limits.max_frame_bytes."

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the analysis sent a call of {size} bytes; this node reads at most {limit} "
            "(limits.max_frame_bytes)"
        )
        self.size = size
        self.limit = limit


class RemoteError(FlameLabError):
    """A call across the channel failed on the other side; carries its type and message."""

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$b64" in value:
            return base64.b64decode(value["$b64"], validate=True)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def to_json(value: Any) -> Any:
    """A channel value as plain JSON types, bytes spelt ``{"$b64": ...}`` (as on the wire)."""
    return _encode(value)


def from_json(value: Any) -> Any:
    """The channel value of plain JSON made by :func:`to_json`."""
    return _decode(value)


class Channel:
    """Whole JSON messages over a stream socket; safe for one reader and many writers.

    ``max_frame`` bounds what :meth:`recv` accepts: a larger frame is refused from its header,
    before any of it is read (the node agent passes its policy's limits.max_frame_bytes).
    """

    def __init__(self, sock: socket.socket, max_frame: int = MAX_FRAME) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._send_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(_encode(message), allow_nan=True, separators=(",", ":")).encode()
        if len(data) > MAX_FRAME:
            raise FlameLabError(
                f"message of {len(data)} bytes exceeds the channel limit of {MAX_FRAME}",
                hint="Send smaller pieces.",
            )
        with self._send_lock:
            try:
                self.sock.sendall(_HEADER.pack(len(data)) + data)
            except OSError:
                raise ChannelClosed("the channel is closed") from None

    def recv(self) -> dict[str, Any]:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        if size > self.max_frame:
            raise FrameRefused(size, self.max_frame)
        try:
            message = json.loads(self._read(size))
        except (ValueError, RecursionError):
            raise ChannelClosed("received a malformed frame") from None
        if not isinstance(message, dict):
            raise ChannelClosed("received a frame that is not an object")
        try:
            return _decode(message)
        except (ValueError, TypeError, RecursionError):
            raise ChannelClosed("received a frame with malformed bytes") from None

    def _read(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            try:
                chunk = self.sock.recv(min(remaining, 1 << 20))
            except OSError:
                chunk = b""
            if not chunk:
                raise ChannelClosed(_CLOSED)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class RpcClient:
    """Calls methods on the other end; used inside the analysis process (one call at a time)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, method: str, **params: Any) -> Any:
        with self._lock:
            call_id = next(self._ids)
            self.channel.send({"id": call_id, "method": method, "params": params})
            reply = self.channel.recv()
        if reply.get("id") != call_id:
            raise ChannelClosed("the node agent answered out of order")
        if "error" in reply:
            err = reply["error"]
            raise RemoteError(err.get("type", "Error"), err.get("message", ""), err.get("hint", ""))
        return reply.get("result")


def serve(channel: Channel, methods: dict[str, Callable[..., Any]]) -> ChannelClosed | None:
    """Answer calls until the other end closes; errors go back, they never kill the server.

    Returns why it stopped when the other end broke the protocol (an oversized or malformed
    frame), None when it simply closed."""
    while True:
        try:
            request = channel.recv()
        except ChannelClosed as exc:
            return None if exc.message == _CLOSED else exc
        call_id, name = request.get("id"), request.get("method")
        params = request.get("params") or {}
        func = methods.get(name) if isinstance(name, str) else None
        if func is None or not isinstance(params, dict):
            reply = {"id": call_id, "error": {"type": "UnknownMethod", "message": f"{name!r}"}}
        else:
            try:
                reply = {"id": call_id, "result": func(**params)}
            except FlameLabError as exc:
                reply = {
                    "id": call_id,
                    "error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint},
                }
            except TypeError as exc:
                reply = {"id": call_id, "error": {"type": "TypeError", "message": str(exc)}}
            except Exception:
                log.exception("the handler of %r failed", name)
                reply = {
                    "id": call_id,
                    "error": {
                        "type": "InternalError",
                        "message": f"the node could not answer {name}",
                    },
                }
        try:
            channel.send(reply)
        except ChannelClosed:
            return None
