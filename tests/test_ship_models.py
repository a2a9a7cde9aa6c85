"""tools/ship_models.py (`make models`): a run copied byte for byte, with the card it quotes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.conftest import REPO

MODELS = REPO / "models"
TOOL = REPO / "tools" / "ship_models.py"


def ship(artifacts, out):
    return subprocess.run([sys.executable, str(TOOL), "--artifacts", str(artifacts), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)


def test_shipping_the_shipped_run_reproduces_it(tmp_path):
    """models/ is itself a finished run: shipping it again gives the same bytes and the same card,
    so the card in models/ is what the tool writes from the run's own JSON."""
    r = ship(MODELS, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    shipped = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert shipped == sorted(p.name for p in MODELS.iterdir() if p.is_file())
    for name in shipped:
        assert (tmp_path / "out" / name).read_bytes() == (MODELS / name).read_bytes(), name


def test_a_run_without_a_row_reader_leaves_none_of_an_earlier_one(tmp_path):
    """Shipping over an earlier models/ copy: a run that made no row reader must not leave the old
    one beside the new files (camera would read rows with it; doctor would vouch for it)."""
    out = tmp_path / "out"
    assert ship(MODELS, out).returncode == 0
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    for name in ("rows_int8.tflite", "rows_int8.onnx", "rows.json"):
        (run / name).unlink()
    r = ship(run, out)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob("rows*")), sorted(p.name for p in out.iterdir())
    assert (out / "locator_int8.tflite").read_bytes() == (MODELS / "locator_int8.tflite").read_bytes()
    card = (out / "MODEL_CARD.md").read_text()
    assert "### `mnist-edge locator`" in card and "mnist-edge rows" not in card
    assert "## The digit locator\n" in card and "rows.json" not in card and "row reader" not in card


def test_a_helper_report_not_as_its_command_writes_it_is_one_line_and_ships_nothing(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    shutil.copytree(MODELS, run)
    report = json.loads((run / "rows.json").read_text())
    del report["params"]
    (run / "rows.json").write_text(json.dumps(report))
    r = ship(run, out)
    assert r.returncode == 2 and "rows.json: not the report `mnist-edge rows` writes" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.iterdir())


def test_the_card_says_how_the_shipped_locator_and_row_reader_were_made(tmp_path):
    """Each shipped helper network: its files' hashes and held-out figures, and every command behind
    it, from the first run its --init chain records to the last."""
    assert ship(MODELS, tmp_path).returncode == 0
    card = (tmp_path / "MODEL_CARD.md").read_text()
    for tool, report in (("locator", "locator.json"), ("rows", "rows.json")):
        made = json.loads((MODELS / report).read_text())
        for name, entry in made["files"].items():
            if name.endswith(("int8.tflite", "int8.onnx")):
                assert f"| {name} |" in card and entry["sha256"] in card, name
        runs, r = 0, made
        while r:
            runs, r = runs + 1, (r.get("init") or {}).get("report")
        lines = [ln for ln in card.splitlines() if ln.startswith(f"mnist-edge {tool} ")]
        assert len(lines) == runs and f"--seed {made['config']['seed']}" in lines[-1], lines
        assert "--init" not in lines[0] and all("--init" in ln for ln in lines[1:])


