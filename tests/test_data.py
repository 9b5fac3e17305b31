"""The Fashion-MNIST data layer: IDX parsing, checksums, folders, downloads, subsets, batches."""
import gzip
import http.server
import os
import shutil
import socket
import stat
import threading
from pathlib import Path

import pytest
import torch

from nin_lib import checks, data


def test_known_facts(fmnist):
    assert fmnist.train_images.shape == (60000, 28, 28) and fmnist.train_images.dtype == torch.uint8
    assert fmnist.test_images.shape == (10000, 28, 28)
    assert data.SPLIT_SIZES == {"train": 60000, "test": 10000}
    assert fmnist.train_labels.dtype == torch.int64
    assert fmnist.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fmnist.test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(fmnist.train_labels).tolist() == [6000] * 10
    assert torch.bincount(fmnist.test_labels).tolist() == [1000] * 10
    assert data.text_labels([9, 0]) == ["ankle boot", "t-shirt"]
    # images are not blank and use the full byte range
    assert fmnist.train_images.max() == 255 and fmnist.train_images.float().mean() > 50


def _copy_files(src, dst, names=None):
    dst.mkdir(parents=True, exist_ok=True)
    for name, (filename, *_r) in data.FILES.items():
        if names is None or name in names:
            shutil.copy(Path(src) / filename, dst / filename)
    return dst


@pytest.fixture
def source_dir():
    return data.data_dir()


def test_read_only_folder_works(source_dir, tmp_path):
    folder = _copy_files(source_dir, tmp_path / "ro", ["test-images", "test-labels"])
    for f in folder.iterdir():
        f.chmod(stat.S_IRUSR)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        images, labels = data.load_split("test", folder, allow_download=False)
        assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [9, 2, 1]
        assert sorted(p.name for p in folder.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    finally:
        folder.chmod(stat.S_IRWXU)


def test_wrong_checksum_is_one_clear_sentence(source_dir, tmp_path):
    folder = _copy_files(source_dir, tmp_path, ["test-labels"])
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz .* wrong MD5 checksum.*delete it") as info:
        data.find("test-labels", folder, allow_download=False)
    assert isinstance(info.value, checks.Refusal)  # a corrupt file is the user's to fix: one sentence, not a bug


def test_truncated_file_is_named(source_dir, tmp_path):
    folder = _copy_files(source_dir, tmp_path, ["test-labels"])
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError, match=r"truncated \(1,000 bytes, expected 5,148\)"):
        data.find("test-labels", folder, allow_download=False)


def test_idx_parsing_checks_magic_and_length():
    header = (0x803).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    t = data.parse_idx(header + bytes(range(12)), 0x803)
    assert t.shape == (2, 2, 3) and t[1, 1, 2] == 11
    with pytest.raises(data.DataError, match="magic number 0x12345678"):
        data.parse_idx((0x12345678).to_bytes(4, "big") + bytes(8))
    with pytest.raises(data.DataError, match="expected 0x00000801"):
        data.parse_idx(header + bytes(12), 0x801)
    with pytest.raises(data.DataError, match="holds 11 data bytes, but its header"):
        data.parse_idx(header + bytes(11))


def test_not_gzip_is_reported(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not a gzip file at all")
    with pytest.raises(data.DataError, match="not a valid gzip file"):
        data.read_idx_gz(bad)
    good = tmp_path / "y.gz"
    good.write_bytes(gzip.compress((0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3])))
    assert data.read_idx_gz(good, 0x801).tolist() == [1, 2, 3]


