"""TensorFlow's own output goes to a log file in the output folder; the terminal keeps the progress."""

from __future__ import annotations

import logging
import os
import sys

from train.tf_logs import to_log_file


def test_descriptor_writes_go_to_the_file_and_logging_stays_on_the_terminal(tmp_path, capfd):
    log_file = tmp_path / "out" / "x.log"
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        with to_log_file(log_file, stdout=True):
            os.write(2, b"E0000 node_def_util.cc:682] NodeDef mentions attribute\n")  # C++ style
            os.write(1, b"  TensorSpec(shape=(), dtype=tf.resource, name=None)\n")
            print("Saved artifact at '/tmp/x'.")  # Python prints to stdout
            logging.getLogger("export.tflite").info("converting to TFLite fp32")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    print("after")
    os.write(2, b"after on fd 2\n")
    seen = capfd.readouterr()
    logged = log_file.read_text()
    assert "NodeDef mentions attribute" in logged and "TensorSpec" in logged and "Saved artifact" in logged
    assert "NodeDef" not in seen.err and "TensorSpec" not in seen.out and "Saved artifact" not in seen.out
    assert "converting to TFLite fp32" in seen.err and "converting" not in logged
    assert "after" in seen.out and "after on fd 2" in seen.err  # both descriptors are given back


def test_export_output_is_progress_only(exported):
    out, r = exported
    shown = r.stdout + r.stderr
    assert "TensorSpec" not in shown and "Saved artifact" not in shown
    assert "converting to TFLite int8" in r.stderr and "model_int8.onnx" in r.stdout
    assert "TensorSpec" in (out / "export.log").read_text()
