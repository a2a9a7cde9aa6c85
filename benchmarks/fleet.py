"""A fleet's benchmarks through one MQTT broker: each device publishes, anyone compares.

    mnist-edge bench --quick --mqtt mqtt://broker.lan --device-id pi5     # -> mnist-edge/pi5/bench
    mnist-edge bench --compare mqtt://broker.lan --out fleet              # every device's latest

`bench --mqtt` publishes the whole bench.json (QoS 1, retained) on `<prefix>/bench`, the prefix
being the URL's path or `mnist-edge/<device-id>` as for `camera --mqtt`. `bench --compare
mqtt://HOST[:PORT][/FILTER]` subscribes to FILTER (default `mnist-edge/+/bench`), takes the retained
results the broker holds, and hands them to the same table and plot as bench.json files (the two can
be mixed on one command line). A message that is not a bench result is named in a warning and left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from pathlib import Path

from edge.errors import UserError
from edge.mqtt import MqttConfig, check_device_id, connect, default_device_id, make_client, parse_url

log = logging.getLogger(__name__)

TOPIC = "bench"  # under the device's prefix
FLEET_FILTER = f"mnist-edge/+/{TOPIC}"  # every device's, with the default prefixes
QUIET = 0.5  # seconds without a new retained message after which the broker has sent them all


def is_mqtt(source: str) -> bool:
    return str(source).startswith(("mqtt://", "mqtts://"))


def _url(spec: str) -> str:
    parse_url(spec)  # a mistake is one line before the bench runs, not after it
    return spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    """bench's --mqtt and --device-id, checked as they are parsed."""
    p.add_argument("--mqtt", type=_url, default=None, metavar="URL",
                   help="also publish bench.json (retained) to mqtt[s]://[user[:password]@]HOST[:PORT]"
                        f"[/PREFIX] on PREFIX/{TOPIC} (default prefix mnist-edge/DEVICE_ID)")
    p.add_argument("--device-id", type=check_device_id, default=None,
                   help="this device's name on the broker, with --mqtt (default: the hostname)")


def _connected(url: str, device_id: str | None):
    """(broker, topic, client connected as this device's bench) for --mqtt URL; UserError if not."""
    broker = parse_url(url)
    device_id = check_device_id(default_device_id() if device_id is None else device_id)
    client = make_client(broker, f"mnist-edge-{device_id}-bench-{os.getpid()}")
    connect(client, broker, MqttConfig.connect_timeout, MqttConfig.keepalive)
    return broker, f"{broker.path or f'mnist-edge/{device_id}'}/{TOPIC}", client


def reachable(url: str, device_id: str | None) -> None:
    """Connect once and leave: a broker that is not there or refuses the login is one line before the
    bench runs, not after it (as camera --mqtt checks before its camera opens)."""
    _, _, client = _connected(url, device_id)
    client.disconnect()
    client.loop_stop()


def publish(url: str, device_id: str | None, result: dict) -> str:
    """Publish `result` retained on <prefix>/bench; the topic. A UserError if the broker will not take it."""
    broker, topic, client = _connected(url, device_id)
    cfg = MqttConfig(url)
    try:
        info = client.publish(topic, json.dumps(result), qos=1, retain=True)
        info.wait_for_publish(cfg.connect_timeout)
        if not info.is_published():
            raise UserError(f"--mqtt {broker}: the broker did not acknowledge {topic} "
                            f"in {cfg.connect_timeout:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"published bench.json to {broker} on {topic} (retained)")
    return topic


def gather(url: str, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """The retained bench results under the URL's topic filter: [(label, result)], by topic."""
    from benchmarks.compare import check_bench

    broker = parse_url(url, "--compare", wildcards=True)
    topic_filter = broker.path or FLEET_FILTER
    got: dict[str, bytes] = {}
    subscribed, last = threading.Event(), [time.monotonic()]
    client = make_client(broker, f"mnist-edge-compare-{os.getpid()}")

    def on_message(c, userdata, msg):
        got[msg.topic] = msg.payload
        last[0] = time.monotonic()

    client.on_message = on_message
    client.on_subscribe = lambda *a: (last.__setitem__(0, time.monotonic()), subscribed.set())
    connect(client, broker, MqttConfig.connect_timeout, MqttConfig.keepalive, flag="--compare")
    try:
        client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(timeout):
            raise UserError(f"--compare {broker}: the broker did not confirm the subscription to "
                            f"{topic_filter} in {timeout:g} s")
        deadline = time.monotonic() + timeout
        while time.monotonic() - last[0] < QUIET and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    out = []
    for topic in sorted(got):
        label = f"{broker}/{topic}"
        if not got[topic]:
            continue  # a cleared retained message
        try:
            out.append((label, check_bench(json.loads(got[topic]), label)))
        except (UserError, ValueError) as e:
            log.warning("%s: left out (%s)", topic, e)
    if not out:
        raise UserError(f"--compare {broker}: no bench results under {topic_filter} "
                        "(publish some with mnist-edge bench --mqtt URL)")
    log.info("%s: %d bench result(s) under %s", broker, len(out), topic_filter)
    return out


def load_sources(sources: list[str]) -> tuple[list[str], list[dict]]:
    """bench.json files and mqtt:// fleets, in the order given: (labels, results)."""
    from benchmarks.compare import load_bench

    labels, results = [], []
    for s in sources:
        pairs = gather(s) if is_mqtt(s) else [(str(s), load_bench(Path(s)))]
        labels += [label for label, _ in pairs]
        results += [result for _, result in pairs]
    return labels, results
