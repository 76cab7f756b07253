"""Kernel timestamps on the simulator's sockets: when a frame left, when a request arrived.

The race benchmark measures a contender from the venue's side: the moment the first frame that
carries a dislocation is written to the contender's socket, and the moment its order arrives.
Taken in user space, both stamps would include the simulator's own scheduling (its event loop
busy with the market model or another client). The kernel can stamp both ends instead
(``Documentation/networking/timestamping.rst``):

* RX: ``SO_TIMESTAMPING`` with ``SOF_TIMESTAMPING_RX_SOFTWARE`` stamps every segment when it
  enters the network stack; ``recvmsg`` returns the stamp of the last segment it read as an
  ``SCM_TIMESTAMPING`` control message. On loopback that is the moment the client's ``send``
  handed the bytes to the kernel.
* TX: a ``send`` carrying an ``SCM_TIMESTAMPING`` control message with
  ``SOF_TIMESTAMPING_TX_SOFTWARE`` asks for a stamp when the packet is handed to the device
  (loopback's xmit); the kernel queues it on the socket's error queue, read with
  ``recvmsg(MSG_ERRQUEUE)``. Only the writes we mark are stamped, so ordinary stream traffic
  costs nothing extra. With ``SOF_TIMESTAMPING_OPT_ID`` each stamp carries the offset of the
  last byte of its write (counted from when the option was set), and stamps are matched to
  writes by that offset, not by their order: when a client falls behind, TCP appends a second
  marked write to the not yet sent packet of the first and the kernel reports one stamp for
  both (the first write then keeps its user-space stamp only).

``StampingListener`` is a listening socket whose ``accept`` returns ``StampingSocket``s. asyncio's
selector transports read with ``sock.recv`` and write with ``sock.send`` (``sendmsg`` from
Python 3.12), so overriding those three methods is enough: the server code above keeps using
plain transports. Kernel stamps are CLOCK_REALTIME; they are converted to CLOCK_MONOTONIC (the
clock every other figure uses) with an offset sampled at most once a second.

When the kernel refuses (``probe`` fails: no ``SO_TIMESTAMPING``, a sandbox, another OS), the
sockets fall back to user-space stamps taken right after the ``send`` returned and when the
request was read; ``kernel_rx`` / ``kernel_tx`` say which kind a figure is.
"""
from __future__ import annotations

import socket
import struct
import time
import weakref
from dataclasses import dataclass

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7           # each TX stamp names the byte it was taken for
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11      # the error queue carries the stamp only, not the packet
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0
IP_RECVERR, IPV6_RECVERR = 11, 25

SOCKET_FLAGS = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY
CONNECTION_FLAGS = SOCKET_FLAGS | SOF_TIMESTAMPING_OPT_ID
TX_CMSG = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("I", SOF_TIMESTAMPING_TX_SOFTWARE))]
RX_SPACE = socket.CMSG_SPACE(48)                          # three timespecs
ERRQ_SPACE = socket.CMSG_SPACE(48) + socket.CMSG_SPACE(64)  # stamps + sock_extended_err and its address
_TIMESPEC = struct.Struct("qq")
_send, _sendmsg, _recv, _recvmsg = socket.socket.send, socket.socket.sendmsg, socket.socket.recv, socket.socket.recvmsg
_EXTENDED_ERR = struct.Struct("IBBBBII")


