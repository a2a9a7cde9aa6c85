"""The live page of `mnist-edge camera --serve`: a real subprocess, urllib, and headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.synthetic import make_frame
from edge import web
from edge.hub import FrameHub
from edge.web import WebServer, parse_address

CHROMIUM = "/usr/bin/chromium"


def _need_chromium() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI must install it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")


def get(url: str, timeout: float = 10, headers: dict | None = None) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


class Camera:
    """`mnist-edge camera --serve 127.0.0.1:0` in the background; the URL comes from its log."""

    def __init__(self, *args: str):
        exe = Path(sys.executable).parent / "mnist-edge"
        self.proc = subprocess.Popen([str(exe), "camera", "--serve", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self.err: list[str] = []
        urls: queue.Queue = queue.Queue()

        def pump():
            for line in self.proc.stderr:
                self.err.append(line)
                m = re.search(r"serving the live page on (http://\S+)", line)
                if m:
                    urls.put(m.group(1))
            urls.put(None)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        self.url = urls.get(timeout=120)
        assert self.url, "".join(self.err)[-3000:]

    def wait_for_frame(self, n: int, timeout: float = 60, headers: dict | None = None) -> dict:
        """/latest.json once it shows frame n."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            latest = json.loads(get(self.url + "latest.json", headers=headers)[2])
            if latest and latest["frame"] >= n:
                return latest
            time.sleep(0.1)
        raise AssertionError(f"frame {n} never showed up: {''.join(self.err)[-2000:]}")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        out = self.proc.stdout.read()  # stderr has one reader only: the pump thread
        self._pump.join(timeout=10)
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def served(tmp_path_factory, exported, mnist):
    """A folder of 3 frames served; the last one (frame 2) has the digits 4, 0, 7."""
    folder = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(11)
    ys = mnist.y_test
    picks = [[int(np.flatnonzero(ys == d)[0])] for d in (1, 2)]
    picks.append([int(np.flatnonzero(ys == d)[3]) for d in (4, 0, 7)])
    for i, idx in enumerate(picks):
        frame, _ = make_frame(list(mnist.x_test[idx]), rng)
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    cam = Camera("--source", str(folder), "--model", str(exported[0] / "model_int8.tflite"),
                 "--min-confidence", "0")
    try:
        latest = cam.wait_for_frame(2)
        yield cam, latest, folder
    finally:
        code, out = cam.stop()
        assert code == 0, "".join(cam.err)[-2000:]


