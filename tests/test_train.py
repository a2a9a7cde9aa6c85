"""Training end to end: a quick run learns, writes its artifacts and records where it came from."""

import json

import pytest

from edge.provenance import sha256_file
from tests.conftest import cli

pytest.importorskip("tensorflow")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, mnist_file):
    out = tmp_path_factory.mktemp("train")
    r = cli("train", "--quick", "--data", str(mnist_file), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r


def test_quick_training_learns(quick_run):
    out, r = quick_run
    report = json.loads((out / "train.json").read_text())
    assert report["test_accuracy"] > 0.80  # chance is 0.10
    assert "test accuracy" in r.stdout and str(out / "model.keras") in r.stdout


def test_train_json_records_provenance(quick_run, mnist_file):
    out, r = quick_run
    report = json.loads((out / "train.json").read_text())
    assert report["arch"] == "edge" and report["params"] < 100_000 and report["macs"] > 0
    assert report["data"]["source"] == f"npz:{mnist_file}"
    assert report["data"]["sha256"]["x_test"].startswith("6d87418db22cc802")
    assert report["environment"]["packages"]["tensorflow-cpu"]
    assert report["config"]["quick"] is True and report["epochs"] == 2
    assert report["val_accuracy"] is None and report["val_images"] == 0  # the default: no held-out set
    assert report["best_epoch"] == 2 and "(no validation set, last epoch 2/2)" in r.stdout
    assert not any(k.startswith("val_") for k in report["history"])
    assert report["model"] == {"file": "model.keras", "sha256": sha256_file(out / "model.keras")}
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))



