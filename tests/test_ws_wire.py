"""The executor's WebSocket wire (RFC 6455 client on a plain socket) against a hand-written server
end on loopback: the handshake, masking of every payload size class, fragmented messages with a
ping between the fragments, and an end of the connection that never loses the messages which
arrived before it (the last answers and fills before a close)."""
from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading

import pytest

from ctrader.execution.ws_wire import GUID, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WireClosed, WsWire


def server_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> bytes:
    """A frame as a server writes it (unmasked unless asked, to test the refusal)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One client frame from ``sock`` (blocking), unmasked: (opcode, payload)."""
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "client closed mid-frame"
            data += chunk
        return data
    b0, b1 = exactly(2)
    assert b1 & 0x80, "a client frame must be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    key = exactly(4)
    body = exactly(n)
    return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.fixture
def pair():
    """A connected (wire, server socket) pair over loopback TCP."""
    a, b = socket.socketpair()
    wire = WsWire(a)
    b.settimeout(5)
    yield wire, b
    wire.close()
    b.close()


def read_until(wire: WsWire, server: socket.socket, count: int) -> list[bytes]:
    """Read from the wire until ``count`` messages came (waiting on readability, not on time)."""
    out: list[bytes] = []
    while len(out) < count:
        assert wire.wait_readable(5.0), "nothing arrived"
        out += wire.read()
    return out


def test_handshake_against_a_loopback_server_and_a_wrong_accept_refused():
    def serve(listener: socket.socket, accept_ok: bool) -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest()) if accept_ok else b"wrong"
            # the upgrade answer and a first message in one write: the message is not lost
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + server_frame(OP_TEXT, b'{"hello":1}'))
            if accept_ok:
                assert read_client_frame(conn) == (OP_TEXT, b"ping?")

    for accept_ok in (True, False):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            t = threading.Thread(target=serve, args=(listener, accept_ok))
            t.start()
            url = f"ws://127.0.0.1:{listener.getsockname()[1]}/ws-api/v3"
            if accept_ok:
                wire = WsWire.connect(url, timeout_s=5)
                assert read_until(wire, None, 1) == [b'{"hello":1}']
                wire.send_text(b"ping?")
                t.join(5)
                wire.close()
            else:
                with pytest.raises(WireClosed, match="Sec-WebSocket-Accept"):
                    WsWire.connect(url, timeout_s=5)
                t.join(5)


@pytest.mark.parametrize("size", [0, 1, 5, 125, 126, 4097, 65535, 65536, 200_001])
def test_every_payload_size_is_masked_and_arrives_whole(pair, size):
    wire, server = pair
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    wire.send_text(payload)
    while not wire.flush():          # a large frame may not fit the socket buffer at once
        wire.read()
    assert read_client_frame(server) == (OP_TEXT, payload)


def test_fragmented_message_with_a_ping_between_the_fragments(pair):
    wire, server = pair
    server.sendall(server_frame(OP_TEXT, b'{"a":', fin=False) + server_frame(OP_PING, b"p1")
                   + server_frame(OP_CONT, b'1,"b"', fin=False))
    assert wire.wait_readable(5.0)
    assert wire.read() == []                  # however much of it arrived, the message is not complete
    server.sendall(server_frame(OP_CONT, b":2}"))
    assert read_until(wire, server, 1) == [b'{"a":1,"b":2}']
    assert read_client_frame(server) == (OP_PONG, b"p1")


def test_a_frame_split_across_reads(pair):
    wire, server = pair
    frame = server_frame(OP_TEXT, b"x" * 300)
    server.sendall(frame[:3])
    wire.wait_readable(5.0)
    assert wire.read() == []
    server.sendall(frame[3:])
    assert read_until(wire, server, 1) == [b"x" * 300]


def test_messages_before_a_close_frame_are_delivered_then_the_wire_reports_the_close(pair):
    wire, server = pair
    server.sendall(server_frame(OP_TEXT, b'{"id":1,"result":{}}') + server_frame(OP_TEXT, b'{"event":"fill"}')
                   + server_frame(OP_CLOSE, struct.pack("!H", 1001) + b"going away")
                   + server_frame(OP_TEXT, b"after the close: ignored"))
    assert read_until(wire, server, 2) == [b'{"id":1,"result":{}}', b'{"event":"fill"}']
    assert read_client_frame(server)[0] == OP_CLOSE       # the close was answered
    with pytest.raises(WireClosed, match="going away"):
        wire.read()
    with pytest.raises(WireClosed):
        wire.send_text(b"too late")


def test_messages_before_the_peer_hangs_up_are_delivered(pair):
    wire, server = pair
    server.sendall(server_frame(OP_TEXT, b"last answer"))
    server.shutdown(socket.SHUT_WR)
    assert read_until(wire, server, 1) == [b"last answer"]
    assert wire.wait_readable(5.0)
    with pytest.raises(WireClosed, match="closed by the peer"):
        wire.read()


def test_a_masked_server_frame_ends_the_connection_after_the_good_ones(pair):
    wire, server = pair
    server.sendall(server_frame(OP_TEXT, b"good") + server_frame(OP_TEXT, b"bad", masked=True))
    assert read_until(wire, server, 1) == [b"good"]
    with pytest.raises(WireClosed, match="masked frame"):
        wire.read()
