"""What a grid of experiments says (lesson 06): its tables, the plot's data, comparisons over the seeds, and verdicts on
the chapter's claims (``experiments.EXPERIMENTS``) computed from the numbers, so they stay true whatever ran."""
import math
import re

from . import checks
from .experiments import EXPERIMENTS, EXPERIMENTS_224, METRICS, summarize

METRIC_LABELS = {"test_acc": "test accuracy (fraction)", "train_acc": "train accuracy (fraction)",
                 "gap": "train − test accuracy (fraction)", "final_loss": "last epoch's training loss (nats)",
                 "seconds": "seconds per run (s)"}
COUNTED = {"parameters": "parameters", "macs_per_image": "MACs per image"}  # the same for every seed
_WORDS = {**{m: label.split(" (")[0] for m, label in METRIC_LABELS.items()}, **COUNTED}  # a metric in a sentence
OUTCOMES = {"supports": "Supported", "contradicts": "Contradicted", "does not tell": "Not told apart"}


def _find(key, experiments, where="in these results"):
    for e in experiments:
        if e["key"] == key:
            return e
    raise checks.refuse(f"experiment {key!r} is not {where}; choose one of {', '.join(e['key'] for e in experiments)}")


def _need(results, *names):
    for name in names:
        if name not in results["configs"]:
            raise checks.refuse(f"configuration {name!r} is not in these results")


# Rows, tables and the plot's data of a grid's results
def experiment_rows(results, key):
    """One row per configuration of experiment ``key``: label, parameters and mean ± spread of each metric."""
    rows = []
    for name in _find(key, results["experiments"])["configs"]:
        c, s = results["configs"][name], results["configs"][name]["summary"]
        rows.append({"config": name, "label": c["label"], "parameters": c["parameters"],
                     "runs": s["test_acc"]["n"], "stalled": s["stalled"],
                     **{f"{m}_{stat}": s[m][stat] for stat in ("mean", "std") for m in METRICS},
                     "test_acc_min": s["test_acc"]["min"], "test_acc_max": s["test_acc"]["max"]})
    return rows


def per_seed(results, name, metric="test_acc"):
    """Every seed's value of ``metric`` for configuration ``name`` (a list, in seed order)."""
    _need(results, name)
    checks.choice("metric", metric, METRICS)
    return [r[metric] for r in results["configs"][name]["runs"]]


def format_table(results, key):
    """A text table of experiment ``key``: parameters and mean ± spread (std over seeds) of each metric."""
    rows = experiment_rows(results, key)
    width = max(len(r["config"]) for r in rows)
    lines = [f"{'config':>{width}} {'parameters':>11} {'test acc':>15} {'train acc':>15} {'gap':>15} {'stalled':>7}"]
    for r in rows:
        pm = lambda m: f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}"
        lines.append(f"{r['config']:>{width}} {r['parameters']:>11,} {pm('test_acc'):>15} {pm('train_acc'):>15} "
                     f"{pm('gap'):>15} {str(r['stalled']) + '/' + str(r['runs']):>7}")
    return "\n".join(lines)


def experiment_panels(results, key, metrics=("test_acc", "train_acc", "gap")):
    """``viz.seed_spread`` arguments for experiment ``key``: one panel per metric, one group per configuration."""
    experiment = _find(key, results["experiments"])
    title = re.sub(r"\s*\([^)]*[\u4e00-\u9fff][^)]*\)", "", experiment["title"])  # plot fonts lack CJK glyphs
    return {"panels": {_WORDS[m]: [(name, per_seed(results, name, m)) for name in experiment["configs"]]
                       for m in metrics},
            "ylabel": {_WORDS[m]: METRIC_LABELS[m] for m in metrics}, "title": title}