def test_quick_takes_epochs_given_and_a_capped_val_size_says_so(tmp_path, mnist_file):
    """--quick trained its own 2 epochs whatever --epochs said, and a --val-size over a tenth of the
    training images was cut down without a word."""
    r = cli("train", "--quick", "--epochs", "1", "--val-size", "20000", "--data", str(mnist_file),
            "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["epochs"] == 1 and len(report["history"]["loss"]) == 1
    assert "--val-size 20000: holding out 6000, a tenth of the 60000 training images" in r.stderr

def test_saved_model_reloads_and_predicts(quick_run, mnist):
    import keras

    from train.data import preprocess
    from train.model import custom_objects

    out, _ = quick_run
    model = keras.models.load_model(out / "model.keras", custom_objects=custom_objects())
    p = model.predict(preprocess(mnist.x_test[:200]), verbose=0)
    assert p.shape == (200, 10)
    assert (p.argmax(1) == mnist.y_test[:200]).mean() > 0.8
    assert not any("random" in layer.name for layer in model.layers)  # no augmentation inside


def test_training_is_deterministic(quick_run, tmp_path, mnist_file):
    """The same settings train the same model: here, in this process, as `mnist-edge train --quick`
    did in its own."""
    from train.train import TrainConfig, train

    a = train(TrainConfig(quick=True, data=str(mnist_file), out=str(tmp_path / "a")))
    b = json.loads((quick_run[0] / "train.json").read_text())
    assert a["history"]["loss"] == b["history"]["loss"] and len(a["history"]["loss"]) == 2


def test_val_size_holds_images_out_and_keeps_the_best_epoch_on_them(tmp_path, mnist_file, mnist):
    from train.train import TrainConfig, _splits

    (x_tr, _), (x_val, _), _ = _splits(mnist, TrainConfig(val_size=0))
    assert len(x_tr) == len(mnist.x_train) and len(x_val) == 0
    (x_tr, _), (x_val, _), _ = _splits(mnist, TrainConfig(val_size=5000))
    assert len(x_tr) + len(x_val) == len(mnist.x_train) and len(x_val) == 5000
    assert TrainConfig().val_size == 0  # the default learns from every training image

    r = cli("train", "--quick", "--val-size", "5000", "--data", str(mnist_file), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["val_images"] == 1000 and report["config"]["val_size"] == 5000  # --quick's share
    val = report["history"]["val_categorical_accuracy"]
    assert report["val_accuracy"] == max(val) and report["best_epoch"] == 2 - val[::-1].index(max(val))
    assert f"(val {100 * max(val):.2f} %, best epoch {report['best_epoch']}/2)" in r.stdout
    assert report["test_accuracy"] > 0.80


def test_the_kept_epoch_is_the_best_on_validation_and_the_later_of_equals():
    from train.train import _BestWeights

    class Model:  # what the callback reads: the weights at each epoch's end
        epoch = 0

        def get_weights(self):
            return [self.epoch]

    model = Model()
    best = _BestWeights(model)
    for epoch, acc in enumerate([0.990, 0.996, 0.994, 0.996, 0.995]):
        model.epoch = epoch
        best.on_epoch_end(epoch, {"val_categorical_accuracy": acc})
    assert (best.epoch, best.val_acc, best.weights) == (3, 0.996, [3])
    none = _BestWeights(model)  # no validation set: the last epoch
    for epoch in range(3):
        model.epoch = epoch
        none.on_epoch_end(epoch, {"loss": 0.1})
    assert none.weights == [2]


def test_a_fine_tune_starts_from_its_init_and_records_the_whole_recipe(quick_run, tmp_path, mnist_file):
    """--init: the weights it starts from are the given model's (its first epoch starts where that
    run ended, far below a new network's loss), and train.json names that file, the run that made
    it and the locator its desk crops were cut by."""
    from tests.conftest import REPO

    base, _ = quick_run
    r = cli("train", "--quick", "--init", str(base / "model.keras"), "--lr", "0.0003", "--desk-scenes", "12",
            "--data", str(mnist_file), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    tuned = json.loads((tmp_path / "train.json").read_text())
    made = json.loads((base / "train.json").read_text())
    assert tuned["init"]["sha256"] == sha256_file(base / "model.keras")
    assert tuned["init"]["report"]["config"] == made["config"] and "history" not in tuned["init"]["report"]
    assert tuned["history"]["loss"][0] < 0.6 * made["history"]["loss"][0]
    assert tuned["test_accuracy"] > 0.80
    desk = tuned["desk_crops"]
    assert desk["scenes"] == 12 and desk["crops"] >= 12  # 1-6 digits a scene, 10 % blank
    assert desk["locator"] == {"file": "locator_int8.tflite",
                               "sha256": sha256_file(REPO / "models" / "locator_int8.tflite")}


def test_an_init_record_vouches_only_with_a_readable_report(tmp_path):
    """What `train --init` and `locator --init` record of their start: its hash, and the report beside
    it minus the dropped keys; a report that is not a JSON object is no report (not a crash)."""
    from edge.provenance import init_record

    start = tmp_path / "model.keras"
    start.write_bytes(b"weights")
    (tmp_path / "train.json").write_text(json.dumps({"arch": "edge", "history": {"loss": [1.0]}}))
    assert init_record(start, "train.json", drop=("history",)) == {
        "file": "model.keras", "sha256": sha256_file(start), "report": {"arch": "edge"}}
    for text in ("{not json", "[1, 2]", "", json.dumps({"model": {"sha256": "0" * 64}})):  # the last:
        (tmp_path / "train.json").write_text(text)  # the report of another model, since replaced
        assert init_record(start, "train.json")["report"] is None
    (tmp_path / "locator.json").write_text(json.dumps({"files": {"model.keras": {"sha256": "0" * 64}}}))
    assert init_record(start, "locator.json")["report"] is None
    own = {"files": {"model.keras": {"sha256": sha256_file(start)}}}
    (tmp_path / "locator.json").write_text(json.dumps(own))
    assert init_record(start, "locator.json")["report"]["files"]
    assert init_record(None, "train.json") is None


def test_an_init_that_is_not_a_model_is_one_line(tmp_path, mnist_file):
    bad = tmp_path / "odd name; model.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    r = cli("train", "--quick", "--init", str(bad), "--data", str(mnist_file), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"--init {bad}: not a .keras file" in r.stderr
    assert not (tmp_path / "out").exists()  # refused before its train.log was made
