"""The row reader: rows from boxes, the strip a row is cut into, CTC decoding against Keras's, its
exported files against the Keras network, the frame path with a row reader, and `mnist-edge rows`
end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import rows as R
from edge.errors import UserError
from edge.locator import Box
from edge.provenance import sha256_file
from tests.conftest import REPO, cli


def test_rows_group_neighbours_alike_in_height_and_close():
    row = [Box(100, 200, 30, 60, 1), Box(135, 205, 25, 58, 1), Box(170, 198, 35, 62, 1)]
    apart = Box(400, 205, 30, 60, 1)  # more than a digit's height after the row's last box
    small = Box(210, 230, 10, 20, 1)  # a third of the row's height
    got = R.rows([apart, row[2], row[0], small, row[1]])
    assert [[b.x for b in r] for r in got] == [[100, 135, 170], [210], [400]]
    # a box between two others in reading order, on another line, ends their row: the rows read in
    # turn keep the frame's left-to-right order (a clean page's digits scattered up and down)
    below = Box(118, 300, 30, 60, 1)
    got = R.rows([row[0], below, row[1]])
    assert [[b.x for b in r] for r in got] == [[100], [118], [135]]


def _page(boxes, slope=0.0, shade=True):
    """A 480x640 grey page (a lamp's gradient when `shade`) with a dark bar in each box (x, y, w, h)."""
    page = np.full((480, 640), 200, np.uint8)
    if shade:
        page = (np.linspace(150, 230, 640)[None, :] * np.ones((480, 1))).astype(np.uint8)
    for x, y, w, h in boxes:
        cv2.rectangle(page, (x + w // 3, y), (x + 2 * w // 3, y + h), 40, -1)
    return page


def test_a_strip_follows_a_tilted_row_and_holds_its_digits():
    slope = 0.1
    boxes = [(100 + 80 * k, int(200 + slope * (100 + 80 * k)), 40, 60) for k in range(4)]
    s = R.strip(_page(boxes), [Box(*b, 1) for b in boxes])
    assert s.image.shape == R.STRIP_HW and s.image.dtype == np.uint8
    assert abs(s.slope - slope) < 0.01
    for x, y, w, h in boxes:  # every box centre lies in the strip; points above the row do not
        assert s.holds(x + w / 2, y + h / 2) and not s.holds(x + w / 2, y - h)
    # levelled: each bar spans the same strip rows, across the middle of the strip
    cols = s.image.max(axis=0) > 128
    runs = np.flatnonzero(np.diff(cols.astype(int)) == 1)
    assert len(runs) == 4
    inked_rows = [np.flatnonzero(s.image[:, c] > 128) for c in runs + 2]
    assert all(abs(r[0] - inked_rows[0][0]) <= 1 and abs(r[-1] - inked_rows[0][-1]) <= 1 for r in inked_rows)
    assert inked_rows[0][0] >= 4 and inked_rows[0][-1] <= R.STRIP_HW[0] - 5
    # the lamp's gradient is divided out: paper between the bars is near 0
    assert np.percentile(s.image[:, :runs[-1]], 50) < 20


def test_a_long_row_is_squeezed_into_the_strip_and_paper_alone_stays_faint():
    boxes = [(20 + 100 * k, 200, 60, 40) for k in range(6)]  # 6 digits, 16x as long as tall
    s = R.strip(_page(boxes, shade=False), [Box(*b, 1) for b in boxes])
    cols = s.image.max(axis=0) > 128
    assert np.count_nonzero(np.diff(cols.astype(int)) == 1) == 6 and cols[-20:].any()  # all 6, to the end
    assert s.across > 2 * s.half / R.STRIP_HW[0]  # squeezed across more than down
    blank = R.strip(np.random.default_rng(0).normal(200, 3, (480, 640)).clip(0, 255).astype(np.uint8),
                    [Box(300, 200, 40, 60, 1)])
    assert blank.image.max() < 255 * 0.5  # sensor noise is not scaled up into ink


def test_decode_matches_keras_greedy_ctc_decoding():
    import keras

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (64, 56, R.CLASSES)).astype(np.float32)
    logits[:, :, R.BLANK] += 2.0  # mostly blank, as a trained reader's are
    ours = R.decode(logits)
    (theirs,), _ = keras.ops.ctc_decode(logits, np.full(64, 56, np.int32), strategy="greedy",
                                        mask_index=R.BLANK)
    theirs = np.asarray(theirs)
    for r, t in zip(ours, theirs, strict=True):
        assert r.text == "".join(str(int(k) - 1) for k in t if k > 0)
        assert len(r.confidence) == len(r.steps) == len(r.text)
    assert sum(len(r.text) for r in ours) > 100  # the case is not trivially empty
    p = np.exp(logits[3] - logits[3].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    for ch, conf, t in zip(ours[3].text, ours[3].confidence, ours[3].steps, strict=True):
        assert int(p[t].argmax()) == int(ch) + 1 and conf == pytest.approx(float(p[t].max()))


def test_label_is_the_digits_whose_centres_lie_in_the_strip():
    from train.rows import label

    boxes = [(100, 200, 40, 60), (150, 200, 40, 60), (300, 200, 40, 60), (150, 400, 40, 60)]
    s = R.strip(_page(boxes[:2]), [Box(*b, 1) for b in boxes[:2]])
    assert label(s, "1234", boxes) == "12"


@pytest.fixture(scope="module")
def exported_rows(tmp_path_factory):
    """An untrained row reader's network and its three files, calibrated on random strips."""
    from edge.contract import rows_file
    from train.locator import export_all
    from train.rows import build

    out = tmp_path_factory.mktemp("rows")
    model = build(seed=0)
    strips = (np.random.default_rng(1).random((40, *R.STRIP_HW)) * 255).astype(np.uint8)
    for name, blob in export_all(model, strips, rows_file).items():
        (out / name).write_bytes(blob)
    return model, out, strips


def test_each_exported_file_computes_the_keras_network(exported_rows):
    model, out, strips = exported_rows
    want = model.predict(strips[:8, :, :, None] / 255.0, verbose=0)
    span = float(want.max() - want.min())
    for name in ("rows_fp32.tflite", "rows_int8.tflite", "rows_int8.onnx"):
        reader = R.RowReader(out / name)
        got = np.stack([reader.logits(s) for s in strips[:8]])
        tol = 1e-4 if "fp32" in name else 0.1  # int8: within a tenth of the logits' range
        assert got.shape == want.shape and np.abs(got - want).max() <= tol * span, name


def test_a_file_that_is_not_a_row_reader_is_one_line():
    with pytest.raises(UserError, match=r"--rows .*model_int8.tflite: not a row reader"):
        R.RowReader(REPO / "models" / "model_int8.tflite")


def test_the_frame_path_reads_rows_with_a_row_reader(exported_rows, monkeypatch):
    """read() with a row reader: the located boxes go to it, row by row, and what it reads (over
    --min-confidence) is the reading, each digit boxed by the located box it lies in."""
    from edge.classifier import Classifier
    from edge.locator import Locator
    from edge.reader import ROW_SURE, read

    _, out, _ = exported_rows
    frame = np.full((480, 640, 3), 200, np.uint8)
    cv2.putText(frame, "42", (200, 320), cv2.FONT_HERSHEY_SIMPLEX, 6, (40, 40, 40), 20)
    clf = Classifier(REPO / "models" / "model_int8.tflite")
    loc = Locator(REPO / "models" / "locator_int8.tflite")
    reader = R.RowReader(out / "rows_int8.tflite")
    seen = []

    def logits(image):  # a network that reads "4", "2" where the two boxes are
        seen.append(image)
        z = np.full((56, R.CLASSES), -9.0, np.float32)
        z[:, R.BLANK] = 9.0
        boxes = loc.locate(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        s = R.strip(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), boxes)
        for b, d in zip(boxes, (4, 2), strict=True):
            t = int((b.x + b.w / 2 - s.x0) / s.across / (R.STRIP_HW[1] / 56))
            z[t, :] = -9.0
            z[t, d + 1] = 9.0
        return z

    monkeypatch.setattr(reader, "logits", logits)
    r = read(frame, clf, locator=loc, rows=reader)
    assert r.text == "42" and len(seen) == 1 and r.found_by == "locator"
    boxes = loc.locate(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert [d.box for d in r.digits] == [(int(b.x), int(b.y), int(np.ceil(b.x + b.w)) - int(b.x),
                                          int(np.ceil(b.y + b.h)) - int(b.y)) for b in boxes]
    assert read(frame, clf, locator=loc, rows=reader, min_confidence=1.01).text == ""
    assert read(frame, clf, locator=loc).text == "42"  # without a row reader: the crops, as before

    def unsure(image):  # reads "77", each 7 under ROW_SURE: the row's crops are read instead
        z = logits(image)
        hot = np.flatnonzero(z[:, R.BLANK] < 0)
        z[hot] = -9.0
        z[hot, 8] = 0.0
        z[hot, R.BLANK] = -0.5
        return z

    monkeypatch.setattr(reader, "logits", unsure)
    said = R.decode(unsure(None)[None])[0]
    assert said.text == "77" and max(said.confidence) < ROW_SURE
    assert read(frame, clf, locator=loc, rows=reader).to_dict() == read(frame, clf, locator=loc).to_dict()


def test_rows_cli_learns_from_training_digits_only_and_writes_its_files(tmp_path, mnist_file, monkeypatch,
                                                                        caplog):
    """`mnist-edge rows --quick` end to end, in process so what it draws from can be watched: scenes
    of MNIST *training* digits only (learning and measuring on disjoint halves), the three files, and
    rows.json, written last, with each file's hash and its held-out rows read exactly."""
    from train import rows as T
    from train.data import load_mnist
    from train.model import load

    data = load_mnist(str(mnist_file))
    drawn = []
    real = T.make_strips

    def watch(images, labels, *args, **kw):
        drawn.append(images)
        return real(images, labels, *args, **kw)

    monkeypatch.setattr(T, "make_strips", watch)
    out = tmp_path / "odd name's rows"
    T.main(T.get_args_parser().parse_args(["--quick", "--workers", "1", "--data", str(mnist_file),
                                           "--out", str(out)]))
    assert len(drawn) == 2
    learn, measure = drawn
    assert len(learn) + len(measure) == len(data.x_train) and len(measure) > 0  # two halves of train
    assert np.array_equal(learn, data.x_train[:len(learn)])
    assert np.array_equal(measure, data.x_train[len(learn):])
    report = json.loads((out / "rows.json").read_text())
    for name in ("rows_int8.tflite", "rows_fp32.tflite", "rows_int8.onnx"):
        assert report["files"][name]["sha256"] == sha256_file(out / name)
        assert 0.0 <= report[name]["val_exact"] <= 1.0
    assert report["data"]["val_rows"] > 0 and "train split only" in report["data"]["digits"]
    assert report["init"] is None

    # --init goes on training that reader (a learning rate too small to move it shows where it
    # started), and its rows.json names the file it started from and the run that made it; the
    # start's own seed would draw its scenes again, and says so
    tuned = tmp_path / "tuned"
    T.main(T.get_args_parser().parse_args(["--quick", "--workers", "1", "--data", str(mnist_file),
                                           "--init", str(out / "rows.keras"), "--seed", "0",
                                           "--lr", "1e-9", "--out", str(tuned)]))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("draws the same ones again" in w for w in warned), warned
    kernels = [load(f"{d}/rows.keras", "test").layers[1].get_weights()[0] for d in (out, tuned)]
    assert np.allclose(*kernels, atol=1e-6)
    init = json.loads((tuned / "rows.json").read_text())["init"]
    assert init["sha256"] == sha256_file(out / "rows.keras") and init["report"]["config"]["seed"] == 0


def test_rows_init_must_be_a_row_reader():
    from train.rows import _load_init

    with pytest.raises(UserError, match=r"--init .*model.keras: not a row reader"):
        _load_init(str(REPO / "models" / "model.keras"), 0)


@pytest.mark.parametrize("flags, says", [
    (["--scenes", "5"], "--scenes must be >= 10"),
    (["--locator", "no/such.tflite"], "--locator no/such.tflite: "),
    (["--lr", "-1"], "--lr"),
    (["--epochs", "0"], "--epochs 0: a row reader must be trained"),
    (["--init", "no/such.keras"], "--init no/such.keras: "),
    (["--init", str(REPO / "models" / "rows_int8.tflite")], "expected the rows.keras a `mnist-edge rows`"),
])
def test_rows_cli_bad_flags_are_one_line(tmp_path, flags, says):
    r = cli("rows", *flags, "--out", str(tmp_path / "o"), timeout=120)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_predict_and_camera_read_rows_with_the_same_reader(exported_rows, tmp_path, mnist):
    """--rows FILE reaches the one read path from both commands: the same readings as `read` with that
    reader in process; --rows without a locator, or a missing file, is one line."""
    from benchmarks.desk import scene_set
    from edge.classifier import Classifier
    from edge.locator import Locator
    from edge.reader import read

    _, out, _ = exported_rows
    rows_file = out / "rows_int8.tflite"
    folder = tmp_path / "frames"
    folder.mkdir()
    scenes = scene_set(mnist.x_test, mnist.y_test, 4, seed=3)
    for k, s in enumerate(scenes):
        cv2.imwrite(str(folder / f"f{k}.png"), s.image)
    files = sorted(folder.iterdir())
    clf = Classifier(REPO / "models" / "model_int8.tflite")
    loc = Locator(REPO / "models" / "locator_int8.tflite")
    want = {f.name: read(cv2.imread(str(f)), clf, locator=loc, rows=R.RowReader(rows_file)).to_dict()
            for f in files}
    p = cli("predict", "--json", "--rows", str(rows_file), *map(str, files), timeout=120)
    c = cli("camera", "--rows", str(rows_file), "--source", str(folder), timeout=120)
    assert p.returncode == 0 and c.returncode == 0, p.stderr[-1500:] + c.stderr[-1500:]
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        assert (rec["reading"], rec["digits"]) == (want[Path(rec["file"]).name]["reading"],
                                                   want[Path(rec["file"]).name]["digits"])
    by_camera = [json.loads(line) for line in c.stdout.splitlines()]
    assert len(by_camera) == len(files)
    for rec in by_camera:
        assert (rec["reading"], rec["digits"]) == (want[rec["file"]]["reading"], want[rec["file"]]["digits"])
    for args, says in ((["--locator", "none", "--rows", str(rows_file)], "reads the rows the locator finds"),
                       (["--rows", str(tmp_path / "no.tflite")], "no.tflite: ")):
        r = cli("predict", *args, str(files[0]), timeout=120)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_doctor_checks_the_row_reader_beside_the_model(exported_rows, tmp_path):
    """doctor runs the row reader camera and predict would take, and checks its hash against rows.json;
    a changed file is named."""
    import shutil

    from edge.contract import file_entry

    _, out, _ = exported_rows
    folder = tmp_path / "models"
    shutil.copytree(REPO / "models", folder)
    shutil.copy(out / "rows_int8.tflite", folder / "rows_int8.tflite")
    (folder / "rows.json").write_text(json.dumps({"files": {"rows_int8.tflite":
                                                            file_entry(folder / "rows_int8.tflite")}}))
    r = cli("doctor", "--model", str(folder / "model_int8.tflite"), timeout=120)
    assert r.returncode == 0, r.stdout
    assert "matches rows.json" in r.stdout and "rows_int8.tflite       litert          runs" in r.stdout
    with open(folder / "rows_int8.tflite", "r+b") as f:  # one byte of its weights changed
        f.seek(-100, 2)
        b = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([b[0] ^ 1]))
    r = cli("doctor", "--model", str(folder / "model_int8.tflite"), timeout=120)
    assert r.returncode == 1, r.stdout
    assert "not ready: rows_int8.tflite differs from its rows.json" in r.stdout, r.stdout
    assert "(mnist-edge rows) or copy it again" in r.stdout


def test_the_shipped_row_reader_is_the_default_and_reads_desk_frames_better_than_crops(mnist):
    """camera and predict take the shipped row reader by default; on seeded desk scenes of *test*
    digits it reads at least as many frames exactly as the crops of the same located boxes do."""
    from benchmarks.desk import scene_set
    from edge.classifier import Classifier
    from edge.locator import Locator
    from edge.reader import read

    model, locator = REPO / "models" / "model_int8.tflite", REPO / "models" / "locator_int8.tflite"
    rows = R.open_rows(None, locator, model)
    assert rows is not None and rows.path == REPO / "models" / "rows_int8.tflite"
    assert R.open_rows("none", locator, model) is None
    clf, loc = Classifier(model), Locator(locator)
    scenes = scene_set(mnist.x_test, mnist.y_test, 80, seed=11)
    by_rows = sum(read(s.image, clf, locator=loc, rows=rows).text == s.truth for s in scenes)
    by_crops = sum(read(s.image, clf, locator=loc).text == s.truth for s in scenes)
    assert by_rows >= by_crops and by_rows >= 0.85 * len(scenes), (by_rows, by_crops)


def test_two_lines_whose_boxes_alternate_are_not_read_twice():
    """Two written lines, the lower shifted: their boxes alternate left to right, so most rows hold
    one box, and a strip's margin reaches the next digit of its line; that digit is left to its own
    row, so the row reader reads each digit once, as the crops do."""
    from edge.classifier import Classifier
    from edge.locator import Locator
    from edge.reader import read

    clf = Classifier(REPO / "models" / "model_int8.tflite")
    loc = Locator(REPO / "models" / "locator_int8.tflite")
    rows = R.RowReader(REPO / "models" / "rows_int8.tflite")
    for dx in (0, 35, 50):
        frame = np.full((480, 640, 3), 200, np.uint8)
        cv2.putText(frame, "1234", (120, 190), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (40, 40, 40), 7)
        cv2.putText(frame, "5678", (120 + dx, 330), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (40, 40, 40), 7)
        by_rows = read(frame, clf, locator=loc, rows=rows)
        assert sorted(by_rows.text) == sorted("12345678"), (dx, by_rows.text)
        assert by_rows.text == read(frame, clf, locator=loc).text, dx
        for d in by_rows.digits:  # every box inside the frame
            x, y, w, h = d.box
            assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480 and w > 0 and h > 0


def test_boxes_a_row_cannot_be_cut_from_are_left_out():
    good = Box(100, 100, 30, 50, 1)
    bad = [Box(float("nan"), 100, 30, 50, 1), Box(200, 100, 0, 0, 1), Box(300, 100, float("inf"), 50, 1)]
    assert R.rows([*bad, good]) == [[good]]


def test_a_box_read_at_the_frames_edge_is_cut_to_the_frame():
    from edge.reader import _in_frame

    assert _in_frame(-10.4, 5.0, 30.0, 500.0, 2.0, (480, 640)) == (0, 10, 40, 470)
    assert _in_frame(630.0, 470.0, 30.0, 30.0, 1.0, (480, 640)) == (630, 470, 10, 10)
