"""The API path of a sandboxed Claude Code: a reverse proxy in our process that adds the key.

Claude Code needs the Messages API; the commands it runs (Bash) share its user and its
environment, so a key in its environment is a key they can read (`env`, `/proc/PID/environ`).
So the key never enters the sandbox: Claude Code gets ``ANTHROPIC_BASE_URL`` pointing at this
proxy and a placeholder key; the proxy drops whatever credentials the request carries, adds
the real ones (``x-api-key`` or ``Authorization: Bearer``), forwards the request to the real
base URL (https or http) and streams the answer back unchanged.

- network on: the proxy listens on 127.0.0.1 (the sandbox shares the host's network);
- network off (``--unshare-net``): the proxy listens on a Unix socket in a directory bound into
  the sandbox, and :data:`INNER_RELAY` (run inside, with our Python) listens on the sandbox's
  own loopback and pipes each connection to that socket. Only the API is reachable.

While a call runs, any local process that finds the proxy's port can use the API through it
(as it could with a key it can read); it cannot read the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

PLACEHOLDER_KEY = "sk-ant-plan-executor-proxy-adds-the-key"
"""What Claude Code holds instead of the key (it refuses to start without one)."""
DEFAULT_BASE_URL = "https://api.anthropic.com"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
CREDENTIAL_HEADERS = {"x-api-key", "authorization"}

INNER_RELAY = r"""
import socket, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
target = sys.argv[2]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, int(port)))
listener.listen(64)
def pump(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
while True:
    inside, _ = listener.accept()
    outside = socket.socket(socket.AF_UNIX)
    try:
        outside.connect(target)
    except OSError:
        inside.close()
        continue
    threading.Thread(target=pump, args=(inside, outside), daemon=True).start()
    threading.Thread(target=pump, args=(outside, inside), daemon=True).start()
"""
"""Run inside a network-less sandbox: its loopback port → the proxy's Unix socket."""
INNER_PORT = 8787


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-stream is not our error


class _TCPHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class ApiProxy:
    """Forwards every request to ``upstream`` with the real credentials; see the module doc."""

    def __init__(
        self,
        upstream: str | None,
        *,
        api_key: str | None,
        auth_token: str | None,
        unix_socket: Path | None = None,
    ) -> None:
        self.upstream = (upstream or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key
        self.auth_token = auth_token
        self.unix_socket = unix_socket
        self.requests = 0
        self.faults: dict[str, int] = {}
        """Fault kind (`429`, `529`, `500`, `dropped`, `timeout`) → count, as the loop's."""
        self.fatal: str | None = None
        """Set by the first answer no retry can fix (401/403/402, a spend limit)."""
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=httpx.Timeout(30.0, read=None), follow_redirects=False)
        handler = _handler(self)
        self.server: socketserver.BaseServer
        if unix_socket is not None:
            self.server = _UnixHTTPServer(str(unix_socket), handler)
            os.chmod(unix_socket, 0o777)  # the sandbox's uid 1000 connects to it
        else:
            self.server = _TCPHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="api-proxy",
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        """What Claude Code is told, when it shares our network (TCP proxy)."""
        if self.unix_socket is not None:
            return f"http://127.0.0.1:{INNER_PORT}"
        address = self.server.server_address
        assert isinstance(address, tuple)  # a TCP server's (host, port)
        host, port = address[:2]
        return f"http://{host}:{port}"

    def note_fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def note_error(self, status: int, body: bytes) -> None:
        """Count an error answer; remember it as fatal when no retry can fix it (the key is
        refused, a spend limit or billing problem), like the anthropic runtime's guard."""
        from tasks.agent.loop import FATAL_ERROR_CODES

        if status in (408, 409, 429) or status >= 500:
            self.note_fault(str(status))
        try:
            error = json.loads(body).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code = (error.get("details") or {}).get("error_code") if isinstance(error, dict) else None
        if status in (401, 402, 403) or code in FATAL_ERROR_CODES:
            message = error.get("message") if isinstance(error, dict) else None
            with self.lock:
                self.fatal = (
                    self.fatal
                    or (
                        f"the API answered {status} {error.get('type', '')}: {message or ''}"
                        + (f" ({code})" if code else "")
                    ).strip()
                )

    def credentials(self) -> dict[str, str]:
        if self.api_key:
            return {"x-api-key": self.api_key}
        if self.auth_token:
            return {"authorization": f"Bearer {self.auth_token}"}
        return {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()
        if self.unix_socket is not None:
            with contextlib.suppress(OSError):
                self.unix_socket.unlink()

    def __enter__(self) -> ApiProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _handler(proxy: ApiProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def address_string(self) -> str:  # a Unix socket's peer has no host
            return "sandbox"

        def _forward(self) -> None:
            body = self._body()
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in HOP_BY_HOP | CREDENTIAL_HEADERS
            }
            headers.update(proxy.credentials())
            request = proxy.client.build_request(
                self.command, proxy.upstream + self.path, headers=headers, content=body
            )
            try:
                response = proxy.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                proxy.note_fault(
                    "timeout" if isinstance(exc, httpx.TimeoutException) else "dropped"
                )
                self._fail(502, f"the API proxy could not reach {proxy.upstream}: {exc!r}")
                return
            proxy.requests += 1
            if response.status_code >= 400:
                # Small error bodies are read whole: the proxy notes what failed and why, so the
                # call can end at once where no retry can help (Claude Code would retry).
                response.read()
                proxy.note_error(response.status_code, response.content)
            try:
                self.send_response(response.status_code)
                for name, value in response.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                # No length: the body is streamed as it comes and ends when we close.
                self.send_header("connection", "close")
                self.end_headers()
                for chunk in response.iter_raw():
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (OSError, httpx.HTTPError):
                pass  # the client hung up, or the upstream broke mid-stream: the client sees it
            finally:
                response.close()
                self.close_connection = True

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def _fail(self, status: int, message: str) -> None:
            payload = (
                '{"type":"error","error":{"type":"api_error","message":'
                + _json_string(message)
                + "}}"
            ).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

    return Handler


def _json_string(text: str) -> str:
    return json.dumps(text)