def test_data_dir_errors(tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    monkeypatch.setenv(data.DATA_ENV, str(a_file))
    with pytest.raises(data.DataError, match="is a file, not a folder"):
        data.data_dir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    monkeypatch.setenv(data.DATA_ENV, str(locked))
    try:
        if os.access(locked, os.R_OK):  # root can read anything; simulate the check's view
            monkeypatch.setattr(data.os, "access", lambda p, mode: False)
        with pytest.raises(data.DataError, match="cannot be read"):
            data.data_dir()
    finally:
        locked.chmod(stat.S_IRWXU)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_says_what_to_fetch_and_where(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(data.DataError) as info:
        data.find("test-labels", tmp_path / "empty", urls=[url])
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz is missing from" in message and "put it in" in message
    assert "NIN_DATA_DIR" in message and message.count("\n") == 0
    assert not any((tmp_path / "empty").iterdir())


class _Server:
    """A tiny HTTP server on 127.0.0.1 serving one folder, optionally cutting every reply short."""

    def __init__(self, folder, cut_after=None):
        folder, cut = str(folder), cut_after

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=folder, **kw)

            def log_message(self, *a):
                pass

            def copyfile(self, source, outputfile):
                if cut is None:
                    return super().copyfile(source, outputfile)
                outputfile.write(source.read(cut))  # then the connection closes early

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_broken_half_way_leaves_nothing_then_retry_succeeds(source_dir, tmp_path):
    mirror = _copy_files(source_dir, tmp_path / "mirror", ["test-labels"])
    target = tmp_path / "cache"
    with _Server(mirror, cut_after=2000) as server:
        with pytest.raises(data.DataError, match="could not be downloaded"):
            data.find("test-labels", target, urls=[server.url])
    assert list(target.iterdir()) == []  # no partial file that could later pass as valid
    with _Server(mirror) as server:
        path = data.find("test-labels", target, urls=[server.url])
    assert path.name == "t10k-labels-idx1-ubyte.gz" and data.check_file(path, "test-labels") == path
    assert sorted(p.name for p in target.iterdir()) == ["t10k-labels-idx1-ubyte.gz"]


def test_download_with_wrong_content_is_rejected(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"x" * 5148)
    with _Server(mirror) as server:
        with pytest.raises(data.DataError, match="wrong checksum"):
            data.find("test-labels", tmp_path / "cache", urls=[server.url])
    assert list((tmp_path / "cache").iterdir()) == []


def test_default_mirrors_come_from_torchvision():
    from torchvision.datasets import FashionMNIST
    assert data.mirrors() == list(FashionMNIST.mirrors)
    names = {url.rsplit("/", 1)[-1] for url, _ in FashionMNIST.resources}
    assert names == {f[0] for f in data.FILES.values()}
    assert {md5 for _, md5 in FashionMNIST.resources} == {f[1] for f in data.FILES.values()}


def test_batches_shapes_resize_and_range(fmnist):
    it = data.Batches(fmnist.test_images, fmnist.test_labels, 64, resize=224)
    X, y = next(iter(it))
    assert X.shape == (64, 1, 224, 224) and X.dtype == torch.float32
    assert 0 <= X.min() and X.max() <= 1 and y.tolist() == fmnist.test_labels[:64].tolist()
    assert len(it) == 157 and sum(len(y) for _, y in it) == 10000
    drop = data.Batches(fmnist.test_images, fmnist.test_labels, 64, drop_last=True)
    assert len(drop) == 156 and sum(len(y) for _, y in drop) == 156 * 64


def test_resize_matches_interpolate_on_each_image(fmnist):
    it = data.Batches(fmnist.test_images[:8], fmnist.test_labels[:8], 8, resize=56)
    X, _ = next(iter(it))
    one = torch.nn.functional.interpolate(fmnist.test_images[3][None, None].float() / 255, size=(56, 56),
                                          mode="bilinear", align_corners=False)
    assert torch.allclose(X[3:4], one)


def test_shuffle_is_seeded_and_changes_per_epoch(fmnist):
    def first_labels(seed, epochs=2):
        it = data.Batches(fmnist.train_images, fmnist.train_labels, 32, shuffle=True, seed=seed, subset=1000)
        return [next(iter(it))[1].tolist() for _ in range(epochs)]

    a, b = first_labels(1), first_labels(1)
    assert a == b and a[0] != a[1]
    assert first_labels(2) != a
    resumed = data.Batches(fmnist.train_images, fmnist.train_labels, 32, shuffle=True, seed=1, subset=1000)
    resumed.set_epoch(1)
    assert next(iter(resumed))[1].tolist() == a[1]


def test_subset_is_reproducible_and_distinct(fmnist):
    a = data.subset_indices(60000, 500, seed=3)
    assert torch.equal(a, data.subset_indices(60000, 500, seed=3))
    assert not torch.equal(a, data.subset_indices(60000, 500, seed=4))
    assert len(set(a.tolist())) == 500
    with pytest.raises(checks.Refusal, match="subset size 70000 is larger than the 60000"):
        data.subset_indices(60000, 70000)


def test_batches_say_which_examples_they_kept(fmnist):
    kept = data.Batches(fmnist.test_images, fmnist.test_labels, 50, subset=300, seed=5)
    assert torch.equal(kept.indices, data.subset_indices(10000, 300, seed=5))
    assert torch.equal(kept.labels, fmnist.test_labels[kept.indices])
    assert torch.equal(data.Batches(fmnist.test_images[:20], fmnist.test_labels[:20], 5).indices, torch.arange(20))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8", True])
def test_bad_batch_size(fmnist, bad):
    with pytest.raises(checks.Refusal, match=f"batch_size {bad!r} is not allowed"):
        data.Batches(fmnist.test_images, fmnist.test_labels, bad)


@pytest.mark.parametrize("kwargs, says", [(dict(resize=0), "resize 0"), (dict(seed=2.5), "seed 2.5"),
                                          (dict(subset=0), "subset size 0"), (dict(subset=20000), "subset size 20000")])
def test_bad_batches_settings(fmnist, kwargs, says):
    with pytest.raises(checks.Refusal, match=says):
        data.Batches(fmnist.test_images, fmnist.test_labels, 8, **kwargs)


def test_batch_size_larger_than_data(fmnist):
    with pytest.raises(checks.Refusal, match="batch_size 20000 is larger than the 10000 examples"):
        data.Batches(fmnist.test_images, fmnist.test_labels, 20000)


def test_flip_augments_half_the_batch_reproducibly(fmnist):
    it = data.Batches(fmnist.test_images[:256], fmnist.test_labels[:256], 256, flip=True, seed=0)
    X, _ = next(iter(it))
    plain = fmnist.test_images[:256].unsqueeze(1).float() / 255
    flipped = (X == plain.flip(-1)).flatten(1).all(1) & ~(X == plain).flatten(1).all(1)
    assert 80 < int(flipped.sum()) < 176
    it.set_epoch(0)
    assert torch.equal(next(iter(it))[0], X)


def test_d2l_style_loader_matches_book_semantics(tmp_path):
    train_iter, test_iter = data.d2l_style_loaders(32, resize=64, num_workers=0, cache=tmp_path)
    X, y = next(iter(test_iter))
    assert X.shape == (32, 1, 64, 64) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= X.min() and X.max() <= 1 and y[:3].tolist() == [9, 2, 1]
    assert len(train_iter.dataset) == 60000
