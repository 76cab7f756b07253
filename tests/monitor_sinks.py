"""A loopback JSON webhook for alert tests: what apprise's ``json://`` posts, kept in order.

    with WebhookSink() as sink:                 # WebhookSink(hang_s=30, hang_after=1): answers once, then hangs
        url = sink.apprise_url                  # json://127.0.0.1:PORT/alerts
        sink.wait_for(lambda msgs: len(msgs) >= 2, timeout_s=10)
        sink.messages                           # [{"title": ..., "message": ..., "type": ...}, ...]
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookSink:
    def __init__(self, hang_s: float = 0.0, hang_after: int = 0) -> None:
        self.hang_s = hang_s
        self.hang_after = hang_after          # requests answered at once before it starts hanging
        self.messages: list[dict] = []
        self.requests = 0                  # requests received, answered or not
        self._cond = threading.Condition()
        self._release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._cond:
                    sink.requests += 1
                    nth = sink.requests
                    sink._cond.notify_all()
                if sink.hang_s and nth > sink.hang_after:
                    sink._release.wait(sink.hang_s)      # a dead-slow endpoint: answers late, if at all
                with sink._cond:
                    sink.messages.append(json.loads(body))
                    sink._cond.notify_all()
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass                     # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(list(self.messages)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_requests(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.requests < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def titles(self) -> list[str]:
        return [m.get("title", "") for m in self.messages]

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