class RealtimeToMonotonic:
    """Converts kernel CLOCK_REALTIME stamps to CLOCK_MONOTONIC ns (offset resampled each second)."""

    def __init__(self) -> None:
        self._offset = 0
        self._sampled_at = -1 << 62

    def _sample(self) -> None:
        best = None
        for _ in range(5):                     # the tightest bracket of five samples
            m0 = time.monotonic_ns()
            r = time.clock_gettime_ns(time.CLOCK_REALTIME)
            m1 = time.monotonic_ns()
            if best is None or m1 - m0 < best[0]:
                best = (m1 - m0, r - (m0 + m1) // 2)
        self._offset = best[1]
        self._sampled_at = time.monotonic_ns()

    def __call__(self, cmsg_data: bytes) -> int:
        if time.monotonic_ns() - self._sampled_at > 1_000_000_000:
            self._sample()
        sec, nsec = _TIMESPEC.unpack_from(cmsg_data)
        return sec * 1_000_000_000 + nsec - self._offset


to_monotonic = RealtimeToMonotonic()


@dataclass
class TxStamp:
    """When the write carrying a frame left: user space right after ``send``, and the kernel's."""
    user_ns: int = 0
    kernel_ns: int = 0

    @property
    def best_ns(self) -> int:
        return self.kernel_ns or self.user_ns


@dataclass(frozen=True)
class Support:
    rx: bool
    tx: bool


def probe() -> Support:
    """Whether this kernel gives RX and TX software stamps on a loopback TCP connection.

    The kernel turns stamping on for the whole stack lazily (a static key flipped by deferred
    work) when the first socket asks: the first segments may go unstamped, hence a few tries.
    """
    rx = tx = False
    try:
        with socket.socket() as lst:
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            with socket.create_connection(lst.getsockname(), timeout=1.0) as client:
                server, _ = lst.accept()
                with server:
                    for s in (server, client):
                        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOCKET_FLAGS)
                    server.setblocking(False)
                    deadline = time.monotonic() + 0.5
                    while time.monotonic() < deadline and not (rx and tx):
                        server.sendmsg([b"probe"], TX_CMSG)
                        _, anc, _, _ = client.recvmsg(16, RX_SPACE)
                        rx = rx or any(t == SO_TIMESTAMPING for _, t, _ in anc)
                        try:
                            _, anc, _, _ = server.recvmsg(0, ERRQ_SPACE, MSG_ERRQUEUE)
                            tx = tx or any(t == SO_TIMESTAMPING for _, t, _ in anc)
                        except BlockingIOError:
                            pass
                        time.sleep(0.001)
    except OSError:
        pass
    return Support(rx, tx)