def test_a_run_trained_without_a_validation_set_says_so_in_its_card(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    train = json.loads((run / "train.json").read_text())
    train["init"] = None  # one run, not a fine-tune
    cards = {}
    for val_size, val_acc in ((5000, 0.9934), (0, None)):  # as `train` writes it with and without
        train["config"]["val_size"], train["val_accuracy"] = val_size, val_acc
        train["val_images"], train["best_epoch"] = val_size, train["epochs"] - (val_size > 0)
        (run / "train.json").write_text(json.dumps(train))
        r = ship(run, tmp_path / f"out{val_size}")
        assert r.returncode == 0, r.stderr
        cards[val_size] = (tmp_path / f"out{val_size}" / "MODEL_CARD.md").read_text()
    assert "No training images were held out: the last epoch was kept" in cards[0]
    assert "validation accuracy" not in cards[0] and "(last epoch)" in cards[0]
    assert "--val-size" not in cards[0].split("mnist-edge export")[0]  # today's default made it
    held = cards[5000]
    assert "5,000 training images were held out" in held and "validation accuracy 99.34 %" in held
    assert "No training images" not in held and "--val-size 5000 " in held  # the command that made it


def test_a_run_not_on_full_mnist_is_refused(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    train = json.loads((run / "train.json").read_text())
    train["data"]["full_mnist"] = False
    (run / "train.json").write_text(json.dumps(train))
    r = ship(run, tmp_path / "out")
    assert r.returncode == 2 and "not full MNIST; not shipping it" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_report_of_another_model_is_refused(tmp_path):
    """train.json names the model.keras it wrote by hash: a run whose model was swapped since is not
    shipped under that report's card."""
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    train = json.loads((run / "train.json").read_text())
    train["model"] = {"file": "model.keras", "sha256": "0" * 64}
    (run / "train.json").write_text(json.dumps(train))
    r = ship(run, tmp_path / "out")
    assert r.returncode == 2 and r.stderr.strip() == (
        f"ship_models: error: {run / 'train.json'} describes another file than model.keras (another "
        "SHA-256); not shipped")
    assert not (tmp_path / "out").exists()


def test_files_exported_from_another_model_are_refused(tmp_path):
    """model.keras retrained (its train.json with it) but not exported again: the manifest's model
    files are the old model's, so the run is not shipped under the new card."""
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["source_model"]["sha256"] = "0" * 64
    (run / "manifest.json").write_text(json.dumps(manifest))
    r = ship(run, tmp_path / "out")
    assert r.returncode == 2 and "its files were exported from another model than model.keras" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_run_without_its_manifest_is_one_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    (run / "manifest.json").unlink()
    r = ship(run, tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"ship_models: error: {run / 'manifest.json'}: not found (expected the "
                                "JSON a full `make run` writes)")


def test_a_fine_tuned_run_gives_both_commands_and_its_desk_crops_in_its_card(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    train = json.loads((run / "train.json").read_text())
    start = (train.get("init") or {}).get("report") or dict(train)
    start["config"] = {**start["config"], "init": None, "desk_scenes": 0, "lr": 0.003, "val_size": 5000}
    start["epochs"], start["seconds"] = 30, 1068.0
    train["init"] = {"file": "model.keras", "sha256": "ab" * 32, "report": start}
    train["config"] = {**train["config"], "init": "artifacts/base/model.keras", "desk_scenes": 24000,
                       "lr": 0.0005, "val_size": 0, "seed": 0}
    train["epochs"], train["seconds"], train["val_accuracy"] = 5, 400.0, None
    train["desk_crops"] = {"scenes": 24000, "crops": 71000,
                           "locator": {"file": "locator_int8.tflite", "sha256": "cd" * 32}}
    (run / "train.json").write_text(json.dumps(train))
    r = ship(run, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "mnist-edge train --arch edge --epochs 30 --batch-size 128 --seed 0 --val-size 5000 " in card
    assert ("mnist-edge train --init model.keras --arch edge --epochs 5 --batch-size 128 --seed 0 "
            "--lr 0.0005 --desk-scenes 24000 --data mnist.npz\n") in card
    assert "30 epochs in 1068 s, then a fine-tune of 5 epochs in 400 s" in card
    assert "The first run held out" in card and "the fine-tune learned from all of them" in card
    assert "71,000 crops of 24,000 generated desk scenes" in card and "`locator_int8.tflite`" in card


def test_the_card_follows_a_fine_tune_back_and_says_what_is_not_on_record(tmp_path):
    from tools.ship_models import chain, train_command

    base = {"config": {"arch": "edge", "batch_size": 128, "seed": 1, "lr": 0.003, "val_size": 0},
            "epochs": 30}
    mid = {"config": {**base["config"], "init": "a/model.keras", "lr": 0.0005, "desk_scenes": 100,
                      "desk_locator": "none", "augment": False}, "epochs": 3,
           "init": {"file": "model.keras", "sha256": "ab" * 32, "report": base}}
    top = {"config": {**mid["config"], "init": "b/model.keras", "desk_locator": "x/loc.tflite",
                      "augment": True},
           "epochs": 2, "init": {"file": "model.keras", "sha256": "cd" * 32, "report": mid}}
    lines = chain(top, train_command)
    assert lines[0] == "mnist-edge train --arch edge --epochs 30 --batch-size 128 --seed 1 --data mnist.npz"
    assert "--init model.keras" in lines[1]
    assert "--no-augment --desk-scenes 100 --desk-locator none" in lines[1]
    assert lines[2].endswith("--desk-scenes 100 --desk-locator loc.tflite --data mnist.npz")
    assert "--no-augment" not in lines[2]
    lost = chain({**top, "init": {"file": "model.keras", "sha256": "cd" * 32, "report": None}}, train_command)
    assert lost[0] == f"# --init model.keras (SHA-256 {'cd' * 32}): the run that made it is not on record"


def test_a_card_command_gives_the_settings_a_run_was_trained_with_under_todays_defaults():
    from tools.ship_models import RECIPE, train_command
    from train.train import TrainConfig

    old = {"config": {"arch": "edge", "batch_size": 128, "seed": 0}, "epochs": 30}  # before the fields
    settings = {key: before for key, _, before in RECIPE}
    line = train_command({**old, "config": {**old["config"], **settings}})
    assert line == train_command(old)  # a missing field is the value runs had before it existed
    for key, flag, before in RECIPE:
        if before != getattr(TrainConfig, key):
            assert f" {flag} {before} " in line  # today's default differs: the card says so
    other = {key: getattr(TrainConfig, key) + 1 for key, _, _ in RECIPE}
    line = train_command({**old, "config": {**old["config"], **other}})
    for key, flag, _ in RECIPE:
        assert f" {flag} {other[key]} " in line


def test_a_run_whose_export_failed_validation_is_refused(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(MODELS, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["model_int8.onnx"]["validation"]["ok"] = False  # as export writes a ✗ file
    (run / "manifest.json").write_text(json.dumps(manifest))
    r = ship(run, tmp_path / "out")
    assert r.returncode == 2 and "model_int8.onnx failed export's validation (" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("); not shipped") and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()
