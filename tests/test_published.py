"""The published figures shipped with the package (lessons 00, 05, 06): d2l's own builds of the NiN chapter and the
NiN paper, each with its source, and each number as its source printed it."""
import json
import re
import statistics

import pytest

from nin_lib import records

# train_ch6's closing lines, as d2l's builds print them
CLOSING = re.compile(r"loss (\S+), train acc ([\d.]+), test acc ([\d.]+)\n([\d.]+) examples/sec on (\S+)")
# the chapter's recipe line, as its code cell sets it
RECIPE = re.compile(r"lr, num_epochs, batch_size = ([\d.]+), (\d+), (\d+)\n.*resize=(\d+)\)")
COMMIT = re.compile(r"[0-9a-f]{40}")

# Lin, Chen & Yan, "Network In Network", arXiv:1312.4400v3: test error (%) of NIN + Dropout, as Tables 1-4 print it
CITED = {("CIFAR-10", False): (10.41, "Table 1"), ("CIFAR-10", True): (8.81, "Table 1"),
         ("CIFAR-100", False): (35.68, "Table 2"), ("SVHN", False): (2.35, "Table 3"),
         ("MNIST", False): (0.47, "Table 4")}
# Table 5 (CIFAR-10): the global-average-pooling head against a fully connected one
CITED_GAP_VS_FC = {"mlpconv + Fully Connected": 11.59, "mlpconv + Fully Connected + Dropout": 10.88,
                   "mlpconv + Global Average Pooling": 10.41}


@pytest.fixture(scope="module")
def figures():
    return records.published()


def closing(printed):
    """loss, train accuracy, test accuracy, examples/sec and device from a build's two printed lines."""
    m = CLOSING.fullmatch("\n".join(printed))
    assert m, printed
    return float(m[1]), float(m[2]), float(m[3]), float(m[4]), m[5]


def assert_commit_source(source):
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repository"]) and source["path"]
    assert COMMIT.fullmatch(source["commit"]) and re.match(r"\d{4}-\d\d-\d\dT", source["date"])


def test_the_figures_load_labelled_as_published_with_the_date_they_were_read(figures):
    assert figures["format"] == "nin-published-1"
    assert "not runs of this project" in figures["note"]
    assert len(figures["d2l_builds"]) >= 2 and {b["edition"] for b in figures["d2l_builds"]} == {"en", "zh"}
    entries = [*figures["d2l_builds"], *figures["d2l_build_history"], *figures["d2l_not_recorded"], figures["paper"]]
    assert {e["checked"] for e in entries} == {figures["checked"]} == {"2026-12-06"}


def test_every_figure_names_its_source(figures):
    for build in figures["d2l_builds"]:
        assert_commit_source(build["source"])
        assert COMMIT.fullmatch(build["source"]["first_stored"]["commit"])
        assert build["source"]["first_stored"]["date"] <= build["source"]["date"]
        for source in [build["gpu"]["source"], *build.get("same_lines_in", [])]:
            assert_commit_source(source)
    for history in figures["d2l_build_history"]:
        assert all(COMMIT.fullmatch(run["first_commit"]) for run in history["runs"])
    for entry in figures["d2l_not_recorded"]:
        assert_commit_source(entry["source"])
    paper = figures["paper"]
    assert_commit_source(paper["source"]["copy_read"])
    for source in [r["source"] for r in paper["results"]] + [paper["gap_vs_fc"]["source"]]:
        assert source["arxiv_id"] == "1312.4400v3" and re.fullmatch(r"Table \d", source["table"])


def test_each_build_s_numbers_are_what_its_lines_say(figures):
    for build in figures["d2l_builds"]:
        loss, train_acc, test_acc, speed, device = closing(build["printed"])
        assert (build["loss"], build["train_acc"], build["test_acc"]) == (loss, train_acc, test_acc)
        assert (build["examples_per_sec"], build["device"]) == (speed, device)
        assert 0 <= build["train_acc"] <= 1 and 0 <= build["test_acc"] <= 1
        lr, epochs, batch, resize = RECIPE.match(build["code"]).groups()
        assert build["recipe"] == {"lr": float(lr), "num_epochs": int(epochs), "batch_size": int(batch),
                                   "resize": int(resize)}
        assert build["framework"] == "pytorch" and "train_ch6" in build["code"]


def test_the_book_s_build_history_holds_the_builds_and_its_own_summary(figures):
    histories = {h["repository"]: h for h in figures["d2l_build_history"]}
    for build in figures["d2l_builds"]:
        runs = histories[build["source"]["repository"]]["runs"]
        assert build["printed"] in [run["printed"] for run in runs]
    for history in histories.values():
        accs = [closing(run["printed"])[2] for run in history["runs"]]
        assert all(0 <= a <= 1 for a in accs) and history["distinct_closing_lines"] == len(accs)
        assert history["test_acc"] == {"min": min(accs), "median": statistics.median(accs), "max": max(accs),
                                       "at_chance": sum(a <= 0.1 for a in accs),
                                       "below_0_7": sum(a < 0.7 for a in accs)}
        assert [run["date"] for run in history["runs"]] == sorted(run["date"] for run in history["runs"])


def test_the_paper_s_figures_are_as_cited(figures):
    paper = figures["paper"]
    found = {(r["dataset"], r["data_augmentation"]): (r["test_error_percent"], r["source"]["table"])
             for r in paper["results"]}
    assert found == CITED
    assert {r["method"]: r["test_error_percent"] for r in paper["gap_vs_fc"]["rows"]} == CITED_GAP_VS_FC
    assert paper["gap_vs_fc"]["source"]["table"] == "Table 5"


def test_a_damaged_file_is_a_broken_package_not_a_user_mistake(tmp_path, monkeypatch):
    (tmp_path / "published.json").write_text(json.dumps({"format": "something-else"}))
    monkeypatch.setattr(records, "PACKAGED", tmp_path)
    with pytest.raises(RuntimeError, match="nin-published-1"):
        records.published()
