"""MQTT for `mnist-edge camera --mqtt`: stable readings to a broker, with Home Assistant discovery.

    mnist-edge camera --source picamera --mqtt mqtt://user@broker.lan --device-id gas-meter
    # password from MNIST_EDGE_MQTT_PASSWORD (or in the URL); mqtts:// verifies the system CA bundle

Topics under the prefix (default `mnist-edge/<device-id>`; a URL path replaces it):

- `<prefix>/state`: {"reading", "stable", "confidence", "digits", "t"} (JSON, retained) when the
  stable reading changes, and at most every `interval` seconds while it does not. "reading" is the
  frame's own; "stable", "digits" and "confidence" (the weakest digit's) are the stable reading's;
  "t" is the frame's capture time (Unix seconds); "suspect" is added when a candidate was rejected.
- `<prefix>/availability`: "online" on every connect, "offline" on a clean stop and, as the
  connection's last will, when the device dies (both retained).
- `homeassistant/sensor/<device-id>/{reading,confidence}/config`: discovery (retained).

The broker going away never stops the camera: messages wait in a bounded queue (the oldest are
dropped first), paho reconnects with backoff, and one line is logged per outage. At start, a
broker that cannot be reached or refuses the login is a UserError (one line, exit 2).
paho-mqtt (the 'mqtt' extra) is imported only when a connection is made.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge.capture import without_password
from edge.errors import UserError

log = logging.getLogger(__name__)

PASSWORD_ENV = "MNIST_EDGE_MQTT_PASSWORD"  # the password, when the URL has none
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DISCOVERY_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix
QUEUE_FULL = 15  # paho's MQTT_ERR_QUEUE_SIZE
TAKEN_OVER = (5.0, 3)  # this many connections in a row each closed within this many seconds of
#   opening: another client holds our client id (two devices with one --device-id, whose broker
#   closes the older connection each time the other reconnects); said once
NAME_OK = re.compile(r"^[A-Za-z0-9_-]+$")  # what Home Assistant accepts as a node id


@dataclass
class MqttConfig:
    url: str  # --mqtt: mqtt[s]://[user[:password]@]HOST[:PORT][/PREFIX]
    device_id: str | None = None  # --device-id: this device's name on the broker; None: the hostname
    interval: float = 60.0  # --mqtt-interval: republish an unchanged stable reading this often (s); 0: never
    discovery: bool = True  # publish Home Assistant discovery configs (--no-discovery: don't)
    queue: int = 100  # messages kept while the broker is away; the oldest are dropped beyond this
    connect_timeout: float = 10.0  # seconds to wait for the broker's answer at start
    keepalive: int = 30  # seconds; a silent device's last will fires after 1.5x this
    suspect_hold: float = 1.0  # seconds: a state goes out when "suspect" has appeared, or cleared, for
    #   this long (a candidate flickering at the vote's edge would otherwise send one per frame)


@dataclass
class Broker:
    """A parsed --mqtt URL."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    path: str  # the URL's path without slashes ("" when none)

    def __str__(self) -> str:  # for messages: never the password
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address, as it was written
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_url(url: str, flag: str = "--mqtt", env: dict | None = None, wildcards: bool = False) -> Broker:
    """mqtt[s]://[user[:password]@]HOST[:PORT][/PATH] -> Broker; the password may come from the env.
    PATH is a topic prefix to publish under, or with `wildcards` a topic filter (+ and #) to read."""
    env = os.environ if env is None else env
    what = "FILTER" if wildcards else "PREFIX"
    expect = f"expected mqtt://[user[:password]@]HOST[:PORT][/{what}] (or mqtts://)"
    raw = url.strip()
    url = without_password(url)  # as every message shows it
    parts = urlsplit(raw)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UserError(f"{flag} {url}: {expect}")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise UserError(f"{flag} {url}: the port is not a number from 1 to 65535; {expect}") from None
    if parts.query:
        raise UserError(f"{flag} {url}: an MQTT URL takes no ?query; {expect}")
    # "#" starts a URL's fragment: in an MQTT URL it is the topic wildcard, part of the path
    path = unquote(parts.path + ("#" + parts.fragment if "#" in raw else "")).strip("/")
    if not wildcards and ("+" in path or "#" in path):
        raise UserError(f"{flag} {url}: the prefix must not contain MQTT wildcards (+, #)")
    if path and "" in path.split("/"):
        raise UserError(f"{flag} {url}: the {what.lower()} has an empty level (//); {expect}")
    if not wildcards and path.startswith("$"):
        raise UserError(f"{flag} {url}: topics starting with $ are the broker's own ($SYS), not for "
                        "publishing")
    password = unquote(parts.password) if parts.password is not None else env.get(PASSWORD_ENV)
    return Broker(parts.scheme == "mqtts", parts.hostname, port,
                  unquote(parts.username) if parts.username else None, password, path)


