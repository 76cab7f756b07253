"""A WebSocket client connection (RFC 6455) on a plain socket, for one thread that owns it.

The executor sends orders from its own loop: no event loop, no second thread, no hand-over
between threads on the way out (a thread that needs the GIL can wait up to CPython's 5 ms
switch interval). ``send_text`` frames and writes in the caller's thread and returns once the
kernel has the bytes; ``read`` takes whatever arrived without blocking and returns the complete
text messages. Control frames are answered here (ping -> pong, close -> close).

    wire = WsWire.connect("wss://ws-api.binance.com:443/ws-api/v3", timeout_s=10)   # blocking
    wire.send_text(b'{"id":1,"method":"ping","params":{}}')                         # non-blocking
    for message in wire.read(): ...                                                  # non-blocking
    wire.close()

``connect`` blocks (TCP, TLS, the HTTP upgrade): it runs on a helper thread when reconnecting
(``ws_api_client``); the connected wire is then handed to the executor's thread, which alone
uses it from there on.

Client frames are masked as the RFC requires, with a fresh key per frame from a generator
seeded from the OS; the XOR runs on Python integers (one operation for the whole payload).
"""
from __future__ import annotations

import base64
import hashlib
import os
import random
import select
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 1 << 24


class WireClosed(ConnectionError):
    """The connection is gone (closed by the peer, reset, or a protocol error)."""


