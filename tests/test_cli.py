"""The console script: dispatch, bad flags and bad paths give one line and a non-zero exit."""

import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, cli


def test_help_lists_commands():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("train", "export", "bench", "camera", "predict", "doctor"):
        assert cmd in r.stdout
    assert "--version" in r.stdout
    v = cli("--version")
    assert v.returncode == 0 and re.fullmatch(r"mnist-edge \d+\.\d+\.\d+\S*\n", v.stdout), v.stdout


def test_no_command_and_unknown_command_fail():
    assert cli().returncode == 2
    r = cli("fly")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr  # one line, naming the commands
    assert "unknown command 'fly'" in r.stderr and "predict, doctor" in r.stderr


@pytest.mark.parametrize("argv, says", [
    (("train", "--epochs", "ten"), "--epochs: invalid int value: 'ten'"),
    (("predict", "--bogus", "x.png"), "unrecognized arguments: --bogus"),
    (("camera", "--source"), "--source: expected one argument"),
])
def test_a_bad_flag_is_one_line_without_argparse_usage_block(argv, says):
    r = cli(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "usage:" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"mnist-edge {argv[0]}: error: ") and says in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("(--help lists the options)")


def test_non_positive_batch_size(tmp_path):
    r = cli("train", "--quick", "--batch-size", "0", "--out", str(tmp_path))
    assert r.returncode == 2 and "--batch-size 0: expected a whole number of at least 1" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_arch_is_rejected():
    r = cli("train", "--arch", "vgg")
    assert r.returncode == 2 and "--arch: invalid choice" in r.stderr


def test_missing_data_file_is_one_clear_line(tmp_path):
    r = cli("train", "--quick", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(err) == 1 and "nope.npz: no such file" in err[0]
    assert not (tmp_path / "model.keras").exists()


def test_wrong_shape_data_file(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((10, 32, 32), np.uint8), y_train=np.zeros(10, np.uint8),
             x_test=np.zeros((5, 28, 28), np.uint8), y_test=np.zeros(5, np.uint8))
    r = cli("train", "--quick", "--data", str(bad), "--out", str(tmp_path))
    assert r.returncode == 2 and "bad.npz: x_train has shape (10, 32, 32)" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_readme_command_table_lists_every_option_and_only_real_ones():
    """Each row of README's command table names exactly the flags its subcommand's parser takes, so a
    reader of the table misses no option and tries none that is gone."""
    from importlib import import_module

    from edge.cli import COMMANDS

    readme = (REPO / "README.md").read_text()
    table = re.search(r"^\| command \| what it does \|\n\|---\|---\|\n((?:\|.*\n)+)", readme, re.M)
    assert table, "no command table"  # its rows on consecutive lines: a blank line ends a Markdown table
    row = r"^\| `mnist-edge (\w+)([^`]*)` \|"
    rows = {m.group(1): m.group(2) for m in re.finditer(row, table.group(1), re.M)}
    assert set(rows) == set(COMMANDS), sorted(rows)
    for cmd, (module, _) in COMMANDS.items():
        parser = import_module(module).get_args_parser()
        real = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        listed = set(re.findall(r"--[a-z0-9-]+", rows[cmd]))
        assert listed == real, (cmd, "missing from README:", sorted(real - listed), "not an option:",
                                sorted(listed - real))


SIGNALS_CHECK = """
import os, signal
from edge import signals

signal.signal(signal.SIGINT, signal.SIG_IGN)
with signals.handled():
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing raised, nothing recorded
    assert signals.received() is None
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit("SIGTERM did not raise Terminated")
    except signals.Terminated:
        pass
    assert signals.received() == signal.SIGTERM
    try:
        signals.raise_if_received()
        raise SystemExit("raise_if_received did not raise")
    except signals.Terminated:
        pass
assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signals.received() is None
print("ok")
"""


def test_signals_are_recorded_and_an_ignored_sigint_stays_ignored():
    """A job started with `&` from a script ignores SIGINT: the command must not start taking it.
    Inside `handled()` SIGTERM is raised as Terminated and recorded; outside, nothing is kept. In a
    process of its own, as the command is: a signal sent to the test runner itself (which has loaded
    TensorFlow by then) could land in one of its threads."""
    r = subprocess.run([sys.executable, "-c", SIGNALS_CHECK], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stdout + r.stderr