def default_device_id() -> str:
    """The hostname's first label, with anything Home Assistant would refuse replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "mnist-edge"


def check_interval(seconds: float) -> float:
    """--mqtt-interval: 0 (only when the reading changes) or a finite number of seconds."""
    if not (math.isfinite(seconds) and seconds >= 0):  # nan compares false with everything
        raise UserError(f"--mqtt-interval {seconds}: expected 0 (only changes) or more seconds")
    return seconds


def check_device_id(device_id: str) -> str:
    if not NAME_OK.match(device_id):
        raise UserError(f"--device-id {device_id or repr(device_id)}: expected letters, digits, '_' or "
                        "'-' only (it names MQTT topics and the Home Assistant device)")
    return device_id


def discovery_configs(device_id: str, prefix: str, model: Path, model_sha256: str,
                      version: str) -> dict[str, dict]:
    """Home Assistant MQTT discovery: topic -> config, for the reading and its confidence."""
    device = {"identifiers": [f"mnist-edge_{device_id}"], "name": f"mnist-edge {device_id}",
              "manufacturer": "mnist-edge", "model": f"digit reader ({model.name})",
              "model_id": f"sha256:{model_sha256}", "sw_version": version}
    common = {"state_topic": f"{prefix}/state", "availability_topic": f"{prefix}/availability",
              "payload_available": "online", "payload_not_available": "offline", "device": device,
              "origin": {"name": "mnist-edge", "sw_version": version}}
    reading = {"name": "Reading", "unique_id": f"mnist-edge_{device_id}_reading", "icon": "mdi:counter",
               "value_template": "{{ value_json.stable }}", "json_attributes_topic": f"{prefix}/state"}
    confidence = {"name": "Confidence", "unique_id": f"mnist-edge_{device_id}_confidence",
                  "icon": "mdi:percent", "unit_of_measurement": "%", "state_class": "measurement",
                  "entity_category": "diagnostic",
                  "value_template": "{{ (value_json.confidence * 100) | round(1) }}"}
    base = f"{DISCOVERY_PREFIX}/sensor/{device_id}"
    return {f"{base}/reading/config": common | reading, f"{base}/confidence/config": common | confidence}


def state_message(record: dict, stable) -> dict:
    """The state JSON for one frame's record and an edge.stable.Stabilizer."""
    msg = {"reading": record.get("reading"), "stable": stable.reading, "confidence": stable.confidence,
           "digits": stable.digits, "t": record.get("t")}
    if "suspect" in record:
        msg["suspect"] = record["suspect"]
    return msg


