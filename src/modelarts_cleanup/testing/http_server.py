"""HTTP for the local endpoint: a threading server on 127.0.0.1 that parses requests, hands
them to a backend and writes its answers (or resets the connection when it says so), run in a
background thread by a `Listener`."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

from .replies import Reply

_HANDSHAKE_TIMEOUT = 10.0


class Backend(Protocol):
    """What answers the requests."""

    def serve(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """The answer to one request; None resets the connection instead."""

    def pause(self, seconds: float) -> None:
        """Wait while an answer's body is held back."""


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that hands each request to its backend."""

    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 1024

    def __init__(self, backend: Backend) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Note a connection opening (add) or closing, so stopping can close them all."""
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def drop_connections(self) -> None:
        """Shut every open connection down (wakes handlers waiting for a keep-alive request)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (read timeout, reset) is business as usual here; anything else
        # is a bug in the fake and keeps the standard traceback on stderr.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Listener:
    """Serves a backend on a free loopback port from a background thread (HTTPS with an SSL
    context); stopping drops every open connection, keep-alive ones included."""

    def __init__(self, backend: Backend, ssl_context: ssl.SSLContext | None = None) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) while serving."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (`https://` with TLS); only once started."""
        if self.address is None:
            raise RuntimeError("the fake endpoint is not running: call start() first")
        host, port = self.address
        return f"{'http' if self._ssl_context is None else 'https'}://{host}:{port}"

    def start(self) -> None:
        """Bind to a free loopback port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the fake endpoint is already running")
        server = HttpServer(self._backend)
        if self._ssl_context is not None:
            # The handshake runs in each connection's own thread (the HTTP handler's setup), so a
            # client that fails it, or never starts it, cannot stall the accept loop.
            server.socket = self._ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits for the loop's next poll: a short one keeps teardown fast.
            kwargs={"poll_interval": 0.01},
            name=f"fake-modelarts-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None


_S = TypeVar("_S", bound="Startable")
_L = TypeVar("_L", bound="Served")


class Startable:
    """Something served that starts and stops, and is a context manager that does both."""

    def start(self: _S) -> _S:
        """Start serving."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Served(Startable):
    """A backend on its own `Listener` (`self._listener`, set by the subclass)."""

    _listener: Listener

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (`https://` with TLS); only once started."""
        return self._listener.url

    def start(self: _L) -> _L:
        """Bind to a free loopback port and serve in a background thread."""
        self._listener.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (keep-alive ones included)."""
        self._listener.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    # http.server writes headers and body separately: with Nagle on, each answer stalls ~40 ms.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "FakeModelArts"

    @property
    def _server(self) -> HttpServer:
        return cast("HttpServer", self.server)

    @property
    def _backend(self) -> Backend:
        return self._server.backend

    def setup(self) -> None:
        connection: socket.socket = self.request  # `self.connection` once super().setup() ran
        self._server.track(connection, add=True)
        if isinstance(connection, ssl.SSLSocket):
            try:
                connection.settimeout(_HANDSHAKE_TIMEOUT)
                connection.do_handshake()
                connection.settimeout(None)
            except OSError:  # ssl.SSLError included: the client refused our certificate
                self._server.track(connection, add=False)
                raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length", "0").strip()
        return self.rfile.read(int(length)) if length.isdigit() and int(length) > 0 else b""

    def _serve(self) -> None:
        reply = self._backend.serve(
            self.command, self.path, dict(self.headers.items()), self._read_body()
        )
        if reply is None:
            self._reset()
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()  # the headers go out now, whatever the body does
        if self.command == "HEAD":
            return
        for pause, piece in reply.paced():
            if pause > 0:
                self._backend.pause(pause)
            self.wfile.write(piece)

    def _reset(self) -> None:
        # Linger 0 turns the close into an RST. Closing here, before socketserver's own
        # shutdown(SHUT_WR), keeps a FIN from going out first and looking like a clean EOF.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
