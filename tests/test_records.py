"""Recorded runs and trained weights (records): what a record holds, the weights' hash, the shipped records, and the
lessons' view of a GPU record of the seed's recipe (made here from a tiny real run)."""
import json
from pathlib import Path

import pytest
import torch

from conftest import quiet, tiny_run
from nin_lib import checks, experiments, presets, records, train, viz

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def recorded(fmnist, tmp_path_factory):
    """A folder holding one real (tiny) run recorded with its weights, as the command line records one."""
    folder = tmp_path_factory.mktemp("records")
    run = tiny_run(fmnist)
    preset = run.preset
    history = run.fit(callbacks=quiet())
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
    assert records.about(record).startswith("quick preset, seed 0: test accuracy ")
    assert "quick-tiny" in records.names("run") and "quick-tiny" not in records.names("experiments")
    assert [r["seed"] for r in records.runs("quick", "cpu") if r["command"] == record["command"]] == [0]
    assert records.runs("quick", "cuda") == []


def test_weights_come_back_in_fp32_with_the_same_predictions(recorded):
    folder, run = recorded
    assert (folder / "quick-tiny.pt").stat().st_size < 200_000  # fp16: two bytes a weight
    net = records.load_weights("quick-tiny", folder)
    assert not net.training and all(p.dtype == torch.float32 for p in net.parameters())
    X = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net(X), run.net.eval()(X), atol=5e-2)


def _change_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, says", [
    (_change_a_byte, "weights 'quick-tiny.pt' do not match the sha256"),
    (Path.unlink, "weights 'quick-tiny.pt' of the quick run with seed 0 are not shipped"),
])
def test_weights_changed_or_missing_are_refused(recorded, tmp_path, damage, says):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("quick-tiny.json", "quick-tiny.pt"):
        (folder / name).write_bytes((recorded[0] / name).read_bytes())
    damage(folder / "quick-tiny.pt")
    with pytest.raises(checks.Refusal, match=says):
        records.load_weights("quick-tiny", folder)


@pytest.mark.parametrize("name, format, says", [
    ("nothing", records.RECORD_FORMAT, "record 'nothing' is not a nin-record-1 file"),
    ("experiments-cpu", records.RECORD_FORMAT, "record 'experiments-cpu' is not a nin-record-1 file"),
    ("quick-cpu-seed-0", experiments.FORMAT, f"record 'quick-cpu-seed-0' is not a {experiments.FORMAT} file"),
])
def test_an_unknown_or_foreign_record_is_refused(name, format, says):
    with pytest.raises(checks.Refusal, match=says):
        records.load(name, format)


def test_every_shipped_record_loads():
    shipped = {p.suffix for p in records.PACKAGED.iterdir()}
    assert shipped <= {".json", ".pt"}
    runs, grids = records.names("run", records.PACKAGED), records.names("experiments", records.PACKAGED)
    assert len(runs) + len(grids) == len([p for p in records.PACKAGED.glob("*.json") if p.name != "published.json"])
    for name in runs:
        record = records.load(name, folder=records.PACKAGED)
        if (record.get("weights") or {}).get("file") and records.locate(record["weights"]["file"]):
            records.load_weights(record)  # shipped weights match the sha256 their record keeps
    for name in grids:
        assert records.about(records.load(name, experiments.FORMAT)).startswith("grid of ")


def test_lesson_04s_class_map_net_ships_small_checked_and_as_recorded(fmnist):
    from nin_lib import shapes
    record = records.load("maps-cpu-seed-0")
    assert record["command"].startswith("python -m nin_lib train --preset maps ") and record["preset"]["name"] == "maps"
    path = records.locate(record["weights"]["file"])
    assert path.stat().st_size < 200_000                      # small enough to ship in the package
    state = torch.load(path, weights_only=True)["state"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    net = records.load_weights(record)                         # sha256 checked, fp32, evaluation mode
    last = shapes.trace(net, 28)[-3]                           # the class maps, before GAP and Flatten
    assert last.output_shape[-2:] == (7, 7) and last.receptive_field == 10   # each cell sees 10×10 of 28×28 px
    X = fmnist.test_images.unsqueeze(1).float().div(255)
    with torch.no_grad():
        accuracy = (torch.cat([net(b) for b in X.split(2000)]).argmax(1) == fmnist.test_labels).float().mean()
    assert abs(float(accuracy) - records.history(record).final_test_acc) < 0.005   # the weights are the run's


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
    assert len(runs) == 1 and records.about(runs[0]).startswith("d2l preset, seed 0: test accuracy")
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
    assert records.about(gpu_record) in text
    assert any("image/png" in o.get("data", {}) for o in shown), "no curves drawn"
