"""A bare WebSocket client on a plain socket, so a test controls exactly when it reads."""

from __future__ import annotations

import base64
import json
import os
import socket
from typing import Any


class RawWebSocket:
    """A client that does the opening handshake and then reads frames only when asked."""

    def __init__(
        self, host: str, port: int, path: str, protocols: list[str], receive_buffer: int = 4096
    ) -> None:
        self.sock = socket.socket()
        # A small kernel buffer, so a client that stops reading pushes back on the server soon.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in self.status_line:
            raise ConnectionError(self.status_line)

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next whole message (fragments joined)."""
        payload = b""
        opcode = 0
        while True:
            first, second = self._exactly(2)
            opcode = opcode or first & 0x0F
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._exactly(2), "big")
            elif size == 127:
                size = int.from_bytes(self._exactly(8), "big")
            payload += self._exactly(size)  # server frames are never masked
            if first & 0x80:
                return opcode, payload

    def message(self) -> dict[str, Any]:
        """The next text message, parsed; raises on a close frame."""
        opcode, payload = self.frame()
        if opcode == 0x8:
            code = int.from_bytes(payload[:2], "big") if payload else 1005
            raise ConnectionError(f"closed {code} {payload[2:].decode(errors='replace')}")
        value: dict[str, Any] = json.loads(payload)
        return value

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()
