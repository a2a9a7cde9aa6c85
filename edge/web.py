"""A small live page for a headless device (stdlib http.server): the annotated stream and the reading.

    >>> from edge.hub import FrameHub
    >>> from edge.web import WebServer
    >>> hub = FrameHub()
    >>> server = WebServer("127.0.0.1", 0, hub).start()     # 0: a free port; then hub.publish(bgr, record)
    >>> server.url
    'http://127.0.0.1:.../'
    >>> server.stop()

Routes: `/` the page, `/stream.mjpg` the annotated frames as MJPEG, `/frame.jpg` the latest one,
`/raw.mjpg` and `/raw.jpg` the same frames with nothing drawn on them (for another device to read:
the annotations' labels are digits too), `/latest.json` the latest reading (the same record
`mnist-edge camera` prints; `null` before the first frame). The camera loop hands frames over
through a one-slot `edge.hub.FrameHub`: it never waits for a client, slow clients skip frames, and a frame is
JPEG-encoded at most once, only when someone watches. With a password (camera: PASSWORD_ENV), every
route asks for it by HTTP Basic authentication, any user name: plain HTTP, so it keeps out others on
the network, not one who can read its traffic.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import select
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge.errors import UserError
from edge.hub import FrameHub
from edge.page import render_page

log = logging.getLogger(__name__)

BOUNDARY = "mnistedgeframe"
PASSWORD_ENV = "MNIST_EDGE_SERVE_PASSWORD"  # camera --serve's password, when set: never a flag, which
#   any user of the machine could read in the process list
CLIENT_TIMEOUT_S = 10.0  # a request not sent whole, a frame not taken, or a stream with nothing new in
# this long ends that connection, so idle or stalled clients cannot hold the stream slots or threads
STREAM_SNDBUF = 128 * 1024  # a stream's kernel send buffer (Linux doubles it): a viewer that stops
#   reading fills it in a few frames, and then the socket timeout drops it (with the default, up to
#   ~4 MB, dozens of frames were queued first: a stalled viewer held its slot for minutes at 2 fps)
MAX_CLIENTS = 32  # open connections at once (a thread each); more are closed as they come, so a flood
#   of clients that send nothing, or a byte at a time, cannot exhaust a Pi's threads


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.client_timeout  # socket timeout: half-sent requests, stalled readers
        super().setup()

    def handle_one_request(self) -> None:
        """The request (line and headers) must arrive whole within client_timeout: the socket timeout
        alone is per read, which a client sending a byte every few seconds never trips."""
        self.server.arm(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.disarm(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.disarm(self.connection)  # the request is in: what follows is the response
        return ok

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        """No password, or the request's Basic credentials carry it (whatever the user name)."""
        if not self.server.password:
            return True
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return False
        return scheme.lower() == "basic" and hmac.compare_digest(given, self.server.password)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path, _, query = self.path.partition("?")
        hub = self.server.hub
        if not self._authorized():
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="mnist-edge", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.write(b"login required\n")
            return
        if path in ("/", "/index.html"):
            video = "video=0" not in query.split("&")
            page = render_page(hub.latest(), self.server.title, video)
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        elif path == "/latest.json":
            self._send(HTTPStatus.OK, json.dumps(hub.latest()).encode(), "application/json")
        elif path in ("/frame.jpg", "/raw.jpg"):
            got = hub.wait_jpeg(0, timeout=0, raw=path == "/raw.jpg")
            if got is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, got[1], "image/jpeg")
        elif path in ("/stream.mjpg", "/raw.mjpg"):
            self._stream(raw=path == "/raw.mjpg")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _stream(self, raw: bool = False) -> None:
        if not self.server.streams.acquire(blocking=False):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n", "text/plain")
            return
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            # Each frame is followed at once by the next part's boundary and headers: a browser shows
            # a part only once the next one starts, and a finished folder sends no further frame.
            # So the parts carry no Content-Length; the boundary ends them.
            part = f"\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
            self.wfile.write(part[2:])
            seq, hub = 0, self.server.hub
            last = time.monotonic()
            while not hub.closed:
                got = hub.wait_jpeg(seq, timeout=min(1.0, self.server.client_timeout), raw=raw)
                if got is None:
                    if time.monotonic() - last > self.server.client_timeout or self._peer_closed():
                        break  # nothing new to send for a while, or the viewer left: free the slot
                    continue
                seq, jpeg = got
                self.wfile.write(jpeg + part)  # times out (socket timeout) if the viewer stops reading
                self.wfile.flush()
                last = time.monotonic()
        except (ConnectionError, TimeoutError) as e:
            log.debug("%s: stream ended (%s)", self.address_string(), e.__class__.__name__)
        finally:
            self.server.streams.release()

    def _peer_closed(self) -> bool:
        """True if the viewer closed its end (readable with nothing to read)."""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


