"""``python -m nin_lib records list | import``: what is recorded, and bringing a GPU run's records into the package."""
import shutil

import pytest

from conftest import run_cli as run
from nin_lib import experiments, presets, records


def _train_record(folder, name, out, seed):
    """One real record with its weights, written by the train command (the quick preset on 64 images)."""
    r = run("train", "--preset", "quick", "--device", "cpu", "--threads", "1", "--subset", "64", "--test-subset", "64",
            "--seed", seed, "--no-progress", "--out", out, "--record", name, "--record-dir", folder, "--weights", name)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory, fmnist):
    """A folder as a GPU run leaves it: two run records with their weights, a grid of experiments, SHA256SUMS."""
    folder = tmp_path_factory.mktemp("gpu-records")
    out = tmp_path_factory.mktemp("train-out")
    for seed in (0, 1):
        _train_record(folder, f"r-seed-{seed}", out, seed)
    records.write({"format": experiments.FORMAT, "mode": "tiny", "complete": True, "created": "2026-12-01T00:00:00",
                   "device": "cpu", "seeds": [0, 1], "configs": {"base": {}, "fc-head": {}}}, "grid", folder)
    return folder


@pytest.fixture
def src(source, tmp_path):
    """A copy of ``source`` that a test may damage."""
    return shutil.copytree(source, tmp_path / "src")


def _import(src, into, *args):
    return run("records", "import", src, *args, "--into", into)


def test_list_shows_every_record_with_its_check(src):
    r = run("records", "list", "--dir", src)
    assert r.returncode == 0, r.stderr
    assert f"{src}: 3 record(s)" in r.stdout
    assert "  r-seed-0 (run, ok): quick preset, seed 0: test accuracy 0." in r.stdout
    assert "    weights r-seed-1.pt: ok" in r.stdout
    assert "  grid (experiments, ok): grid of 2 configuration(s) x 2 seed(s), tiny mode, on cpu, 2026-12-01" in r.stdout
    (src / "r-seed-1.json").write_text((src / "r-seed-1.json").read_text().replace('"seed": 1', '"seed": 7', 1))
    (src / "r-seed-0.pt").unlink()
    r = run("records", "list", "--dir", src)
    assert "r-seed-1 (run, NOT OK: recorded file 'r-seed-1.json' does not match its sha256" in r.stdout
    assert "weights r-seed-0.pt: NOT OK: weights 'r-seed-0.pt' are not in this folder." in r.stdout


def test_list_without_a_folder_shows_nin_records_dir_then_the_package(src, monkeypatch):
    monkeypatch.setenv(records.RECORDS_ENV, str(src))
    lines = run("records", "list").stdout.splitlines()
    headings = [line for line in lines if not line.startswith(" ")]
    assert headings[0] == f"{src}: 3 record(s)"
    assert headings[1].startswith("the package's records (nin_lib/recorded): ")


def test_import_all_copies_the_records_and_their_weights_with_their_hashes(src, tmp_path, monkeypatch):
    into = tmp_path / "into"
    r = _import(src, into)
    assert r.returncode == 0, r.stderr
    assert "copied 5 file(s) into" in r.stdout
    assert sorted(p.name for p in into.iterdir()) == ["SHA256SUMS", "grid.json", "r-seed-0.json", "r-seed-0.pt",
                                                      "r-seed-1.json", "r-seed-1.pt"]
    for name in ("grid.json", "r-seed-0.json", "r-seed-0.pt", "r-seed-1.pt"):
        records.verify(into / name)
        assert (into / name).read_bytes() == (src / name).read_bytes()
    monkeypatch.setenv(records.RECORDS_ENV, str(into))
    assert records.load("r-seed-1")["seed"] == 1
    net = records.load_weights("r-seed-0")
    assert not net.training and sum(p.numel() for p in net.parameters()) > 0


