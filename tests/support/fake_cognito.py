"""A loopback server that answers the Cognito JSON protocol with canned replies.

For tests of what the emulated pool never does: job-wide errors (access
denied, expired credentials), arbitrary status codes, a hung-up connection.
Nothing stands behind it; it binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast

from migrate.sandbox import JSON_CONTENT_TYPE, TARGET_PREFIX


class FakeCognito:
    """Answers each request with ``replies[operation]``, else ``status`` + ``body``.

    ``raw`` bytes, when set, go out instead of ``body`` (a proxy's or a portal's
    answer); ``request_id`` False leaves out the x-amzn-RequestId header every
    AWS answer has; ``hang_up`` closes every connection without a reply. Each
    request is recorded in ``requests`` as ``{"target": X-Amz-Target, "body":
    parsed JSON}``. The fields may be changed while it serves; it serves from
    construction until `stop` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        *,
        status: int = 400,
        body: Mapping[str, Any] | None = None,
        replies: Mapping[str, tuple[int, Mapping[str, Any]]] | None = None,
    ) -> None:
        self.status = status
        self.body: Mapping[str, Any] = body or {}
        self.replies = dict(replies or {})
        self.raw: bytes | None = None
        self.request_id = True
        self.hang_up = False
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def reset(
        self, *, status: int = 400, body: Mapping[str, Any] | None = None
    ) -> None:
        """Back to answering ``status`` with ``body`` for all, nothing recorded."""
        with self._lock:
            self.status, self.body, self.hang_up = status, body or {}, False
            self.raw, self.request_id = None, True
            self.replies.clear()
            self.requests.clear()

    def requests_except(self, operation: str) -> list[dict[str, Any]]:
        """The requests recorded so far for other operations than ``operation``."""
        with self._lock:
            return [
                r for r in self.requests if r["target"] != TARGET_PREFIX + operation
            ]

    def _answer(self, target: str, body: bytes) -> tuple[int, bytes, bool] | None:
        """(status, body, whether to send a request id), or None: hang up."""
        with self._lock:
            self.requests.append({"target": target, "body": json.loads(body or b"{}")})
            if self.hang_up:
                return None
            operation = target.removeprefix(TARGET_PREFIX)
            if operation in self.replies:
                status, payload = self.replies[operation]
                return status, json.dumps(payload).encode(), self.request_id
            if self.raw is not None:
                return self.status, self.raw, self.request_id
            return self.status, json.dumps(self.body).encode(), self.request_id


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeCognito) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fake = cast(_Server, self.server).fake
        target = self.headers.get("X-Amz-Target") or ""
        answer = fake._answer(target, self.rfile.read(length))
        if answer is None:
            self.close_connection = True
            return
        status, payload, request_id = answer
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        if request_id:
            self.send_header("x-amzn-RequestId", "0e5e7a4c-loopback")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass
