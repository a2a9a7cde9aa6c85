"""`mnist-edge camera --mqtt` against a real broker: Debian's mosquitto on 127.0.0.1, started per test.

The camera runs as a subprocess on a folder of synthetic frames of MNIST test digits (the shipped
int8 model reads them); a paho client in the test subscribes like Home Assistant would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.broker import Mosquitto
from benchmarks.synthetic import blank_frame, make_frame
from edge.camera import read_frame
from edge.classifier import Classifier
from edge.mqtt import MqttConfig, Publisher, parse_url
from edge.provenance import sha256_file
from edge.sources import Frame
from tests.conftest import REPO, cli

if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
    pytest.fail("mosquitto is not installed: apt-get install mosquitto mosquitto-clients (.ci/run does)")

SHIPPED = REPO / "models" / "model_int8.tflite"
DEVICE = "test-meter"
PREFIX = f"mnist-edge/{DEVICE}"
EXE = Path(sys.executable).parent / "mnist-edge"


class Listener:
    """A paho subscriber that records (receive time, topic, payload, retained) and resubscribes."""

    def __init__(self, port: int, topics=("#",), auth: tuple[str, str] | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[float, str, str, bool]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{time.time_ns()}")
        if auth:
            self.client.username_pw_set(*auth)
        self.client.reconnect_delay_set(0.2, 0.5)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert subscribed.wait(10), "the broker did not confirm the subscription"

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append((time.time(), msg.topic, msg.payload.decode(), bool(msg.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[str]:
        with self._cond:
            return [m[2] for m in self.messages if m[1] == topic]

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def states(listener: Listener) -> list[dict]:
    return [json.loads(p) for p in listener.on(f"{PREFIX}/state")]


@pytest.fixture(scope="module")
def readings(mnist) -> dict[str, np.ndarray]:
    """Three frames the shipped model reads right: their true readings -> BGR frames."""
    clf, rng, out = Classifier(SHIPPED), np.random.default_rng(12), {}
    while len(out) < 3:
        idx = rng.integers(0, len(mnist.x_test), int(rng.integers(2, 5)))
        frame, _ = make_frame(list(mnist.x_test[idx]), rng)
        truth = "".join(str(int(d)) for d in mnist.y_test[idx])
        if truth not in out and read_frame(Frame(frame, "bgr", 0.0, 0), clf, 0.6)["reading"] == truth:
            out[truth] = frame
    return out


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    return folder


@pytest.fixture()
def broker(tmp_path):
    with Mosquitto(tmp_path / "broker", users={"meter": "s3cret pass"}) as b:
        yield b


def camera(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(EXE), "camera", "--model", str(SHIPPED), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def test_state_carries_the_stable_readings_and_discovery_is_retained(tmp_path, broker, readings):
    (a, fa), (b, fb), (c, fc) = readings.items()
    blank = blank_frame(np.random.default_rng(0))
    # a, then a blank frame inside a's run (it must not unsettle a), then b, then c
    folder = write_folder(tmp_path / "frames", [fa] * 4 + [blank, fa] + [fb] * 4 + [fc] * 2)
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    try:
        url = f"mqtt://meter@127.0.0.1:{broker.port}"  # the password comes from the environment
        r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--mqtt", url,
                "--device-id", DEVICE, "--mqtt-interval", "0",
                env={"MNIST_EDGE_MQTT_PASSWORD": "s3cret pass"}, timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert [x["stable"] for x in lines] == [None] + [a] * 6 + [b] * 4 + [c]
        assert [x["frame"] for x in lines if x["changed"]] == [1, 7, 11]
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 10)
    finally:
        live.close()
    got = states(live)
    assert [s["stable"] for s in got] == [a, b, c]  # one message per change: --mqtt-interval 0
    for s, frame in zip(got, (1, 7, 11), strict=True):
        assert set(s) == {"reading", "stable", "confidence", "digits", "t"}
        assert s["t"] == lines[frame]["t"] and s["reading"] == lines[frame]["reading"]
        assert [d["digit"] for d in s["digits"]] == [int(ch) for ch in s["stable"]]
        assert s["confidence"] == min(d["confidence"] for d in s["digits"]) >= 0.6
    assert live.on(f"{PREFIX}/availability") == ["online", "offline"]

    late = Listener(broker.port, auth=("meter", "s3cret pass"))  # what Home Assistant finds on start
    try:
        assert late.wait(lambda s: len(s.messages) >= 4, 10)
        time.sleep(0.3)
    finally:
        late.close()
    retained = {topic: payload for _, topic, payload, ret in late.messages if ret}
    assert retained[f"{PREFIX}/availability"] == "offline"
    assert json.loads(retained[f"{PREFIX}/state"])["stable"] == c
    reading = json.loads(retained[f"homeassistant/sensor/{DEVICE}/reading/config"])
    confidence = json.loads(retained[f"homeassistant/sensor/{DEVICE}/confidence/config"])
    for config in (reading, confidence):
        assert config["state_topic"] == f"{PREFIX}/state"
        assert config["availability_topic"] == f"{PREFIX}/availability"
        assert config["device"]["identifiers"] == [f"mnist-edge_{DEVICE}"]
        assert config["device"]["model_id"] == f"sha256:{sha256_file(SHIPPED)}"
        assert config["device"]["sw_version"] == "0.1.0"
    assert reading["value_template"] == "{{ value_json.stable }}"
    assert reading["unique_id"] != confidence["unique_id"]
    assert "value_json.confidence" in confidence["value_template"]


def test_no_discovery_and_a_prefix_from_the_url(tmp_path, broker, readings):
    frame = next(iter(readings.values()))
    folder = write_folder(tmp_path / "frames", [frame] * 2)
    r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--no-discovery",
            "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}/site/kitchen",
            "--device-id", DEVICE, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    late = Listener(broker.port, auth=("meter", "s3cret pass"))
    try:
        assert late.wait(lambda s: len(s.messages) >= 2, 10)
        time.sleep(0.3)
    finally:
        late.close()
    topics = {m[1] for m in late.messages}
    assert topics == {"site/kitchen/availability", "site/kitchen/state"}


def test_last_will_says_offline_when_the_camera_is_killed(tmp_path, broker, readings):
    frame = next(iter(readings.values()))
    folder = write_folder(tmp_path / "frames", [frame] * 50)
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    p = camera("--source", str(folder), "--fps", "5", "--device-id", DEVICE,
               "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}")
    try:
        assert live.wait(lambda s: len(s.on(f"{PREFIX}/state")) >= 1), p.stderr.read() if p.poll() else ""
        assert live.on(f"{PREFIX}/availability") == ["online"]
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 10)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
        live.close()
    assert p.returncode == -signal.SIGKILL


def test_broker_outage_never_stops_the_camera(tmp_path, broker, readings):
    (a, fa), (b, fb), _ = readings.items()
    folder = write_folder(tmp_path / "frames", ([fa] * 3 + [fb] * 3) * 20)  # a change every 3 frames
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    p = camera("--source", str(folder), "--fps", "10", "--device-id", DEVICE, "--mqtt-interval", "0",
               "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}")
    printed: list[tuple[float, dict]] = []

    def read_stdout():
        for line in p.stdout:
            printed.append((time.time(), json.loads(line)))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        assert live.wait(lambda s: len(s.on(f"{PREFIX}/state")) >= 2)
        broker.stop()
        t_down, printed_before = time.time(), len(printed)
        deadline = t_down + 30  # the broker stays away until the camera has printed 8 more frames
        while len(printed) < printed_before + 8 and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        broker.start()
        t_up = time.time()
        before = len(states(live))
        assert live.wait(lambda s: len(s.on(f"{PREFIX}/state")) >= before + 2, 30)
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        reader.join(5)  # stdout is the reader's; stderr is read once the camera has ended
        err = p.stderr.read()
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 10)  # a clean stop
    finally:
        if p.poll() is None:
            p.kill()
        live.close()
    assert p.returncode == 0, err[-3000:]
    during = [r for t, r in printed if t_down < t < t_up]
    assert len(during) >= 8, f"{len(during)} frames printed while the broker was down"
    assert sum(r["changed"] for r in during) >= 2  # stable changes kept happening, and were queued
    lost = [x for x in err.splitlines() if "MQTT: lost" in x]
    assert len(lost) == 1, err  # one line per outage, however many reconnects failed
    assert "is back after" in err and "Traceback" not in err
    after = states(live)[before:]
    stable_after = {r["stable"] for t, r in printed if t > t_up}
    assert {s["stable"] for s in after} <= {a, b} and stable_after & {s["stable"] for s in after}


def test_two_devices_with_one_id_are_told_why_the_broker_keeps_dropping_them(broker, caplog):
    """The broker closes the older of two connections with one client id each time the other
    reconnects, so both flap about once a second; each says why, once."""
    cfg = MqttConfig(f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}", "twin", discovery=False)
    first = Publisher(cfg, SHIPPED, "0" * 64, "0.1.0").start()
    try:
        alone = time.monotonic() + 2
        while time.monotonic() < alone:
            time.sleep(0.1)
        assert "another client" not in caplog.text  # one device alone: no such warning
        second = Publisher(cfg, SHIPPED, "0" * 64, "0.1.0").start()
        try:
            end = time.monotonic() + 30
            while caplog.text.count("another client is probably connected as mnist-edge-twin-camera") < 2:
                assert time.monotonic() < end, caplog.text[-2000:]
                time.sleep(0.2)
        finally:
            second.close()
    finally:
        first.close()
    assert "(a second device with the same --device-id?); give each device its own" in caplog.text


def test_queue_is_bounded_and_flushed_when_the_broker_returns(tmp_path, broker):
    url = f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}"
    pub = Publisher(MqttConfig(url, DEVICE, queue=4, discovery=False), SHIPPED, "0" * 64, "0.1.0").start()
    try:
        broker.stop()
        time.sleep(0.3)
        for i in range(10):
            pub.publish(f"{PREFIX}/test/{i}", str(i))  # never raises, never blocks
        assert pub.dropped == 6
        broker.start()
        late = Listener(broker.port, topics=(f"{PREFIX}/test/#",), auth=("meter", "s3cret pass"))
        try:
            assert late.wait(lambda s: len(s.messages) >= 4, 30)
            time.sleep(0.3)
        finally:
            late.close()
    finally:
        pub.close()
    assert sorted(m[2] for m in late.messages) == ["6", "7", "8", "9"]  # the newest 4 survive


@pytest.mark.parametrize("url, expect", [
    ("mqtt://meter:wrong@127.0.0.1:{port}", "the broker refused the connection (Not authorized); "
                                           "check the user name and password"),
    ("mqtt://127.0.0.1:{closed}", "cannot reach the broker (Connection refused)"),
    ("http://127.0.0.1:{port}", "expected mqtt://[user[:password]@]HOST[:PORT][/PREFIX]"),
    ("mqtt://127.0.0.1:99999", "the port is not a number from 1 to 65535"),
    ("mqtt://127.0.0.1:{port}/a/+/b", "must not contain MQTT wildcards"),
    ("mqtt://127.0.0.1:{port}/a#", "must not contain MQTT wildcards"),  # a URL's "fragment": dropped before
    ("mqtts://127.0.0.1:{port}", "the TLS handshake failed"),  # a plain listener: not "cannot reach"
    ("", "expected mqtt://"),  # no broker at all was a quiet run without MQTT
])
def test_broker_mistakes_are_one_line_at_start(tmp_path, broker, readings, url, expect):
    from benchmarks.broker import free_port

    folder = write_folder(tmp_path / "frames", list(readings.values())[:1])
    url = url.format(port=broker.port, closed=free_port())
    r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--mqtt", url, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("mnist-edge camera: error: --mqtt "), lines
    assert expect in lines[0] and "wrong" not in lines[0]  # never the password
    assert r.stdout == ""


def test_bad_device_id_is_one_line(tmp_path, broker, readings):
    folder = write_folder(tmp_path / "frames", list(readings.values())[:1])
    r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--device-id", "my meter/1",
            "--mqtt", f"mqtt://127.0.0.1:{broker.port}", timeout=60)
    assert r.returncode == 2 and "--device-id my meter/1: expected letters, digits" in r.stderr
    r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--device-id", "",
            "--mqtt", f"mqtt://127.0.0.1:{broker.port}", timeout=60)  # not the hostname in its place
    assert r.returncode == 2 and "--device-id '': expected letters, digits" in r.stderr, r.stderr


@pytest.mark.parametrize("url, expect", [
    ("mqtt://h/a//b", "has an empty level (//)"), ("mqtt://h/a?x=1", "takes no ?query"),
    ("mqtt://h/$SYS/x", "topics starting with $ are the broker's own"),
])
def test_a_prefix_mqtt_would_not_take_as_meant_is_refused(url, expect):
    from edge.errors import UserError

    with pytest.raises(UserError, match=re.escape(expect)):
        parse_url(url)


@pytest.mark.parametrize("url", ["mqtt://user:S3cretPW@broker.lan:99999", "mqtt://user:S3cretPW@broker.lan/m/+",
                                 "mqtt://user:S3cretPW@broker.lan/a?x=1", "ftp://user:S3cretPW@broker.lan"])
def test_a_refused_url_is_named_without_its_password(url):
    """Refusals go to stderr, CI logs and the journal: they name the URL as messages show a broker."""
    from edge.errors import UserError

    with pytest.raises(UserError) as e:
        parse_url(url)
    assert "S3cretPW" not in str(e.value) and "user:***@broker.lan" in str(e.value), e.value


def test_an_ipv6_broker_is_shown_as_written():
    assert str(parse_url("mqtt://[::1]:18830/x")) == "mqtt://[::1]:18830"


def test_a_filter_to_read_may_hold_wildcards_a_prefix_may_not():
    assert parse_url("mqtt://h/mnist-edge/#", wildcards=True).path == "mnist-edge/#"
    assert parse_url("mqtt://h/mnist-edge/+/bench", wildcards=True).path == "mnist-edge/+/bench"
    assert parse_url("mqtt://h/a%2Bb/", wildcards=True).path == "a+b"


def test_password_in_the_url_wins_over_the_environment():
    b = parse_url("mqtts://u:p%40ss@broker.lan/x/", env={"MNIST_EDGE_MQTT_PASSWORD": "env"})
    assert (b.tls, b.host, b.port, b.username, b.password, b.path) == (True, "broker.lan", 8883, "u",
                                                                       "p@ss", "x")
    assert parse_url("mqtt://u@h", env={"MNIST_EDGE_MQTT_PASSWORD": "env"}).password == "env"
    assert str(b) == "mqtts://u@broker.lan:8883"  # what messages show: no password


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed: (ca.pem, server.pem, key)."""
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=mnist-edge test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                    "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_mqtts_verifies_the_broker_against_the_system_ca_bundle(tmp_path, readings):
    """The CA comes the way a system bundle does (SSL_CERT_FILE); a broker it did not sign is refused."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_ca_and_server_cert(certs)
    folder = write_folder(tmp_path / "frames", list(readings.values())[:1] * 2)
    with Mosquitto(tmp_path / "broker", tls=(cert, key)) as broker:
        assert broker.url.startswith("mqtts://")
        args = ("camera", "--source", str(folder), "--model", str(SHIPPED), "--mqtt", broker.url,
                "--device-id", DEVICE)
        r = cli(*args, env={"SSL_CERT_FILE": str(ca)}, timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"MQTT: connected to {broker.url}" in r.stderr
        r = cli(*args, timeout=60)  # the real system bundle: it never signed this broker
        assert r.returncode == 2
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "the broker's certificate did not verify" in lines[0], lines
        assert "unable to get local issuer certificate" in lines[0]


def test_an_unchanged_reading_is_republished_every_interval(tmp_path, broker, readings):
    (a, frame), *_ = readings.items()
    folder = write_folder(tmp_path / "frames", [frame] * 20)
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    try:
        r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--fps", "10", "--device-id",
                DEVICE, "--mqtt-interval", "0.5", "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}",
                timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 10)
    finally:
        live.close()
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    got = states(live)
    assert sum(x["changed"] for x in lines) == 1 and {s["stable"] for s in got} == {a}
    # the change, then one state every 0.5 s of frames (a state waits for the next frame): not per frame
    assert 3 <= len(got) < len(lines), [s["t"] for s in got]
    gaps, frame_gap = np.diff([s["t"] for s in got]), np.diff([x["t"] for x in lines]).max()
    # (capture times, so each side is loose by the frames' own processing time)
    assert gaps.min() >= 0.3 and gaps.max() <= 0.5 + frame_gap + 0.2, (gaps, frame_gap)


def test_a_suspect_reading_is_published_when_it_appears_and_when_it_clears(tmp_path, broker, readings):
    """--monotonic: a smaller candidate does not become the stable reading but the state says why once
    it has held a second, even with --mqtt-interval 0 (before, "suspect" waited for the next change or
    interval)."""
    (lo, low), (hi, high) = sorted(readings.items(), key=lambda kv: int(kv[0]))[:2]
    folder = write_folder(tmp_path / "frames", [high] * 3 + [low] * 15 + [high] * 15)
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    try:
        r = cli("camera", "--source", str(folder), "--model", str(SHIPPED), "--fps", "10", "--stable", "1",
                "--monotonic", "--device-id", DEVICE, "--mqtt-interval", "0",
                "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}", timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 10)
    finally:
        live.close()
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["reading"] for x in lines] == [hi] * 3 + [lo] * 15 + [hi] * 15
    assert {x["stable"] for x in lines} == {hi} and sum(x["changed"] for x in lines) == 1
    got = states(live)
    assert [(s["reading"], s["stable"], "suspect" in s) for s in got] == [
        (hi, hi, False), (lo, hi, True), (hi, hi, False)], got
    assert got[1]["suspect"] == f"{lo} is less than the stable {hi} (--monotonic)"


def test_availability_goes_offline_when_the_frames_end_and_the_page_stays_up(tmp_path, broker, readings):
    """After a file ends (or --max-frames) with --serve, the last frame stays on the page until
    Ctrl-C; no reading comes any more, so Home Assistant is told the sensor is unavailable then,
    not at Ctrl-C."""
    import socket

    frame = next(iter(readings.values()))
    folder = write_folder(tmp_path / "frames", [frame] * 3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    live = Listener(broker.port, auth=("meter", "s3cret pass"))
    p = camera("--source", str(folder), "--serve", str(port), "--device-id", DEVICE,
               "--mqtt", f"mqtt://meter:s3cret%20pass@127.0.0.1:{broker.port}")
    try:
        assert live.wait(lambda s: s.on(f"{PREFIX}/availability")[-1:] == ["offline"], 30), \
            p.stderr.read() if p.poll() is not None else live.on(f"{PREFIX}/availability")
        assert p.poll() is None  # still serving the last frame
        assert live.on(f"{PREFIX}/availability") == ["online", "offline"]
        assert len(states(live)) >= 1
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the page is still up
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        live.close()
    assert p.returncode == 0, err[-2000:]
    assert "no more frames; still serving until Ctrl-C" in err
    assert "Traceback" not in err


def test_a_flickering_suspect_flag_publishes_nothing_a_held_one_once(monkeypatch):
    """A candidate at the vote's edge can set and clear "suspect" frame after frame: that must not send
    a retained state a frame (or a second) into Home Assistant's history; a flag that holds for
    `suspect_hold` goes out once, and so does its clearing."""
    import types

    from edge import mqtt as mqtt_module

    clock = [0.0]
    monkeypatch.setattr(mqtt_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    pub = Publisher(MqttConfig("mqtt://127.0.0.1:1", DEVICE, interval=0, discovery=False), SHIPPED,
                    "0" * 64, "0.1.0")
    sent: list[dict] = []
    monkeypatch.setattr(pub, "publish", lambda topic, payload: sent.append(json.loads(payload)))
    stable = types.SimpleNamespace(reading="245", confidence=0.9, digits=[])

    def frame(suspect: bool, changed: bool = False) -> None:
        record = {"reading": "71" if suspect else "245", "changed": changed, "t": clock[0]}
        if suspect:
            record["suspect"] = "71 is less than the stable 245 (--monotonic)"
        pub.on_record(record, stable)
        clock[0] += 0.125  # 8 frames a second (exact in binary)

    frame(False, changed=True)
    for k in range(80):  # ten seconds of a flag that flips every frame
        frame(k % 2 == 0)
    assert len(sent) == 1
    for _ in range(12):  # held for 1.5 s from t = 10.125: out once, a second later
        frame(True)
    for _ in range(12):  # cleared for 1.5 s: out once
        frame(False)
    assert [("suspect" in m, m["t"]) for m in sent] == [(False, 0.0), (True, 11.125), (False, 12.625)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_a_broker_does_not_answer_stops_at_once(tmp_path, sig):
    """A listener that takes the connection and never answers keeps camera waiting up to 10 s for
    the broker's CONNACK; Ctrl-C or SIGTERM there is a user's stop (exit 0, no broker error)."""
    import socket

    cv2.imwrite(str(tmp_path / "a.png"), blank_frame(np.random.default_rng(0)))  # never read: no broker
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    exe = Path(sys.executable).parent / "mnist-edge"
    p = subprocess.Popen([str(exe), "camera", "--source", str(tmp_path), "--model", str(SHIPPED),
                          "--mqtt", f"mqtt://127.0.0.1:{port}"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        silent.settimeout(60)
        conn, _ = silent.accept()  # camera is now waiting for the CONNACK
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
        conn.close()
    finally:
        silent.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0 and out == "", err[-2000:]
    assert "stopped before the broker answered" in err and "did not answer" not in err, err[-2000:]
    assert took < 5, took  # not the rest of the 10 s


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_a_port_that_is_not_a_brokers_is_said_at_once(tmp_path, answer):
    """Something else listens there (it closes at once, or answers in another protocol): one line
    saying so when the connection closes, not "did not answer" after the 10 s timeout."""
    import socket

    cv2.imwrite(str(tmp_path / "a.png"), blank_frame(np.random.default_rng(0)))  # never read: no broker
    other = socket.create_server(("127.0.0.1", 0))
    port = other.getsockname()[1]

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = other.accept()
            if answer:
                conn.recv(100)
                conn.sendall(answer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    t0 = time.monotonic()
    r = cli("camera", "--source", str(tmp_path), "--model", str(SHIPPED), "--mqtt", f"mqtt://127.0.0.1:{port}",
            timeout=60)
    took = time.monotonic() - t0
    other.close()
    assert r.returncode == 2 and r.stdout == "", r.stderr[-2000:]
    said = (f"mnist-edge camera: error: --mqtt mqtt://127.0.0.1:{port}: the connection was closed before an "
            f"MQTT answer; is port {port} an MQTT broker's?")
    assert r.stderr.strip() == said, r.stderr
    assert took < 8, took  # not the 10 s a silent broker gets
