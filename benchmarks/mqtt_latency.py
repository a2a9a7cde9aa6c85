"""Reading-to-publish latency on loopback: how long a stable reading takes to reach a subscriber.

    python -m benchmarks.mqtt_latency [--messages 500] [--frames 60] [--data mnist.npz]

Starts Debian's mosquitto on 127.0.0.1 (a free port, its own config) and a paho subscriber, then:

1. publisher: edge.mqtt.Publisher.on_record() for a reading that changes every time, to the
   subscriber's on_message (one process, perf_counter): the cost mnist-edge adds after a reading;
2. camera: `mnist-edge camera --stable 1 --mqtt ...` on a folder of synthetic frames whose reading
   changes every frame; capture time ("t" in the state) to arrival at the subscriber (wall clock,
   same machine), so it includes finding the digits (the default locator) and inference.

Prints p50/p90/p99/max in ms. Timings on a shared machine are noisy; the goal is under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.broker import Mosquitto

DEVICE = "latency"


def percentiles(ms: list[float]) -> str:
    p = np.percentile(ms, [50, 90, 99])
    return f"n={len(ms)}  p50 {p[0]:.2f}  p90 {p[1]:.2f}  p99 {p[2]:.2f}  max {max(ms):.2f} ms"


class Subscriber:
    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.arrivals: list[tuple[float, float, dict]] = []  # (perf_counter, time, state)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="latency-subscriber")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = lambda c, u, m: self.arrivals.append(
            (time.perf_counter(), time.time(), json.loads(m.payload)))
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        subscribed.wait(10)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < n and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher_latency(broker: Mosquitto, n: int, model: Path) -> list[float]:
    from edge.mqtt import MqttConfig, Publisher
    from edge.stable import Stabilizer, StableConfig

    sub = Subscriber(broker.port, f"mnist-edge/{DEVICE}/state")
    pub = Publisher(MqttConfig(broker.url, DEVICE, interval=0, discovery=False), model, "0" * 64,
                    "bench").start()
    stab, sent = Stabilizer(StableConfig(frames=1)), []
    try:
        for i in range(n):
            record = {"t": time.time(), "reading": f"{i:04d}", "digits": [
                {"digit": int(c), "confidence": 0.99, "box": [10 + 40 * k, 10, 30, 50]}
                for k, c in enumerate(f"{i:04d}")]}
            record.update(stab.update(record))
            sent.append(time.perf_counter())
            pub.on_record(record, stab)
            sub.wait_for(i + 1, 5.0)  # one at a time: latency, not throughput
    finally:
        pub.close()
        sub.close()
    return [1e3 * (a[0] - s) for a, s in zip(sub.arrivals, sent, strict=False)]


def camera_latency(broker: Mosquitto, frames: int, data: str | None,
                   folder: Path) -> tuple[list[float], list[float]]:
    """(capture -> subscriber, the same less the frame's own preprocess + inference), ms per state."""
    import cv2

    from benchmarks.synthetic import make_frame
    from train.data import load_mnist

    mnist = load_mnist(data)
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(frames):
        idx = rng.integers(0, len(mnist.x_test), 3)
        cv2.imwrite(str(folder / f"{i:04d}.png"), make_frame(list(mnist.x_test[idx]), rng)[0])
    sub = Subscriber(broker.port, f"mnist-edge/{DEVICE}/state")
    exe = Path(sys.executable).parent / "mnist-edge"
    try:
        out = subprocess.run([str(exe), "camera", "--source", str(folder), "--stable", "1", "--fps", "20",
                              "--mqtt", broker.url, "--device-id", DEVICE, "--mqtt-interval", "0",
                              "--no-discovery"], check=True, capture_output=True, text=True,
                             env={**os.environ, "MNIST_EDGE_LOG": "WARNING"}).stdout
        time.sleep(0.5)
    finally:
        sub.close()
    work = {r["t"]: r["ms"]["preprocess"] + r["ms"]["inference"] for r in map(json.loads, out.splitlines())}
    got = [(wall, s) for _, wall, s in sub.arrivals if s["t"] in work]  # not an earlier run's retained one
    total = [1e3 * (wall - s["t"]) for wall, s in got]
    return total, [ms - work[s["t"]] for ms, (_, s) in zip(total, got, strict=True)]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m benchmarks.mqtt_latency", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=500, help="state messages for the publisher test")
    p.add_argument("--frames", type=int, default=60, help="frames for the camera test")
    p.add_argument("--data", type=str, default=None, help="MNIST .npz (default: MNIST_EDGE_DATA, ...)")
    return p


def main(args: argparse.Namespace) -> int:
    from edge.models import default_model

    model = default_model()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        pub = publisher_latency(broker, args.messages, model)
        print(f"publisher on_record -> subscriber (loopback, QoS 1): {percentiles(pub)}")
        total, after = camera_latency(broker, args.frames, args.data, Path(tmp) / "frames")
        print(f"camera capture -> subscriber (640x480, 3 digits, --stable 1): {percentiles(total)}")
        print(f"  the same less the frame's preprocess + inference:      {percentiles(after)}")
    return 0


if __name__ == "__main__":
    from edge.cli import script

    sys.exit(script("benchmarks.mqtt_latency"))