def compare(results, a, b, metric="test_acc"):
    """How ``b`` differs from ``a`` in ``metric`` over the seeds: means, spreads, ``diff`` (b - a), Welch's ``t``
    (None when both spreads are 0), ``separated`` (no seed overlaps) and a one-sentence ``verdict``."""
    sa, sb = summarize(per_seed(results, a, metric)), summarize(per_seed(results, b, metric))
    if sa["n"] == 0 or sb["n"] == 0:
        raise checks.refuse(f"configurations {a!r} and {b!r} need finite {metric} values to be compared")
    diff = sb["mean"] - sa["mean"]
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    higher, lower = sb["min"] > sa["max"], sb["max"] < sa["min"]
    verdict = (f"{b} is {'higher' if higher else 'lower'} than {a} for every seed ({sb['n']} vs {sa['n']} runs)"
               if higher or lower else
               f"the seeds of {a} and {b} overlap: no clear difference with {min(sa['n'], sb['n'])} seeds")
    return {"a": a, "b": b, "metric": metric, "a_mean": sa["mean"], "a_std": sa["std"], "b_mean": sb["mean"],
            "b_std": sb["std"], "diff": diff, "t": diff / se if se > 1e-12 else None, "separated": higher or lower,
            "verdict": verdict}


def format_comparison(c, digits=3):
    """One line for a ``compare`` result: both means ± spreads, the difference, t and the verdict."""
    t = "n/a" if c["t"] is None else f"{c['t']:+.1f}"
    return (f"{c['metric']}: {c['a']} {c['a_mean']:.{digits}f} ± {c['a_std']:.{digits}f}, "
            f"{c['b']} {c['b_mean']:.{digits}f} ± {c['b_std']:.{digits}f}; difference {c['diff']:+.{digits}f} "
            f"(t = {t}): {c['verdict']}")


# Where results come from, and what they say about the chapter's claims (lesson 06's verdicts)
def provenance(results):
    """Lines saying where the numbers of a grid come from: its size, machine, date, command and settings."""
    m = results["machine"]
    lines = [f"the {results['mode']} grid: {len(results['configs'])} configurations × {len(results['seeds'])} seeds "
             f"{results['seeds']}, complete: {results['complete']}",
             f"ran on {results['created'][:10]}: {results['device']}; {m.get('gpu') or m['cpu']}, "
             f"{m['cpu_count']} CPU cores, torch {m['torch']}; {results['seconds'] / 60:.0f} min for the whole grid",
             f"command: {results['command']}"]
    sizes = {c["image_size"]: (c["train_size"], c["test_size"]) for c in results["configs"].values()}
    for s in filter(None, (results.get("settings"), results.get("settings_224"))):
        train_size, test_size = sizes[s["arch"]]
        lines.append(f"{s['arch']}-px NiN at width {s['width']}: {train_size:,} training and {test_size:,} test "
                     f"images (the same for every run), batch size {s['batch_size']}, {s['num_epochs']} epochs")
    return lines


def experiment(key):
    """The definition of experiment ``key`` (``EXPERIMENTS`` or ``EXPERIMENTS_224``), its claims included."""
    return _find(key, EXPERIMENTS + EXPERIMENTS_224, "known")


def twin(key):
    """The 28-px experiment that a 224-px one repeats ('head_224' -> 'head'), or None for a 28-px key."""
    base = experiment(key)["key"].removesuffix("_224")
    return base if base != key and any(e["key"] == base for e in EXPERIMENTS) else None


def judge(results, claim):
    """One claim's verdict: ``outcome`` (every seed on the predicted side, every seed on the other, or overlapping;
    parameters and MACs are counted), its ``sentence`` with the numbers, and ``compare``'s ``comparison`` (or None)."""
    b, a, metric = claim["config"], claim["against"], claim["metric"]
    checks.choice("expected direction", claim["expect"], ("higher", "lower"))
    _need(results, a, b)
    words, comparison = _WORDS[metric], None
    if metric in COUNTED:
        vb, va = results["configs"][b][metric], results["configs"][a][metric]
        side = "higher" if vb > va else "lower" if vb < va else None
        numbers = f"{words}: {b} {vb:,}, {a} {va:,} (counted, the same for every seed)"
        relation = f"{b if vb > va else a} has {max(va, vb) / min(va, vb):.1f}× as many" if side else "the same count"
    else:
        c = comparison = compare(results, a, b, metric)
        side = ("higher" if c["diff"] > 0 else "lower") if c["separated"] else None
        runs_b, runs_a = results["configs"][b]["runs"], results["configs"][a]["runs"]
        numbers = (f"{words}: {b} {c['b_mean']:.3f} ± {c['b_std']:.3f}, {a} {c['a_mean']:.3f} ± {c['a_std']:.3f} "
                   f"(mean ± spread over the seeds)")
        kb, ka = (sum(bool(r.get("stalled")) for r in runs) for runs in (runs_b, runs_a))
        if kb or ka:
            numbers += f"; stalled at chance: {b} {kb} of {len(runs_b)} runs, {a} {ka} of {len(runs_a)}"
        n = min(len(runs_a), len(runs_b))
        relation = f"{b} is {side} for every seed" if side else f"the seeds overlap, so {n} seeds cannot tell"
    outcome = "does not tell" if side is None else "supports" if side == claim["expect"] else "contradicts"
    judged_by = "the counts" if metric in COUNTED else "the seeds"
    opposite = ", the opposite of the claim" if outcome == "contradicts" else ""
    return {**claim, "outcome": outcome, "comparison": comparison,
            "sentence": f"{OUTCOMES[outcome]} by {judged_by}: {claim['says']}. {numbers}; {relation}{opposite}."}


def spread_against_differences(results, name, metric="test_acc"):
    """One sentence: ``name``'s spread over the seeds beside the differences of means the other claims rest on."""
    s = summarize(per_seed(results, name, metric))
    head = (f"The spread of {name}'s {_WORDS[metric]} over {s['n']} seeds is {s['std']:.3f} (its seeds run from "
            f"{s['min']:.3f} to {s['max']:.3f})")
    claims = (c for e in EXPERIMENTS + EXPERIMENTS_224 for c in e["claims"] if c["metric"] == metric)
    diffs = {}  # per other pair of configurations in these results, as the first claim on this metric names it
    for c in claims:
        pair = frozenset((c["config"], c["against"]))
        if name not in pair and pair <= results["configs"].keys() and pair not in diffs:
            diffs[pair] = (abs(compare(results, c["against"], c["config"], metric)["diff"]), c["config"], c["against"])
    diffs = sorted(diffs.values(), reverse=True)
    if not diffs:
        return head + "; these results hold no other difference of means to set it beside."
    larger = sum(d < s["std"] for d, _, _ in diffs)
    amount = "every one" if larger == len(diffs) else "none" if larger == 0 else str(larger)
    return (f"{head}; it is larger than {amount} of the {len(diffs)} differences of mean {_WORDS[metric]} between "
            f"other configurations that these claims rest on (the largest: {diffs[0][1]} vs {diffs[0][2]}, "
            f"{diffs[0][0]:.3f}).")


def overall(verdicts):
    """The line that sums up a list of ``judge`` verdicts: how many claims are supported, contradicted, not told."""
    count = {o: sum(v["outcome"] == o for v in verdicts) for o in OUTCOMES}
    claims = "claim" if len(verdicts) == 1 else "claims"
    return (f"Overall: of {len(verdicts)} {claims}, {count['supports']} supported, {count['contradicts']} "
            f"contradicted, {count['does not tell']} not told apart by these results.")


def evidence(results, key):
    """Lesson 06's verdicts on experiment ``key``: ``judge``'s sentences, the ``spread`` lines and ``overall``."""
    e = experiment(key)
    verdicts = [judge(results, claim) for claim in e["claims"]]
    spreads = [spread_against_differences(results, name) for name in e.get("spread", ())]
    return [v["sentence"] for v in verdicts] + spreads + [overall(verdicts)]