def make_client(broker: Broker, client_id: str):
    """A paho client for `broker` (MQTT 3.1.1, login and TLS set), not connected yet."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise UserError("--mqtt: paho-mqtt is not installed (pip install 'mnist-edge[mqtt]')") from None
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()  # the system's CA bundle (SSL_CERT_FILE overrides it), hostname checked
    return client


def connect(client, broker: Broker, timeout: float, keepalive: int, flag: str = "--mqtt") -> None:
    """Connect and start paho's network thread; a UserError (one line) unless the broker accepts us."""
    answered, result = threading.Event(), {}
    previous, previous_gone = client.on_connect, client.on_disconnect

    def first(c, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        answered.set()
        if previous is not None and not reason_code.is_failure:
            previous(c, userdata, flags, reason_code, properties)

    def gone(c, userdata, flags, reason_code, properties):  # closed before any CONNACK: say so now
        if "rc" in result and previous_gone is not None:  # after it: the caller's own outage handling
            previous_gone(c, userdata, flags, reason_code, properties)
        result.setdefault("closed", True)
        answered.set()

    client.on_connect, client.on_disconnect = first, gone
    try:
        client.connect(broker.host, broker.port, keepalive)
    except ssl.SSLCertVerificationError as e:
        raise UserError(f"{flag} {broker}: the broker's certificate did not verify against the system CA "
                        f"bundle ({e.verify_message}); SSL_CERT_FILE=ca.pem names another CA") from None
    except (OSError, ValueError) as e:
        why = e.strerror or str(e) if isinstance(e, OSError) else str(e)
        if broker.tls and isinstance(e, (ssl.SSLError, ConnectionResetError)):  # it answered, not in TLS
            raise UserError(f"{flag} {broker}: the TLS handshake failed ({why}); is {broker.port} the "
                            "broker's TLS port? (mqtt:// for a plain one)") from None
        raise UserError(f"{flag} {broker}: cannot reach the broker ({why})") from None
    client.loop_start()
    if not answered.wait(timeout) or "rc" not in result or result["rc"].is_failure:
        client.loop_stop()
        client.disconnect()
        if not result:
            raise UserError(f"{flag} {broker}: the broker did not answer in {timeout:g} s")
        if "rc" not in result:
            raise UserError(f"{flag} {broker}: the connection was closed before an MQTT answer; is "
                            f"port {broker.port} an MQTT broker's{' (TLS)' if broker.tls else ''}?")
        rc = str(result["rc"])
        login = any(w in rc.lower() for w in ("authori", "password"))
        raise UserError(f"{flag} {broker}: the broker refused the connection ({rc})"
                        + (f"; check the user name and password (or {PASSWORD_ENV})" if login else ""))
    client.on_connect, client.on_disconnect = previous, previous_gone


class Publisher:
    """The camera's link to the broker: availability, discovery, state; survives broker outages."""

    def __init__(self, cfg: MqttConfig, model: Path, model_sha256: str, version: str):
        self.cfg = cfg
        self.broker = parse_url(cfg.url)
        if cfg.queue < 1:
            raise UserError(f"--mqtt queue {cfg.queue}: expected 1 or more")
        check_interval(cfg.interval)
        self.device_id = check_device_id(default_device_id() if cfg.device_id is None else cfg.device_id)
        self.prefix = self.broker.path or f"mnist-edge/{self.device_id}"
        self.availability = f"{self.prefix}/availability"
        self.state_topic = f"{self.prefix}/state"
        self.client_id = f"mnist-edge-{self.device_id}-camera"  # one connection per id on a broker
        self.discovery = discovery_configs(self.device_id, self.prefix, model, model_sha256,
                                           version) if cfg.discovery else {}
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, str, bool]] = deque(maxlen=cfg.queue)
        self._connected = False
        self._down_since: float | None = None  # monotonic time the current outage began
        self._up_since = 0.0  # monotonic time the current connection opened
        self._short = 0  # connections in a row closed soon after opening (TAKEN_OVER)
        self._last_state = -float("inf")  # monotonic time of the last state published
        self._suspect = False  # whether the last state published was flagged suspect
        self._suspect_since: float | None = None  # since when the frames' flag has differed from it
        self.published = 0  # state messages handed to the broker or queued
        self.dropped = 0  # messages lost to a full queue
        self._client = None

    def start(self) -> Publisher:
        client = make_client(self.broker, self.client_id)
        client.will_set(self.availability, "offline", qos=1, retain=True)
        client.max_queued_messages_set(self.cfg.queue + len(self.discovery) + 8)  # ours bounds it
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        self._client = client
        connect(client, self.broker, self.cfg.connect_timeout, self.cfg.keepalive)
        log.info("MQTT: connected to %s as %s; state on %s", self.broker, self.device_id, self.state_topic)
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return  # still in the outage; paho retries with backoff
        with self._lock:
            client.publish(self.availability, "online", qos=1, retain=True)
            for topic, config in self.discovery.items():
                client.publish(topic, json.dumps(config), qos=1, retain=True)
            sent = len(self._pending)
            while self._pending:
                client.publish(*self._pending.popleft()[:2], qos=1, retain=True)
            self._connected, self._up_since = True, time.monotonic()
            if self._down_since is not None:
                log.info("MQTT: %s is back after %.1f s; %d queued message(s) sent, %d dropped",
                         self.broker, time.monotonic() - self._down_since, sent, self.dropped)
                self._down_since = None

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            was, self._connected = self._connected, False
            if was:
                self._short = self._short + 1 if time.monotonic() - self._up_since < TAKEN_OVER[0] else 0
                if self._short == TAKEN_OVER[1]:
                    log.warning("MQTT: %s closed this connection %d times in a row just after it opened: "
                                "another client is probably connected as %s (a second device with the "
                                "same --device-id?); give each device its own",
                                self.broker, self._short, self.client_id)
            if was and self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("MQTT: lost %s; keeping up to %d message(s) and reconnecting",
                            self.broker, self.cfg.queue)

    def publish(self, topic: str, payload: str) -> None:
        """Publish (retained, QoS 1) now, or queue it while the broker is away."""
        with self._lock:
            if self._connected:
                if self._client.publish(topic, payload, qos=1, retain=True).rc == QUEUE_FULL:
                    self.dropped += 1  # the broker has not acknowledged the last `queue` messages
                return
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append((topic, payload, True))

    def on_record(self, record: dict, stable) -> bool:
        """Publish the state if the stable reading changed, a "suspect" flag appeared or cleared and
        held for `suspect_hold`, or `interval` has passed; True if it did."""
        if stable.reading is None:
            return False
        now = time.monotonic()
        due = self.cfg.interval > 0 and now - self._last_state >= self.cfg.interval
        if ("suspect" in record) == self._suspect:
            self._suspect_since = None
        elif self._suspect_since is None:
            self._suspect_since = now
        held = self._suspect_since is not None and now - self._suspect_since >= self.cfg.suspect_hold
        if not (record.get("changed") or due or held):
            return False
        self._last_state, self._suspect, self._suspect_since = now, "suspect" in record, None
        try:
            self.publish(self.state_topic, json.dumps(state_message(record, stable)))
        except Exception as e:  # whatever the client does, the camera loop goes on
            log.warning("MQTT: state not published (%s: %s)", e.__class__.__name__, e)
            return False
        self.published += 1
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Say "offline" (retained) if the broker is there, then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        with self._lock:
            connected, unsent = self._connected, len(self._pending)
            self._connected = False
        if unsent:
            log.warning("MQTT: stopping with %d message(s) unsent: %s is still away", unsent, self.broker)
        if connected:
            info = client.publish(self.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()


def start_publisher(cfg: MqttConfig, model: Path) -> Publisher:
    """A connected Publisher for the camera running `model` (its SHA-256 goes into discovery)."""
    from edge import __version__
    from edge.provenance import sha256_file

    return Publisher(cfg, Path(model), sha256_file(model), __version__).start()