def test_latest_json_frame_and_stream(served):
    cam, latest, _ = served
    status, ctype, body = get(cam.url + "latest.json")
    assert status == 200 and ctype == "application/json"
    assert json.loads(body) == latest
    assert latest["frame"] == 2 and latest["file"] == "2.png" and len(latest["digits"]) == 3
    assert latest["reading"] == "".join(str(d["digit"]) for d in latest["digits"])
    status, ctype, body = get(cam.url + "frame.jpg")
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and ctype == "image/jpeg" and img.shape == (480, 640, 3)
    with urllib.request.urlopen(cam.url + "stream.mjpg", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        head = r.read(200)  # the first part's headers, then the start of a JPEG
        assert head.startswith(b"--") and b"Content-Type: image/jpeg\r\n\r\n\xff\xd8" in head
    assert get(cam.url + "nope")[0] == 404


def test_raw_frames_carry_no_annotations_and_read_as_captured(served, tmp_path):
    """/raw.jpg and /raw.mjpg serve the frame as captured: another device reading the annotated
    stream read its boxes' labels and the big reading as digits too ("026856" for a clip of 2026)."""
    from tests.conftest import REPO, cli

    cam, _, folder = served
    captured = cv2.imread(str(folder / "2.png"))

    def drawn_on(jpeg: bytes) -> float:  # share of pixels far from the captured frame
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        return float((np.abs(img.astype(int) - captured).max(axis=2) > 80).mean())

    status, ctype, raw = get(cam.url + "raw.jpg")
    assert status == 200 and ctype == "image/jpeg" and drawn_on(raw) < 0.0005
    assert drawn_on(get(cam.url + "frame.jpg")[2]) > 0.002  # the annotated one has labels drawn
    with urllib.request.urlopen(cam.url + "raw.mjpg", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        body = b""
        while body.count(b"--" + web.BOUNDARY.encode()) < 2:  # a whole part
            body += r.read1(65536)
    part = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--" + web.BOUNDARY.encode())[0]
    assert drawn_on(part) < 0.0005
    (tmp_path / "raw.jpg").write_bytes(raw)
    r = cli("predict", "--json", "--model", str(REPO / "models" / "model_int8.tflite"),
            str(tmp_path / "raw.jpg"))
    assert r.returncode == 0 and json.loads(r.stdout)["reading"] == "407", r.stdout + r.stderr[-500:]


def chromium_dom(url: str, profile: Path, *timing: str) -> str:
    cmd = [_need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *timing, "--dump-dom", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    return r.stdout


def shown(dom: str) -> dict:
    """What the page's script put in the DOM."""
    reading = re.search(r'<div id="reading" data-frame="(\d*)">([^<]*)</div>', dom)
    status = re.search(r'<div id="status">([^<]*)</div>', dom)
    img = re.search(r'<img id="stream" src="/stream.mjpg" data-size="([^"]*)"', dom)
    assert reading and status, dom
    return {"frame": reading.group(1), "reading": reading.group(2), "status": status.group(1),
            "stream": img.group(1) if img else None}


def test_page_in_headless_chromium(served, tmp_path):
    cam, latest, _ = served
    # The MJPEG stream never ends, so virtual time (which waits for pending fetches) would never
    # run out; the DOM is dumped once the page has loaded, i.e. its first stream frame has.
    dom = chromium_dom(cam.url, tmp_path / "profile", "--timeout=60000")  # 15 s once ran out under load
    page = shown(dom)
    assert page["frame"] == "2" and page["reading"] == (latest["reading"] or "\u2014")
    assert page["status"].startswith("frame 2, ") and page["status"].endswith(", 2.png")
    assert page["stream"] == "640x480", "the browser did not decode a frame of the MJPEG stream"


@pytest.mark.parametrize("password", [None, "pa:ss wörd"])
def test_page_polls_latest_json(tmp_path, password):
    """Served at frame 0; frame 1 is published only after the page was served, so only the
    page's own polling of /latest.json can bring it into the DOM. With a password, the page is
    opened as http://user:password@host/, and its script's fetches must carry the login too."""
    record = {"t": 0.0, "frame": 0, "reading": "3", "ms": {"total": 1.0},
              "digits": [{"digit": 3, "confidence": 0.9, "box": [1, 2, 3, 4]}]}
    hub = FrameHub()
    hub.publish(np.zeros((48, 64, 3), np.uint8), record)
    served_once = threading.Event()
    latest = hub.latest

    def latest_then_next():
        out = latest()
        if not served_once.is_set():
            served_once.set()
            hub.publish(None, {**record, "frame": 1, "reading": "12",
                               "found_by": "segmentation: noisy frame", "digits": [
                {"digit": 1, "confidence": 0.8, "box": [0, 0, 1, 1]},
                {"digit": 2, "confidence": 0.7, "box": [2, 0, 1, 1]}]})
        return out

    hub.latest = latest_then_next
    server = WebServer("127.0.0.1", 0, hub, password=password).start()
    url = server.url if password is None else \
        server.url.replace("//", f"//viewer:{urllib.parse.quote(password, safe='')}@")
    try:
        dom = chromium_dom(url + "?video=0", tmp_path / "profile", "--virtual-time-budget=5000")
    finally:
        server.stop()
    assert served_once.is_set()
    page = shown(dom)
    assert page == {"frame": "1", "reading": "12", "status": "frame 1, 1.0 ms, segmentation: noisy frame",
                    "stream": None}  # a frame the locator was not used on says why
    assert '<div id="details">1 (80%)  2 (70%)</div>' in dom


@pytest.mark.parametrize("name", ["<!--<script>a.png", "</script><b>x.png", "a&amp;b \u2028.png"])
def test_a_file_name_inlined_in_the_page_cannot_stop_its_script(tmp_path, name):
    """The served reading is inlined in the page's <script>; a frame's file name is the user's, and
    "<!--<script" in it would hide the real end tag from the HTML parser, so the script never ran."""
    hub = FrameHub()
    hub.publish(np.zeros((48, 64, 3), np.uint8), {"t": 0.0, "frame": 7, "reading": "5", "ms": {"total": 1.0},
                                                  "file": name, "digits": []})
    server = WebServer("127.0.0.1", 0, hub).start()
    try:
        dom = chromium_dom(server.url + "?video=0", tmp_path / "profile", "--virtual-time-budget=3000")
    finally:
        server.stop()
    page = shown(dom)
    assert page["reading"] == "5" and page["frame"] == "7", dom[-1500:]
    assert page["status"] == f"frame 7, 1.0 ms, {html.escape(name, quote=False)}", page  # as the DOM has it


def test_sigterm_stops_the_server_and_exits_0(served, exported, tmp_path):
    _, _, folder = served
    (tmp_path / "one").mkdir()
    shutil.copy(folder / "0.png", tmp_path / "one" / "0.png")
    other = Camera("--source", str(tmp_path / "one"), "--model", str(exported[0] / "model_int8.tflite"))
    other.wait_for_frame(0)
    viewer = urllib.request.urlopen(other.url + "stream.mjpg", timeout=10)  # an open stream
    viewer.read1(100)
    t0 = time.monotonic()
    code, out = other.stop(signal.SIGTERM)
    assert code == 0 and time.monotonic() - t0 < 10, "".join(other.err)[-2000:]
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [0]
    assert "SIGTERM: stopping" in "".join(other.err)
    viewer.close()
    host, port = parse_address(other.url.split("//")[1].rstrip("/"))
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=2):
        pass


def test_max_frames_stops_reading_and_says_so_while_the_page_stays(served, exported):
    _, _, folder = served  # 3 frames
    cam = Camera("--source", str(folder), "--model", str(exported[0] / "model_int8.tflite"),
                 "--max-frames", "2")
    try:
        assert cam.wait_for_frame(1)["frame"] == 1
        end = time.monotonic() + 30
        while not any("--max-frames 2 reached; still serving until Ctrl-C" in e for e in cam.err):
            assert time.monotonic() < end and cam.proc.poll() is None, "".join(cam.err)[-2000:]
            time.sleep(0.1)
        assert not any("no more frames" in e for e in cam.err)  # the folder had a third frame
        assert json.loads(get(cam.url + "latest.json")[2])["frame"] == 1  # and it was not read
    finally:
        code, out = cam.stop()
    assert code == 0 and [json.loads(line)["frame"] for line in out.splitlines()] == [0, 1]


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_with_a_password_every_route_asks_for_it():
    hub = FrameHub()
    hub.publish(np.zeros((48, 64, 3), np.uint8), {"frame": 0, "reading": "7"})
    server = WebServer("127.0.0.1", 0, hub, password="s3cret:x").start()
    try:
        for route in ("", "latest.json", "frame.jpg", "raw.jpg", "stream.mjpg", "raw.mjpg", "nope"):
            for headers in (None, basic("me", "wrong"), basic("me", "s3cret"), {"Authorization": "Basic %%%"},
                            {"Authorization": "Bearer s3cret:x"}):
                status, _, body = get(server.url + route, headers=headers)
                assert status == 401 and body == b"login required\n", (route, headers, status)
        with pytest.raises(urllib.error.HTTPError) as e:  # what makes a browser ask for the password
            urllib.request.urlopen(server.url, timeout=10)
        assert e.value.headers["WWW-Authenticate"] == 'Basic realm="mnist-edge", charset="UTF-8"'
        assert get(server.url + "latest.json", headers=basic("anyone", "s3cret:x"))[2] == \
            b'{"frame": 0, "reading": "7"}'  # any user name, and a password may hold a colon
        assert get(server.url + "frame.jpg", headers=basic("", "s3cret:x"))[:2] == (200, "image/jpeg")
        assert get(server.url + "nope", headers=basic("me", "s3cret:x"))[0] == 404
    finally:
        server.stop()


def test_camera_serves_with_the_password_from_its_variable_and_warns_when_open_without(served, exported,
                                                                                       monkeypatch):
    from tests.conftest import cli

    _, _, folder = served
    model = str(exported[0] / "model_int8.tflite")
    monkeypatch.setenv(web.PASSWORD_ENV, "s3cret")
    cam = Camera("--source", str(folder), "--model", model)
    try:
        assert get(cam.url + "latest.json")[0] == 401
        assert cam.wait_for_frame(2, headers=basic("me", "s3cret"))["reading"]
        log = "".join(cam.err)
        assert f"(password: ${web.PASSWORD_ENV})" in log and "s3cret" not in log and "open to" not in log
        monkeypatch.delenv(web.PASSWORD_ENV)  # another device reads the stream with the login in its URL
        for login, code in (("me:s3cret", 0), ("me:wrong", 2)):
            url = cam.url.replace("//", f"//{login}@") + "raw.mjpg"
            r = cli("camera", "--source", url, "--max-frames", "1", "--model", model, timeout=120)
            assert r.returncode == code, r.stderr[-2000:]
            assert login.split(":")[1] not in r.stdout + r.stderr and "//me:***@" in r.stderr  # never shown
        assert json.loads(r.stdout or "{}") == {} and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "OpenCV cannot open this stream (it refused the login in the URL: HTTP 401)" in r.stderr
        r = cli("camera", "--source", cam.url + "raw.mjpg", "--max-frames", "1", "--model", model,
                timeout=120)
        assert r.returncode == 2 and "(it asks for a login: HTTP 401; put it in the URL" in r.stderr, r.stderr
    finally:
        assert cam.stop()[0] == 0
    cam = Camera("--source", str(folder), "--model", model, "--serve", "0.0.0.0:0")
    try:
        assert get(cam.url.replace("0.0.0.0", "127.0.0.1") + "latest.json")[0] == 200
    finally:
        assert cam.stop()[0] == 0
    warned = [ln for ln in cam.err if "WARNING" in ln]
    assert len(warned) == 1 and "the live page is open to anyone who can reach http://0.0.0.0:" in warned[0] \
        and f"set {web.PASSWORD_ENV} to ask for a password" in warned[0], cam.err


def test_hub_bounds_viewers_and_closes_them():
    hub = FrameHub()
    server = WebServer("127.0.0.1", 0, hub, max_streams=2).start()
    hub.publish(np.zeros((48, 64, 3), np.uint8), {"frame": 0, "reading": ""})
    viewers = [urllib.request.urlopen(server.url + "stream.mjpg", timeout=10) for _ in range(2)]
    for v in viewers:
        assert v.read1(200).startswith(b"--")
    assert get(server.url + "stream.mjpg")[0] == 503  # a third viewer is turned away
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 5
    for v in viewers:  # each open stream ends (EOF), no thread left blocking
        deadline = time.monotonic() + 5
        while v.read1(65536) and time.monotonic() < deadline:
            pass
        v.close()


def test_stop_leaves_no_client_thread_behind():
    """A viewer that stops reading leaves its handler blocked in a write; stop() must end that thread.
    A thread still running when Python exits (e.g. inside OpenCV's JPEG encoder) aborts the process."""
    before = set(threading.enumerate())
    hub = FrameHub(jpeg_quality=100)
    server = WebServer("127.0.0.1", 0, hub).start()
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)  # ~900 KB as JPEG
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    viewer.connect(parse_address(server.url.split("//")[1].rstrip("/")))
    viewer.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    for i in range(10):  # far more than the socket buffers hold: the handler blocks writing
        hub.publish(noise if i % 2 == 0 else noise[::-1].copy(), {"frame": i, "reading": ""})
        time.sleep(0.1)
    assert len(set(threading.enumerate()) - before) >= 2  # the server's thread and the viewer's
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 5
    assert set(threading.enumerate()) - before == set()
    viewer.close()


def _connect(server: WebServer) -> socket.socket:
    return socket.create_connection(parse_address(server.url.split("//")[1].rstrip("/")), timeout=10)


def _closed_within(conn: socket.socket, seconds: float, trickle: bool = False) -> float | None:
    """Seconds until the server closes `conn` (None if it is still open after `seconds`); with
    `trickle`, a byte of a header is sent every 0.2 s meanwhile."""
    t0 = time.monotonic()
    conn.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            if trickle:
                conn.sendall(b"x")
            if conn.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:  # reset: closed too
            return time.monotonic() - t0
    return None


def test_a_request_trickled_a_byte_at_a_time_is_cut():
    """Every read gets a byte before the socket timeout, so only a deadline for the whole request ends it."""
    hub = FrameHub()
    server = WebServer("127.0.0.1", 0, hub, client_timeout=1.0).start()
    try:
        slow = _connect(server)
        slow.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        cut = _closed_within(slow, 6.0, trickle=True)
        assert cut is not None and cut < 3.0, cut
        slow.close()
        assert get(server.url + "latest.json")[0] == 200  # the server itself goes on
    finally:
        server.stop()


def _stream_status(server) -> int:
    """The status a new viewer of the stream gets (its headers only: a stream never ends)."""
    import http.client

    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/stream.mjpg")
        return conn.getresponse().status
    finally:
        conn.close()


def test_viewers_that_stop_reading_free_their_slots_soon():
    """Four viewers open the stream and never read: frames queue in their sockets until the send
    buffer is full, then the write times out. A fifth viewer gets the stream a few seconds later
    (10 frames/s of ~20 KB; before the send buffer was capped, ~2.5 MB a socket was queued first)."""
    hub = FrameHub()
    server = WebServer("127.0.0.1", 0, hub, client_timeout=1.0).start()
    stop = threading.Event()
    base = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))

    def publish():
        n = 0
        while not stop.is_set():
            frame = cv2.putText(cv2.cvtColor(base, cv2.COLOR_GRAY2BGR), str(n), (50, 300),
                                cv2.FONT_HERSHEY_SIMPLEX, 8, (0, 0, 0), 20)
            hub.publish(frame, {"frame": n})
            n += 1
            time.sleep(0.1)

    pub = threading.Thread(target=publish, daemon=True)
    pub.start()
    stalled = []
    try:
        for _ in range(4):
            c = _connect(server)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(c)
        time.sleep(0.5)
        assert _stream_status(server) == 503  # all slots taken
        t0 = time.monotonic()
        while _stream_status(server) == 503:
            assert time.monotonic() - t0 < 8.0, "stalled viewers still hold every stream slot"
            time.sleep(0.2)
    finally:
        stop.set()
        for c in stalled:
            c.close()
        server.stop()


def test_connections_beyond_the_cap_are_closed(monkeypatch):
    monkeypatch.setattr(web, "MAX_CLIENTS", 3)
    hub = FrameHub()
    server = WebServer("127.0.0.1", 0, hub).start()
    try:
        idle = [_connect(server) for _ in range(3)]
        time.sleep(0.3)  # each has its handler thread
        extra = _connect(server)
        assert _closed_within(extra, 2.0) is not None  # turned away at once
        for c in idle:
            assert _closed_within(c, 0.5) is None  # the first three are still served
            c.close()
        time.sleep(0.5)
        assert get(server.url + "latest.json")[0] == 200  # room again once they have gone
        extra.close()
    finally:
        server.stop()


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("", "host", "host:", "1.2.3.4:99999"):
        with pytest.raises(Exception, match="--serve"):
            parse_address(bad)
    assert parse_address("[::]:80") == ("::", 80)
    with pytest.raises(Exception, match=re.escape("--serve [::1]: expected a port after the address")):
        parse_address("[::1]")
    for bare in ("::1", "::1:8080", "::"):  # would have bound ':' (or failed to resolve it)
        with pytest.raises(Exception, match=re.escape(f"--serve {bare}: an IPv6 address goes in brackets")):
            parse_address(bare)


@pytest.mark.parametrize("host, alone", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                         ("localhost", True), ("0.0.0.0", False), ("::", False),
                                         ("192.168.1.20", False), ("pi.local", False)])
def test_loopback_decides_the_open_page_warning(host, alone):
    assert web.loopback(host) is alone


@pytest.mark.parametrize("url, shown", [
    ("http://viewer:s3cret@pi.local:8080/raw.mjpg", "http://viewer:***@pi.local:8080/raw.mjpg"),
    ("rtsp://admin:p%40ss@10.0.0.2:554/s", "rtsp://admin:***@10.0.0.2:554/s"),
    ("rtsp://admin:pa/ss@cam/s", "rtsp://admin:***@cam/s"),  # unencoded: unparseable, masked anyway
    ("http://admin:p@ssw0rd@127.0.0.1:18091/x.mjpg", "http://admin:***@127.0.0.1:18091/x.mjpg"),  # as FFmpeg
    ("rtsp://a:b@c@d/e@f", "rtsp://a:***@d/e@f"),  # ...splits it: at the last "@" before the path
    ("http://u:pw@[abc]/", "http://u:***@[abc]/"), ("http://[::1", "http://[::1"),
    ("http://user@host/x", "http://user@host/x"), ("http://[::1]:8080/raw.mjpg", "http://[::1]:8080/raw.mjpg"),
    ("clip.mp4", "clip.mp4")])
def test_a_url_is_shown_without_its_password(url, shown):
    from edge.capture import without_password

    assert without_password(url) == shown


@contextlib.contextmanager
def http_server(handler):
    """A quiet local HTTP server answering with `handler` (a BaseHTTPRequestHandler): its HOST:PORT."""
    import http.server

    quiet = type(handler.__name__, (handler,), {"log_message": lambda self, *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_asking_a_stream_why_reports_a_redirect_and_sends_the_login_nowhere_else():
    """A stream OpenCV cannot open is asked over HTTP why (edge.capture._http_refusal). The login in
    its URL goes to that host alone: a redirect is reported, not followed with the password."""
    import http.server

    from edge.capture import _http_refusal

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization"))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
            else:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    with http_server(Handler) as base:
        assert _http_refusal(f"http://me:s3cret@{base}/moved") == " (HTTP 302 Found)"
        assert seen == ["Basic " + base64.b64encode(b"me:s3cret").decode()]  # /elsewhere never asked
        assert _http_refusal(f"http://me:s3cret@{base}/cam") == " (it refused the login in the URL: HTTP 401)"
        assert _http_refusal(f"http://{base}/cam").startswith(" (it asks for a login: HTTP 401; put it in")
        assert _http_refusal("rtsp://cam/s") == "" and _http_refusal("http://[::1") == ""


def test_asking_a_digest_only_camera_why_tells_a_right_login_from_a_wrong_one():
    """Many IP cameras take HTTP Digest only. The probe's Basic login is refused by them whatever it
    is, so it was reported as "refused the login" even when the login was right; it now asks again in
    Digest (RFC 2617, qop=auth, as such a camera does) and blames the login only when that fails, in
    one Digest answer: urllib's own handler answered six times, and cameras lock an account after a
    few failed logins. A Digest it cannot answer (SHA-256) is said so; an error after a right login is
    that error."""
    import hashlib
    import http.server

    from edge.capture import _http_refusal

    logins: list[str] = []  # the Authorization of every request that carried one

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            got = self.headers.get("Authorization") or ""
            if got:
                logins.append(got.split()[0])
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', got[len("Digest "):])) if got.startswith(
                "Digest ") else {}
            ok = False
            if fields and fields["username"] == "me":
                want = md5(f"{md5('me:cam:s3cret')}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:"
                           f"auth:{md5('GET:' + fields['uri'])}")
                ok = fields.get("response") == want
            if ok:
                self.send_response(404 if self.path == "/missing" else 200)
            else:
                self.send_response(401)
                algorithm = "SHA-256" if self.path == "/sha256" else "MD5"
                self.send_header("WWW-Authenticate", f'Digest realm="cam", nonce="n0nce", qop="auth", '
                                                     f'algorithm={algorithm}')
            self.send_header("Content-Length", "0")
            self.end_headers()

    with http_server(Handler) as base:
        assert _http_refusal(f"http://me:s3cret@{base}/video") == ""  # the login is right
        assert logins == ["Basic", "Digest"]
        logins.clear()
        refused = " (it refused the login in the URL: HTTP 401)"
        assert _http_refusal(f"http://me:wrong@{base}/video") == refused
        assert logins == ["Basic", "Digest"]  # two failed logins, not seven
        assert _http_refusal(f"http://{base}/video").startswith(" (it asks for a login: HTTP 401; put it in")
        assert _http_refusal(f"http://me:s3cret@{base}/missing") == " (HTTP 404 Not Found)"
        assert _http_refusal(f"http://me:s3cret@{base}/sha256") == (
            " (HTTP 401: it asks for a Digest login this check cannot send; check the login in the URL)")


def test_a_camera_device_the_user_may_not_open_says_so(monkeypatch):
    from edge import capture
    from edge.errors import UserError

    monkeypatch.setattr(capture.os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="--source /dev/zero: permission denied .* the 'video' group"):
        capture.OpenCVSource("/dev/zero", live=True)


def test_a_password_that_is_not_utf8_still_answers(monkeypatch):
    """A variable's bytes that are not UTF-8 (os.environ gives them as surrogates) are the password."""
    hub = FrameHub()
    hub.publish(np.zeros((8, 8, 3), np.uint8), {"frame": 0})
    server = WebServer("127.0.0.1", 0, hub, password=os.fsdecode(b"pw\xff")).start()
    try:
        assert get(server.url + "latest.json")[0] == 401
        token = base64.b64encode(b"me:pw\xff").decode()
        assert get(server.url + "latest.json", headers={"Authorization": f"Basic {token}"})[0] == 200
    finally:
        server.stop()
