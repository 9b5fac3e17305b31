"""Recorded runs and trained weights (records): what a record holds, its hash, the weights' hash and architecture,
and the lessons' view of a GPU record of the seed's recipe (made here from a tiny real run)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from nin_lib import presets, records, train, viz

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(width=0.1, batch_size=64, subset=256, test_subset=128, num_epochs=2, device="cpu")


@pytest.fixture(scope="module")
def recorded(fmnist, tmp_path_factory):
    """A folder holding one real (tiny) run recorded with its weights, through the command line's own functions."""
    folder = tmp_path_factory.mktemp("records")
    preset = presets.get_preset("quick", **TINY)
    run = presets.build_run(preset, data=fmnist)
    history = run.fit(progress=False, verbose=False)
    y, y_hat = train.predict(run.net, run.test_iter)
    weights = records.save_weights(run.net, "quick-tiny", preset=preset, folder=folder)
    record = records.make_record(history, preset=preset, command="python -m nin_lib train --preset quick",
                                 device=run.device, confusion=train.confusion_matrix(y, y_hat), wall_seconds=1.5,
                                 weights=weights)
    records.write(record, "quick-tiny", folder)
    return folder, run


def test_a_record_holds_what_ran_where_when_and_how(recorded, monkeypatch):
    folder, run = recorded
    monkeypatch.setenv(records.RECORDS_ENV, str(folder))
    record = records.load("quick-tiny")
    assert record["format"] == records.RECORD_FORMAT and record["preset"]["name"] == "quick" and record["seed"] == 0
    assert record["machine"]["device"].startswith("cpu (") and record["machine"]["torch"] == torch.__version__
    assert record["command"] == "python -m nin_lib train --preset quick"
    assert len(record["history"]["epochs"]) == 2 and record["timings"]["wall_seconds"] == 1.5
    assert sum(map(sum, record["confusion_matrix"])) == 128
    assert records.history(record).final_test_acc == pytest.approx(run.evaluate())
    assert records.describe(record).startswith("quick preset, seed 0: test accuracy ")
    assert "quick-tiny" in records.names("run") and records.runs("quick", "cpu")[0]["seed"] == 0
    assert records.runs("quick", "cuda") == []


def test_weights_come_back_in_fp32_with_the_same_predictions(recorded, monkeypatch):
    folder, run = recorded
    monkeypatch.setenv(records.RECORDS_ENV, str(folder))
    assert (folder / "quick-tiny.pt").stat().st_size < 200_000  # fp16: two bytes a weight
    net = records.load_weights("quick-tiny")
    assert not net.training and all(p.dtype == torch.float32 for p in net.parameters())
    X = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net(X), run.net.eval()(X), atol=5e-2)


def _copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def test_a_changed_record_is_one_sentence(recorded, tmp_path, monkeypatch):
    copy = _copy(recorded[0], tmp_path)
    path = copy / "quick-tiny.json"
    record = json.loads(path.read_text())
    record["history"]["epochs"][-1]["test_acc"] = 0.99
    path.write_text(json.dumps(record))
    monkeypatch.setenv(records.RECORDS_ENV, str(copy))
    with pytest.raises(ValueError, match=r"^recorded file 'quick-tiny.json' does not match its sha256 in SHA256SUMS: "
                                         r"it was changed by hand or damaged; restore it or record it again\.$"):
        records.load("quick-tiny")


def test_a_damaged_weights_file_is_one_sentence(recorded, tmp_path, monkeypatch):
    copy = _copy(recorded[0], tmp_path)
    path = copy / "quick-tiny.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    monkeypatch.setenv(records.RECORDS_ENV, str(copy))
    with pytest.raises(ValueError, match="does not match its sha256"):
        records.load_weights("quick-tiny")
    records._add_sum(copy, path)  # even with a matching hash, half a file cannot be read
    with pytest.raises(ValueError, match=r"^weights 'quick-tiny.pt' cannot be read \(\w+\): the file is damaged\.$"):
        records.load_weights("quick-tiny")


def test_weights_that_do_not_fit_their_preset_are_one_sentence(recorded, tmp_path, monkeypatch):
    copy = _copy(recorded[0], tmp_path)
    saved = torch.load(copy / "quick-tiny.pt", weights_only=True)
    saved["preset"]["width"] = 0.25  # another net than the one the weights are for
    torch.save(saved, copy / "quick-tiny.pt")
    records._add_sum(copy, copy / "quick-tiny.pt")
    monkeypatch.setenv(records.RECORDS_ENV, str(copy))
    with pytest.raises(ValueError, match=r"^weights 'quick-tiny.pt' do not fit the net of their preset 'quick'\.$"):
        records.load_weights("quick-tiny")


def test_an_unlisted_or_unknown_record_is_one_sentence(recorded, tmp_path, monkeypatch):
    copy = _copy(recorded[0], tmp_path)
    (copy / records.SUMS).write_text("")
    monkeypatch.setenv(records.RECORDS_ENV, str(copy))
    with pytest.raises(ValueError, match="is not listed in SHA256SUMS beside it"):
        records.load("quick-tiny")
    with pytest.raises(ValueError, match="record 'nothing' is not recorded here; the records found are: "):
        records.load("nothing")


def test_every_shipped_file_is_listed_with_its_hash():
    shipped = sorted(p.name for p in records.PACKAGED.iterdir() if p.name != records.SUMS)
    listed = records._sums(records.PACKAGED)
    assert shipped and sorted(listed) == shipped
    for name in shipped:
        records.verify(records.PACKAGED / name)


@pytest.fixture
def gpu_record(recorded, tmp_path, monkeypatch):
    """A small record that says the seed's recipe ran on a GPU (made from the tiny run), in NIN_RECORDS_DIR."""
    folder = tmp_path / "gpu"
    folder.mkdir()
    record = json.loads((recorded[0] / "quick-tiny.json").read_text())
    record["preset"] = presets.get_preset("d2l").to_dict()
    record["machine"]["device"] = "cuda (a test GPU)"
    record["weights"] = None
    records.write(record, "d2l-test-gpu", folder)
    monkeypatch.setenv(records.RECORDS_ENV, str(folder))
    return record


def test_the_lessons_view_of_a_gpu_record_of_the_seeds_recipe(gpu_record):
    runs = records.runs("d2l", device_type="cuda")
    assert len(runs) == 1 and records.describe(runs[0]).startswith("d2l preset, seed 0: test accuracy")
    fig = viz.record_curves(runs)
    assert fig._suptitle.get_text().startswith("recorded: the d2l preset on cuda (a test GPU), ")
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in acc_ax.get_lines()] == ["seed 0"] and acc_ax.get_ylabel().startswith("test")


@pytest.mark.parametrize("lesson", ["00_d2l_chapter.ipynb", "05_training.ipynb"])
def test_lessons_00_and_05_show_a_gpu_record_of_the_seeds_recipe(gpu_record, lesson, tmp_path, monkeypatch):
    """The lesson, run up to the cell that shows recorded GPU runs (fast mode), with the small record in the package's
    place: the cell prints the record's description and draws its curves."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(str(ROOT / "notebooks" / lesson), as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "records.runs('d2l'" in c.source)
    nb.cells = nb.cells[:last + 1]
    monkeypatch.setenv("NIN_FAST", "1")
    nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = nb.cells[last].outputs
    text = "".join(o.get("text", "") for o in shown)
    assert records.describe(gpu_record) in text
    assert any("image/png" in o.get("data", {}) for o in shown), "no curves drawn"