def _cut(conn: socket.socket) -> None:
    """End a connection from our side: a handler blocked writing or reading it fails at once."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    block_on_close = False  # end_clients() does the bounded wait instead
    allow_reuse_address = True

    def __init__(self, address, hub: FrameHub, title: str, max_streams: int, client_timeout: float,
                 password: str | None = None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.hub, self.title, self.client_timeout = hub, title, client_timeout
        # as the bytes a browser sends (UTF-8; a variable that is not UTF-8, as its own bytes)
        self.password = password.encode("utf-8", "surrogateescape") if password else None
        self.streams = threading.BoundedSemaphore(max_streams)
        self._clients: dict[threading.Thread, socket.socket] = {}  # handler thread -> its connection
        self._clients_lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}  # connection -> when its request must be in

    def arm(self, conn: socket.socket) -> None:
        with self._clients_lock:
            self._deadlines[conn] = time.monotonic() + self.client_timeout

    def disarm(self, conn: socket.socket) -> None:
        with self._clients_lock:
            self._deadlines.pop(conn, None)

    def service_actions(self) -> None:
        """Run by serve_forever between polls (every 0.5 s): connections whose request is overdue are
        cut, and their handler threads end."""
        now = time.monotonic()
        with self._clients_lock:
            late = [c for c, t in self._deadlines.items() if t < now]
            for c in late:
                del self._deadlines[c]
        for conn in late:
            log.debug("a request not sent whole in %g s: connection cut", self.client_timeout)
            _cut(conn)

    def process_request(self, request, client_address) -> None:
        with self._clients_lock:
            full = len(self._clients) >= MAX_CLIENTS
        if full:
            log.debug("%s: %d connections open already: closed", client_address[0], MAX_CLIENTS)
            self.shutdown_request(request)
            return
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="mnist-edge-client", daemon=True)
        with self._clients_lock:
            self._clients[t] = request
        t.start()

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._clients_lock:
                self._clients.pop(threading.current_thread(), None)

    def end_clients(self, timeout: float) -> None:
        """Cut every open connection and wait up to `timeout` s for the handler threads to return.
        Python 3.11 aborts the whole process ("terminate called without an active exception") if it
        exits while a daemon thread is inside OpenCV (a stream's JPEG encoding), so they must end first."""
        with self._clients_lock:
            clients = dict(self._clients)
        for conn in clients.values():
            _cut(conn)
        end = time.monotonic() + timeout
        for t in clients:
            t.join(max(0.0, end - time.monotonic()))

    def handle_error(self, request, client_address) -> None:
        """A client that resets or times out is routine: one debug line, never a traceback on stderr."""
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, TimeoutError)):
            log.debug("%s: connection ended (%s)", client_address[0], e.__class__.__name__)
        else:
            log.warning("%s: request failed (%s: %s)", client_address[0], e.__class__.__name__, e)


class WebServer:
    """Serves a FrameHub on HOST:PORT from a background thread."""

    def __init__(self, host: str, port: int, hub: FrameHub, title: str = "", max_streams: int = 4,
                 client_timeout: float = CLIENT_TIMEOUT_S, password: str | None = None):
        self.hub = hub
        try:
            self.httpd = _Server((host, port), hub, title, max_streams, client_timeout, password or None)
        except OSError as e:
            raise UserError(f"--serve {host}:{port}: cannot listen there ({e.strerror or e})") from None
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mnist-edge-web",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end every stream, close the socket."""
        self.hub.close()
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.end_clients(timeout=5)
        self.httpd.server_close()


def loopback(host: str) -> bool:
    """Is `host` (as --serve gave it) reachable from this machine only?"""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_address(spec: str) -> tuple[str, int]:
    """'8080' | ':8080' | 'HOST:PORT' | '[::1]:8080' -> (host, port); the host defaults to 127.0.0.1."""
    s = spec.strip()
    host, sep, port = s.rpartition(":")
    if not sep:
        host, port = "", s
    if s.startswith("[") and s.endswith("]"):  # '[::1]': the address alone
        raise UserError(f"--serve {spec}: expected a port after the address, e.g. {s}:8080")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):  # '::1', '::1:8080', '::'
        raise UserError(f"--serve {spec}: an IPv6 address goes in brackets before its port, e.g. "
                        "[::1]:8080 ([::]:8080 to be seen from other machines)")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UserError(f"--serve {spec or repr(spec)}: expected HOST:PORT or PORT, e.g. 127.0.0.1:8080 "
                        "(0.0.0.0:8080 to be seen from other machines)")
    return host, int(port)