def test_import_keeps_only_the_weights_named(src, tmp_path, monkeypatch):
    into = tmp_path / "into"
    assert _import(src, into, "--without-weights").returncode == 0
    r = _import(src, into, "r-seed-1.pt")
    assert r.returncode == 0 and r.stdout.rstrip().endswith(": r-seed-1.pt")
    assert not (into / "r-seed-0.pt").exists() and (into / "r-seed-1.pt").is_file()
    monkeypatch.setenv(records.RECORDS_ENV, str(into))
    assert records.load("r-seed-0")["weights"]["file"] == "r-seed-0.pt"  # the record still says what it trained
    records.load_weights("r-seed-1")
    with pytest.raises(ValueError, match="weights 'r-seed-0' are not recorded here"):
        records.load_weights("r-seed-0")


def test_import_of_one_record_brings_its_weights_only(src, tmp_path):
    into = tmp_path / "into"
    assert _import(src, into, "r-seed-0").returncode == 0
    assert sorted(p.name for p in into.iterdir()) == ["SHA256SUMS", "r-seed-0.json", "r-seed-0.pt"]


def test_import_into_the_package_by_default(src, tmp_path, monkeypatch):
    package = tmp_path / "recorded"
    monkeypatch.setattr(records, "PACKAGED", package)
    r = run("records", "import", src, "grid")
    assert r.returncode == 0, r.stderr
    assert "into the package's records (nin_lib/recorded)" in r.stdout
    assert records.verify(package / "grid.json")


def _one_sentence(r, says):
    assert r.returncode == 2
    assert says in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_changed_file_is_one_sentence_and_nothing_is_copied(src, tmp_path):
    weights = src / "r-seed-1.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    into = tmp_path / "into"
    _one_sentence(_import(src, into), "recorded file 'r-seed-1.pt' does not match its sha256 in SHA256SUMS")
    assert not into.exists()


def test_missing_weights_are_one_sentence_and_nothing_is_copied(src, tmp_path):
    (src / "r-seed-1.pt").unlink()
    into = tmp_path / "into"
    _one_sentence(_import(src, into), "record 'r-seed-1.json' names the weights 'r-seed-1.pt', which are not in")
    assert not into.exists()
    assert _import(src, into, "--without-weights").returncode == 0  # the records alone still come in
    assert not (into / "r-seed-1.pt").exists()


def test_weights_of_another_run_under_the_same_name_are_refused(src, tmp_path):
    p = presets.get_preset("quick")
    records.save_weights(p.build_net(), "r-seed-0", preset=p, folder=src)  # listed in SHA256SUMS, but not that run's
    into = tmp_path / "into"
    _one_sentence(_import(src, into, "r-seed-0"), "weights 'r-seed-0.pt' are not the ones record 'r-seed-0.json'")
    assert not into.exists()


def test_an_unlisted_file_is_refused(src, tmp_path):
    shutil.copy(src / "grid.json", src / "extra.json")
    _one_sentence(_import(src, tmp_path / "into", "extra"), "recorded file 'extra.json' is not listed in SHA256SUMS")


@pytest.mark.parametrize("names, says", [
    (("r-seed-9",), "record 'r-seed-9' is not in"),
    (("r-seed-9.pt",), "weights 'r-seed-9.pt' are not in"),
    (("../src/r-seed-0.pt",), "name '../src/r-seed-0.pt' is not a file name"),
])
def test_unknown_names_are_one_sentence(src, tmp_path, names, says):
    _one_sentence(_import(src, tmp_path / "into", *names), says)


def test_a_missing_or_empty_folder_is_one_sentence(tmp_path):
    _one_sentence(_import(tmp_path / "nowhere", tmp_path / "into"), "does not exist; give the folder that holds")
    (tmp_path / "empty").mkdir()
    _one_sentence(_import(tmp_path / "empty", tmp_path / "into"), "holds no records to import")
    _one_sentence(run("records", "import", tmp_path / "empty", "--into", tmp_path / "empty"),
                  "is where the records would go")
