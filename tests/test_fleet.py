"""A fleet's benchmarks through a real broker (Debian's mosquitto): `bench --mqtt`, `bench --compare mqtt://`."""

from __future__ import annotations

import json
import subprocess

import pytest

from benchmarks.broker import Mosquitto
from tests.conftest import REPO, cli


@pytest.fixture()
def broker(tmp_path):
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def retained(port: int, topic: str) -> str:
    """The retained payload on `topic`, read with mosquitto_sub as another client would."""
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", "1",
                        "-W", "5", "--retained-only"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.rstrip("\n")


def test_devices_publish_and_a_fleet_is_compared(tmp_path, broker, mnist_file):
    out = tmp_path / "pi-a"
    r = cli("bench", "--quick", "--artifacts", str(REPO / "models"), "--data", str(mnist_file),
            "--runtimes", "litert", "--threads", "1", "--name", "pi-a", "--out", str(out),
            "--mqtt", broker.url, "--device-id", "pi-a", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on mnist-edge/pi-a/bench (retained)" in r.stdout
    written = json.loads((out / "bench.json").read_text())
    assert json.loads(retained(broker.port, "mnist-edge/pi-a/bench")) == written

    # a second device (the shipped full bench, renamed), published as any MQTT client would, and junk
    other = json.loads((REPO / "models" / "bench.json").read_text())
    other["device"]["name"] = "laptop"
    (tmp_path / "other.json").write_text(json.dumps(other))
    for topic, args in (("mnist-edge/laptop/bench", ["-f", str(tmp_path / "other.json")]),
                        ("mnist-edge/kettle/bench", ["-m", '{"temperature": 97}'])):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-r",
                        "-q", "1", *args], check=True, timeout=10)

    r = cli("bench", "--compare", broker.url, "--out", str(tmp_path / "cmp"), timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mnist-edge/kettle/bench: left out" in r.stderr and "schema None" in r.stderr
    merged = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [d["name"] for d in merged["devices"]] == ["laptop", "pi-a"]  # by topic
    assert merged["files"] == [f"{broker.url}/mnist-edge/laptop/bench", f"{broker.url}/mnist-edge/pi-a/bench"]
    assert len(merged["rows"]) == len(written["rows"]) + len(other["rows"])
    assert {r["device"] for r in merged["rows"]} == {"pi-a", "laptop"}
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0

    r = cli("bench", "--compare", f"{broker.url}/mnist-edge/+/bench", f"{broker.url}/mnist-edge/pi-a/#",
            "--out", str(tmp_path / "cmp3"), timeout=60)  # filters with wildcards, as the README offers
    assert r.returncode == 0, r.stderr[-3000:]
    merged = json.loads((tmp_path / "cmp3" / "compare.json").read_text())
    assert [d["name"] for d in merged["devices"]] == ["laptop", "pi-a", "pi-a#2"]  # one device twice

    # files and a fleet on one command line; a topic filter in the URL
    r = cli("bench", "--compare", str(out / "bench.json"), f"{broker.url}/mnist-edge/laptop/bench",
            "--out", str(tmp_path / "cmp2"), timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    merged = json.loads((tmp_path / "cmp2" / "compare.json").read_text())
    assert [d["name"] for d in merged["devices"]] == ["pi-a", "laptop"]


def test_an_empty_fleet_or_no_broker_is_one_line(tmp_path, broker, mnist_file):
    from benchmarks.broker import free_port

    r = cli("bench", "--artifacts", str(REPO / "models"), "--data", str(mnist_file), "--out", str(tmp_path),
            "--mqtt", f"mqtt://127.0.0.1:{free_port()}", timeout=60)  # before the bench, not after it
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "cannot reach the broker" in lines[0], lines
    assert r.stdout == "" and not (tmp_path / "bench.json").exists()

    for args, expect in (([broker.url], "no bench results under mnist-edge/+/bench"),
                         ([f"mqtt://127.0.0.1:{free_port()}"], "cannot reach the broker")):
        r = cli("bench", "--compare", *args, "--out", str(tmp_path), timeout=60)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1 and expect in lines[0], lines
        assert lines[0].startswith("mnist-edge bench: error: --compare mqtt://127.0.0.1:")