class StampingSocket(socket.socket):
    """An accepted connection that stamps what it reads and, on request, its next write."""
    __slots__ = ("_bytes_out", "_tx_unconfirmed", "_tx_waiting", "kernel_rx", "kernel_tx", "rx_ns", "tag")

    def setup(self, tag: str, support: Support) -> None:
        self.tag = tag
        self.rx_ns = 0                          # kernel stamp of the last read, monotonic ns (0: none)
        self.kernel_rx = support.rx
        self.kernel_tx = support.tx
        self._tx_waiting: list[TxStamp] = []          # stamps the next write fills
        # per stamped write: (offset of its last byte, its stamps), waiting for the kernel's stamp
        self._tx_unconfirmed: list[tuple[int, list[TxStamp]]] = []
        self._bytes_out = 0                     # bytes written since OPT_ID was set (the kernel's count)
        if support.rx or support.tx:
            try:
                # set here, on the connection, so the kernel counts its bytes from now on (the
                # listener's options, inherited, carry no OPT_ID)
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, CONNECTION_FLAGS)
            except OSError:
                self.kernel_rx = self.kernel_tx = False

    def stamp_next_write(self, stamp: TxStamp) -> None:
        """Fill ``stamp`` when the next write on this socket goes out."""
        self._tx_waiting.append(stamp)

    # --- asyncio's transport calls these ------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._tx_unconfirmed:
            self.collect_tx_stamps()
        if not self.kernel_rx:
            return _recv(self, bufsize, flags)
        data, anc, _, _ = _recvmsg(self, bufsize, RX_SPACE, flags)
        for _level, kind, payload in anc:
            if kind == SO_TIMESTAMPING:
                self.rx_ns = to_monotonic(payload)
        return data

    def send(self, data, flags: int = 0) -> int:
        if not self._tx_waiting:            # every write but a race's marked ones: a check and a count
            n = _send(self, data, flags)
            self._bytes_out += n
            return n
        n = _sendmsg(self, [data], TX_CMSG, flags) if self.kernel_tx else _send(self, data, flags)
        self._sent_stamped(n)
        return n

    def sendmsg(self, buffers, ancdata=(), flags: int = 0, address=None) -> int:
        if not self._tx_waiting or ancdata:
            n = _sendmsg(self, buffers, ancdata, flags, *(() if address is None else (address,)))
            self._bytes_out += n
            return n
        n = _sendmsg(self, buffers, TX_CMSG if self.kernel_tx else (), flags)
        self._sent_stamped(n)
        return n

    def _sent_stamped(self, n: int) -> None:
        now = time.monotonic_ns()
        self._bytes_out += n
        waiting, self._tx_waiting = self._tx_waiting, []
        for stamp in waiting:
            stamp.user_ns = now
        if self.kernel_tx and n > 0:
            self._tx_unconfirmed.append(((self._bytes_out - 1) & 0xFFFFFFFF, waiting))
            self.collect_tx_stamps()

    def collect_tx_stamps(self) -> None:
        """Read the kernel's TX stamps off the error queue (loopback: there right after ``send``).

        A stamp still missing (the packet waited for the peer's window) is read by a later call:
        the next read or write, or ``collect`` before a report.
        """
        while self._tx_unconfirmed:
            try:
                _, anc, _, _ = _recvmsg(self, 0, ERRQ_SPACE, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._tx_unconfirmed.clear()
                return
            kernel_ns, key = 0, None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                    kernel_ns = to_monotonic(payload)
                elif (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                    _errno, origin, _type, _code, _pad, info, data = _EXTENDED_ERR.unpack_from(payload)
                    if origin == SO_EE_ORIGIN_TIMESTAMPING and info == SCM_TSTAMP_SND:
                        key = data
            if not kernel_ns or key is None:
                continue
            # writes before the stamped byte whose stamp never came (merged into the same packet)
            # keep their user-space stamps; the write that ends at that byte gets the kernel's
            while self._tx_unconfirmed and _before(self._tx_unconfirmed[0][0], key):
                self._tx_unconfirmed.pop(0)
            if self._tx_unconfirmed and self._tx_unconfirmed[0][0] == key:
                for stamp in self._tx_unconfirmed.pop(0)[1]:
                    stamp.kernel_ns = kernel_ns


def _before(a: int, b: int) -> bool:
    """``a`` comes before ``b`` as 32-bit byte offsets (they wrap after 4 GiB)."""
    return 0 < ((b - a) & 0xFFFFFFFF) < 0x80000000


_accepted: weakref.WeakValueDictionary[int, StampingSocket] = weakref.WeakValueDictionary()


class StampingListener(socket.socket):
    """A listening socket whose connections are ``StampingSocket``s carrying the listener's tag."""
    __slots__ = ("support", "tag")

    def configure(self, tag: str, support: Support) -> StampingListener:
        self.tag = tag
        self.support = support
        return self

    def accept(self) -> tuple[StampingSocket, object]:
        fd, addr = self._accept()
        sock = StampingSocket(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        sock.setup(self.tag, self.support)
        _accepted[fd] = sock
        return sock, addr


def listen(host: str, port: int, tag: str, support: Support, backlog: int = 128) -> StampingListener:
    """A bound, listening ``StampingListener`` (SO_REUSEADDR, as aiohttp's TCPSite sets it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = StampingListener(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if support.rx or support.tx:
            # Held by the listener for the server's life, the kernel keeps stamping on (it turns
            # it on lazily for the first socket that asks); connections inherit the option.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOCKET_FLAGS)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock.configure(tag, support)


def socket_of(transport) -> StampingSocket | None:
    """The ``StampingSocket`` behind an asyncio transport, or None (closed, or not ours)."""
    if transport is None:
        return None
    wrapped = transport.get_extra_info("socket")
    if wrapped is None:
        return None
    try:
        fd = wrapped.fileno()
    except OSError:
        return None
    sock = _accepted.get(fd)
    return sock if sock is not None and sock.fileno() == fd else None