class WsWire:
    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._in = bytearray(leftover)      # received bytes not yet parsed into frames
        # bytes that came with the upgrade answer: read() has something even if the socket has not
        self._unparsed = bool(leftover)
        self._out = bytearray()              # framed bytes the kernel did not take yet
        self._fragments: list[bytes] = []    # a fragmented message being assembled
        self._rng = random.Random(os.urandom(16))
        self.closed = False
        # Why the connection ended, once it has, while messages that arrived before the end are
        # still being handed out: the next ``read`` raises.
        self._gone: str | None = None
        self.frames_in = 0
        self.frames_out = 0

    # --- connecting (blocking) ----------------------------------------------------------------

    @classmethod
    def connect(cls, url: str, timeout_s: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> WsWire:
        """Open ``ws://`` or ``wss://`` ``url`` and upgrade it; blocks up to about ``timeout_s``."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a WebSocket URL: {url!r}")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock = socket.create_connection((host, port), timeout=timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if parts.scheme == "wss":
                sock = (ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
            key = base64.b64encode(os.urandom(16))
            request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                       f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
            sock.sendall(request)
            head, leftover = _read_http_head(sock, time.monotonic() + timeout_s)
            status_line, _, header_text = head.partition(b"\r\n")
            if b" 101 " not in status_line + b" ":
                raise WireClosed(f"WebSocket upgrade of {url} refused: {status_line.decode(errors='replace')}")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(b":") for line in header_text.split(b"\r\n") if line)}
            expected = base64.b64encode(hashlib.sha1(key + GUID).digest())
            if headers.get(b"sec-websocket-accept") != expected:
                raise WireClosed(f"WebSocket upgrade of {url}: wrong Sec-WebSocket-Accept")
        except BaseException:
            sock.close()
            raise
        return cls(sock, leftover)

    # --- sending ----------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """Frame ``payload`` as one text message and write it now; what the kernel does not take
        at once (a full socket buffer) is written by the next ``send_text``/``read``/``flush``."""
        self._send_frame(OP_TEXT, payload)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.closed or self._gone:
            raise WireClosed(self._gone or "WebSocket closed")
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = self._rng.getrandbits(32)
        key_bytes = key.to_bytes(4, "big")
        if n:
            # XOR with the key repeated over the payload: one operation on two integers
            words = (n + 3) // 4
            masked = (int.from_bytes(payload, "big") ^ (int.from_bytes(key_bytes * words, "big") >> (8 * (4 * words - n))))
            body = masked.to_bytes(n, "big")
        else:
            body = b""
        frame = head + key_bytes + body
        self.frames_out += 1
        if self._out:
            self._out += frame
            self.flush()
            return
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
        if sent < len(frame):
            self._out += frame[sent:]

    def flush(self) -> bool:
        """Write what is still buffered; True when nothing is left."""
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            except OSError as exc:
                self._lost(exc)
            del self._out[:sent]
        return True

    @property
    def pending_out(self) -> int:
        return len(self._out)

    # --- receiving --------------------------------------------------------------------------

    def read(self) -> list[bytes]:
        """The complete text messages that arrived (non-blocking; ``[]`` if none). Raises
        ``WireClosed`` when the connection is gone, but only once every message that arrived
        before its end was returned: the last answers and fills before a close are not lost."""
        if self._gone:
            self._lost(None, self._gone)
        if self._out:
            try:
                self.flush()
            except WireClosed as exc:
                self._gone = str(exc)          # what was received may still be read below
        while not self._gone:
            try:
                chunk = self.sock.recv(1 << 18)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                self._gone = f"connection lost: {exc}"
                break
            if not chunk:
                self._gone = "connection closed by the peer"
                break
            self._in += chunk
            if len(chunk) < (1 << 18) and not isinstance(self.sock, ssl.SSLSocket):
                break
        self._unparsed = False
        messages = self._parse()
        if self._gone and not messages:
            self._lost(None, self._gone)
        return messages

    def wait_readable(self, timeout_s: float) -> bool:
        """Block until data may be read (or ``timeout_s``); for callers with nothing else to do."""
        if self._gone or self.closed or self._unparsed:
            return True                  # the next read says so, or has messages to give
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()           # not select(): fds >= 1024 in a long-lived process
        poller.register(self.sock.fileno(), select.POLLIN)
        return bool(poller.poll(max(0.0, timeout_s) * 1000.0))

    def _parse(self) -> list[bytes]:
        messages = []
        buf = self._in
        while True:
            if len(buf) < 2:
                break
            b0, b1 = buf[0], buf[1]
            opcode, fin, length, at = b0 & 0x0F, b0 & 0x80, b1 & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    break
                length, at = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length, at = struct.unpack_from("!Q", buf, 2)[0], 10
            if b1 & 0x80:          # a server must not mask: the stream cannot be trusted from here
                self._gone = "protocol error: masked frame from the server"
                break
            if length > MAX_MESSAGE:
                self._gone = f"protocol error: frame of {length} bytes"
                break
            if len(buf) < at + length:
                break
            payload = bytes(buf[at:at + length])
            del buf[:at + length]
            self.frames_in += 1
            if opcode == OP_PING:
                if not self._gone:
                    try:
                        self._send_frame(OP_PONG, payload)
                    except WireClosed as exc:
                        self._gone = str(exc)  # the frames already here are still delivered
            elif opcode == OP_CLOSE:
                if not self._gone:
                    try:
                        self._send_frame(OP_CLOSE, payload[:2])
                    except WireClosed:
                        pass
                self._gone = "closed by the server " + payload[2:].decode(errors="replace")
                break                      # nothing after a close frame counts
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if fin and not self._fragments:
                    messages.append(payload)
                else:
                    self._fragments.append(payload)
                    if fin:
                        messages.append(b"".join(self._fragments))
                        self._fragments = []
        return messages

    # --- closing ------------------------------------------------------------------------------

    def _lost(self, exc: BaseException | None, why: str = "") -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        raise WireClosed(why or (f"connection lost: {exc}" if exc else "connection closed by the peer"))

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
        except (WireClosed, OSError):
            pass
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()


def _read_http_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """The HTTP response head (up to the blank line) and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no WebSocket upgrade answer in time")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise WireClosed("connection closed during the WebSocket upgrade")
        data += chunk
        if len(data) > 65536:
            raise WireClosed("WebSocket upgrade answer too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest
