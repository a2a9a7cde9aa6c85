"""The sources that capture: OpenCV (a camera index or device, a stream URL, a video file) and a Pi camera.

    >>> from edge.capture import OpenCVSource
    >>> OpenCVSource("no-such-clip.avi", live=False)
    Traceback (most recent call last):
    edge.errors.UserError: --source no-such-clip.avi: OpenCV cannot open this video file

They implement `edge.sources.Source`; `edge.sources.open_source` picks one from --source. OpenCV is
imported here (the 'camera' extra), picamera2 only when a Pi camera is opened. A stream is opened
and read in a worker thread, so setting `stop` ends a wait on a silent network at once.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading

from edge.errors import UserError
from edge.images import import_cv2, shown
from edge.sources import Frame, Source

log = logging.getLogger(__name__)

BAD_FRAME_RUN = 30  # a video file whose reads fail this many times in a row has ended (a damaged
#   frame or a few are skipped, and the reads after them go on)
NETWORK_TIMEOUT_MS = 5000  # OpenCV's open and read timeouts for a stream (its default is 30 s)
PROBE_TIMEOUT_S = 3.0  # asking a stream OpenCV could not open why (HTTP 401 ...), after its own timeout


def _frames(first: int, last: int) -> str:
    """'frame 7' or 'frames 7-9': a video file's own frame numbers, from 0, as each reading's
    "frame" gives them."""
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def picamera2_broken(e: BaseException) -> str:
    """Why an installed picamera2 does not import, in one line, with the usual fix: Pi OS builds its
    simplejpeg against Debian's numpy (1.24 on bookworm, 2.2 on trixie), which a venv's other major
    version of numpy breaks (`numpy.dtype size changed`)."""
    why = (str(e).strip().splitlines() or [""])[0]
    hint = ("; its modules are built for Pi OS's own numpy (1.x on bookworm, 2.x on trixie): in this venv, "
            "pip install '.[edge,picamera]' from the checkout keeps that major version"
            if "numpy" in str(e).lower() else "")
    return f"installed but does not import ({e.__class__.__name__}: {why}){hint}"


_LOGIN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)(?:[^/]*@|[^@]*@)")  # scheme://user: password @,
#   the password up to the last "@" before the path (FFmpeg sends "p@ss" whole), or up to the first
#   "@" when the password holds a "/"


def without_password(url: str) -> str:
    """A stream's URL as every message and the live page show it: a password in it (another
    device's `--serve` login, an RTSP camera's) as ***.

    >>> without_password("http://viewer:s3cret@pi.local:8080/raw.mjpg")
    'http://viewer:***@pi.local:8080/raw.mjpg'
    >>> without_password("rtsp://admin:p@ssw0rd@cam.lan/stream")     # an unencoded "@" in it
    'rtsp://admin:***@cam.lan/stream'

    Read as text, not parsed: a URL too broken to parse (a password with an unencoded "/", an
    unclosed "[") is masked all the same, and what OpenCV then fails to open is said in one line. On
    the safe side: a login-less URL with an "@" in its path shows ***, from its port to that "@".
    """
    return _LOGIN.sub(r"\1***@", url)


def _http_refusal(url: str) -> str:
    """Why an http(s) stream refuses us, asked once over HTTP after OpenCV failed to open it (whose
    FFmpeg says nothing we can show): " (... HTTP 401 ...)", or "" when it does not say (another
    scheme, no answer, or it answers 200 and the stream itself is what OpenCV cannot read). A
    redirect is reported, not followed, so the login in the URL goes to its own host only. The login
    goes in Basic, as FFmpeg sends it first; a camera that refuses it and offers Digest (many IP
    cameras take only Digest, which FFmpeg also answers) is asked once more in Digest, so a right
    login is not blamed, and only once, as a camera may lock an account after a few failed logins."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit, urlunsplit

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None  # urllib then raises the 30x as an HTTPError

    try:
        u = urlsplit(url)
        if u.scheme not in ("http", "https"):
            return ""
        plain = urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2]))
        request = urllib.request.Request(plain)
        user = unquote(u.username) if u.username is not None else None
        password = unquote(u.password or "")
        if user is not None:  # urllib leaves a login in the URL unused
            login = f"{user}:{password}".encode()
            request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(login).decode())
        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=PROBE_TIMEOUT_S):
                return ""
        except urllib.error.HTTPError as e:
            e.close()
            offered = " ".join(e.headers.get_all("WWW-Authenticate") or []).lower()
            if e.code != 401 or user is None or "digest" not in offered:
                return _refusal(e, u.scheme, user is not None)
        digest = _one_digest(plain, user, password)
        try:
            with urllib.request.build_opener(digest, NoRedirect).open(plain, timeout=PROBE_TIMEOUT_S):
                return ""  # the login is right
        except urllib.error.HTTPError as e:
            e.close()
            if e.code != 401 or digest.tried:
                return _refusal(e, u.scheme, True)
        except ValueError:  # e.g. "Unsupported digest authentication algorithm"
            pass
        return " (HTTP 401: it asks for a Digest login this check cannot send; check the login in the URL)"
    except Exception:  # no answer, a broken URL, TLS: nothing more to say than OpenCV's failure
        return ""


def _refusal(e, scheme: str, login: bool) -> str:
    """An HTTP error as `_http_refusal` says it."""
    if e.code == 401 and login:
        return " (it refused the login in the URL: HTTP 401)"
    if e.code == 401:
        return f" (it asks for a login: HTTP 401; put it in the URL, {scheme}://user:password@host:port/...)"
    return f" (HTTP {e.code}{f' {e.reason}' if e.reason else ''})"


def _one_digest(url: str, user: str, password: str):
    """urllib's HTTP Digest handler for this login, answering one challenge only (its own retries up
    to six times); `.tried` once that answer was refused."""
    import urllib.request

    class OneDigest(urllib.request.HTTPDigestAuthHandler):
        tried = False

        def http_error_401(self, req, fp, code, msg, headers):
            if req.get_header(self.auth_header):  # our one answer was refused
                self.tried = True
                return None  # urllib raises the 401
            return super().http_error_401(req, fp, code, msg, headers)

    logins = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    logins.add_password(None, url, user, password)
    return OneDigest(logins)


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return False
    except UnicodeEncodeError:  # bytes that were not UTF-8, surrogate-escaped by the OS layer
        return True


class OpenCVSource(Source):
    """cv2.VideoCapture: a camera index or device or a stream URL (live, reconnected) or a video file (ends).

    A stream (URL) is opened and read with OpenCV's timeouts, in a worker thread, so setting `stop`
    ends a wait on a silent network at once instead of after OpenCV's own 30 s.
    """

    def __init__(self, target: int | str, live: bool, stop: threading.Event | None = None):
        super().__init__()
        self.target, self.live, self.stop = target, live, stop
        self.name = f"camera {target}" if isinstance(target, int) else without_password(str(target))
        self.cap = None
        self._position = 0  # frames read from a video file so far, decoded or not: the next one's
        #   number in the file, which its Frame.index is (a frame that does not decode leaves a gap)
        self._cv2 = import_cv2()
        self._network = isinstance(target, str) and "://" in target
        if isinstance(target, str) and _not_utf8(target):
            raise UserError(f"--source {without_password(shown(str(target)))}: the name is not valid UTF-8 "
                            "text, which OpenCV's video reader cannot open (it crashes): rename the file")
        self._worker: threading.Thread | None = None  # a call still running after `stop` was set
        if not self._call(self._open):
            if self._stopped():
                return  # stopped while opening: frames() ends at once
            if isinstance(target, int) or (live and not self._network):  # an index or a device
                if isinstance(target, str) and not os.access(target, os.R_OK | os.W_OK):
                    raise UserError(f"--source {target}: permission denied (a camera is opened for reading "
                                    "and writing: add the user to the 'video' group, sudo usermod -aG "
                                    "video $USER, then log in again)")
                raise UserError(f"--source {target}: OpenCV cannot open camera {target} (is it connected? "
                                "see ls /dev/video*; a Pi camera module is --source picamera)")
            what = "stream" if live else "video file"
            hint = self._call(lambda: _http_refusal(target)) if self._network else ""
            if self._stopped():
                return  # stopped while asking why
            raise UserError(f"--source {self.name}: OpenCV cannot open this {what}{hint or ''}")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _call(self, fn):
        """fn() here for local devices and files; for streams in a worker, given up when `stop` is set
        (the worker then owns the capture and releases it when OpenCV returns)."""
        if not self._network:
            return fn()
        box: dict = {}
        done = threading.Event()

        def work():
            try:
                box["value"] = fn()
            except Exception as e:  # handed to the caller
                box["error"] = e
            finally:
                done.set()
                if self._worker is threading.current_thread() and self.cap is not None:
                    self.cap.release()  # given up on and closed meanwhile: release it here

        worker = threading.Thread(target=work, name="mnist-edge-capture", daemon=True)
        worker.start()
        while not done.wait(0.05):
            if self._stopped():
                self._worker = worker
                return None
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _open(self) -> bool:
        cv2 = self._cv2
        if self._network:
            self.cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                NETWORK_TIMEOUT_MS])
        else:
            self.cap = cv2.VideoCapture(self.target)
        if not self.cap.isOpened():
            self.cap.release()
            self.cap = None
            return False
        return True

    def read(self) -> Frame | None:
        if self.cap is None or self._worker is not None:
            return None
        got = self._call(self.cap.read)
        ok, image = got if got is not None else (False, None)
        if not (ok and image is not None) and not self.live:
            return self._past_bad_frames()
        if not self.live:
            self._count = self._position  # its number in the file
        self._position += 1
        return self._frame(image, "bgr") if ok and image is not None else None

    def _past_bad_frames(self) -> Frame | None:
        """A video file's read failed: a frame that does not decode (the file damaged there) is
        skipped, and said so, as the reads after it still give frames; the end is where
        BAD_FRAME_RUN reads in a row give none. A file that ends before the frame count it declares
        (cut short) says so too."""
        first = self._position  # the frame whose read failed
        self._position += 1
        for _ in range(BAD_FRAME_RUN):
            ok, image = self.cap.read()
            self._position += 1
            if ok and image is not None:
                log.warning("%s: %s could not be decoded; skipped", self.name,
                            _frames(first, self._position - 2))
                self._count = self._position - 1
                return self._frame(image, "bgr")
        declared = self.cap.get(self._cv2.CAP_PROP_FRAME_COUNT)
        if math.isfinite(declared) and first + 1 < declared:  # (a count may be an estimate: a frame's slack)
            log.warning("%s: ends after %d of the %d frames it declares: %s could not be decoded (the "
                        "file may be cut short)", self.name, first, int(declared),
                        _frames(first, int(declared) - 1))
        self.close()
        return None

    def reopen(self) -> None:
        self.close()
        if self._worker is None and not self._call(self._open) and not self._stopped():
            raise OSError(f"cannot open {self.name}")

    def close(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return  # a read or open is still inside OpenCV: its worker releases the capture
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class PicameraSource(Source):
    """A Raspberry Pi camera through picamera2 (libcamera): two streams of the same moment.

    'main' (XRGB8888, B,G,R,X in memory) is for display; the YUV420 'lores' stream's Y plane (its
    first `height` rows) is what inference reads, so no colour conversion runs per frame. Both are
    640x480 (lores may not exceed main): the reading path is tuned and measured at 640x480, and a
    320x240 stream, enlarged to it, reads fewer desk frames (docs/desk-reading.md, "Frame size").
    """

    live = True

    def __init__(self, main_size: tuple[int, int] = (640, 480), lores_size: tuple[int, int] = (640, 480)):
        super().__init__()
        self.name, self.main_size, self.lores_size = "picamera", main_size, lores_size
        try:
            from picamera2 import Picamera2
        except ModuleNotFoundError as e:
            if e.name != "picamera2":
                raise UserError(f"--source picamera: picamera2 is {picamera2_broken(e)}") from None
            raise UserError("--source picamera: picamera2 is not installed (on Raspberry Pi OS: "
                            "sudo apt install python3-picamera2, make the venv with "
                            "--system-site-packages, and from the checkout pip install '.[edge,picamera]' "
                            "in it)") from None
        except Exception as e:  # anything its import raises: most often a numpy it was not built for
            raise UserError(f"--source picamera: picamera2 is {picamera2_broken(e)}") from None
        self._Picamera2, self.cam = Picamera2, None
        try:
            self._open()
        except Exception as e:
            raise UserError(f"--source picamera: cannot start the camera ({e})") from None

    def _open(self) -> None:
        self.cam = self._Picamera2()
        config = self.cam.create_video_configuration(
            main={"size": self.main_size, "format": "XRGB8888"},
            lores={"size": self.lores_size, "format": "YUV420"})
        self.cam.configure(config)
        self.cam.start()

    def read(self) -> Frame | None:
        if self.cam is None:
            return None
        (main, yuv), _ = self.cam.capture_arrays(["main", "lores"])  # one request: same moment
        w, h = self.lores_size
        return self._frame(yuv[:h, :w], "grey", display=main, display_order="xrgb8888")

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        if self.cam is not None:
            cam, self.cam = self.cam, None
            try:
                cam.stop()
            finally:
                cam.close()
