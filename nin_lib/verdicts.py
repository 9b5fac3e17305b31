"""What a grid of experiments says (lesson 06): rows, tables and plots of its results, comparisons over the seeds,
and verdicts on the chapter's claims computed from the numbers, so they stay true whatever ran.

A *claim* (the ``claims`` of an ``experiments.EXPERIMENTS`` entry) names a configuration, the one it is set
against, a metric and the direction the book predicts; ``judge`` says whether the seeds support it, contradict it
or cannot tell, with the numbers it rests on, and ``evidence`` gives an experiment's verdicts as sentences.
"""
import math
import re

from . import checks
from .experiments import EXPERIMENTS, EXPERIMENTS_224, METRICS, summarize


# ---------------------------------------------------------------------------------------------
# Rows, tables and plots of a grid's results


def experiment_rows(results, key):
    """One row per configuration of experiment ``key``: label, parameters and mean ± spread of each metric."""
    experiment = next((e for e in results["experiments"] if e["key"] == key), None)
    if experiment is None:
        known = ", ".join(e["key"] for e in results["experiments"])
        raise checks.refuse(f"experiment {key!r} is not in these results; choose one of {known}")
    rows = []
    for name in experiment["configs"]:
        c = results["configs"][name]
        s = c["summary"]
        rows.append({"config": name, "label": c["label"], "parameters": c["parameters"],
                     "runs": s["test_acc"]["n"], "stalled": s["stalled"],
                     **{f"{m}_mean": s[m]["mean"] for m in METRICS},
                     **{f"{m}_std": s[m]["std"] for m in METRICS},
                     "test_acc_min": s["test_acc"]["min"], "test_acc_max": s["test_acc"]["max"]})
    return rows


def per_seed(results, name, metric="test_acc"):
    """Every seed's value of ``metric`` for configuration ``name`` (a list, in seed order)."""
    if name not in results["configs"]:
        raise checks.refuse(f"configuration {name!r} is not in these results")
    checks.choice("metric", metric, METRICS)
    return [r[metric] for r in results["configs"][name]["runs"]]


METRIC_LABELS = {"test_acc": "test accuracy (fraction)", "train_acc": "train accuracy (fraction)",
                 "gap": "train − test accuracy (fraction)", "final_loss": "last epoch's training loss (nats)",
                 "seconds": "seconds per run (s)"}


def format_table(results, key):
    """A text table of experiment ``key``: parameters and mean ± spread (std over seeds) of each metric."""
    rows = experiment_rows(results, key)
    width = max(len(r["config"]) for r in rows)
    lines = [f"{'config':>{width}} {'parameters':>11} {'test acc':>15} {'train acc':>15} {'gap':>15} "
             f"{'stalled':>7} {'s/run':>6}"]
    for r in rows:
        pm = lambda m: f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}"
        lines.append(f"{r['config']:>{width}} {r['parameters']:>11,} {pm('test_acc'):>15} {pm('train_acc'):>15} "
                     f"{pm('gap'):>15} {str(r['stalled']) + '/' + str(r['runs']):>7} {r['seconds_mean']:>6.0f}")
    return "\n".join(lines)


def experiment_panels(results, key, metrics=("test_acc", "train_acc", "gap")):
    """``viz.seed_spread`` arguments for experiment ``key``: one panel per metric, one group per configuration."""
    experiment = next((e for e in results["experiments"] if e["key"] == key), None)
    if experiment is None:
        raise checks.refuse(f"experiment {key!r} is not in these results")
    panels = {METRIC_LABELS[m].split(" (")[0]: [(name, per_seed(results, name, m)) for name in experiment["configs"]]
              for m in metrics}
    ylabels = {METRIC_LABELS[m].split(" (")[0]: METRIC_LABELS[m] for m in metrics}
    title = re.sub(r"\s*\([^)]*[\u4e00-\u9fff][^)]*\)", "", experiment["title"])  # plot fonts lack CJK glyphs
    return {"panels": panels, "ylabel": ylabels, "title": title}


def compare(results, a, b, metric="test_acc"):
    """How configuration ``b`` differs from ``a`` in ``metric`` over the seeds (lesson 06's verdicts).

    Returns a dict: the means and spreads, ``diff`` (mean of b - mean of a), ``t`` (Welch's t
    statistic; None when both spreads are 0), ``separated`` (every seed of one above every seed of
    the other) and ``verdict``, one sentence that says whether the seeds tell the two apart.
    """
    va, vb = per_seed(results, a, metric), per_seed(results, b, metric)
    sa, sb = summarize(va), summarize(vb)
    if sa["n"] == 0 or sb["n"] == 0:
        raise checks.refuse(f"configurations {a!r} and {b!r} need finite {metric} values to be compared")
    diff = sb["mean"] - sa["mean"]
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    t = diff / se if se > 1e-12 else None
    higher = sb["min"] > sa["max"]
    lower = sb["max"] < sa["min"]
    if higher or lower:
        verdict = (f"{b} is {'higher' if higher else 'lower'} than {a} for every seed "
                   f"({sb['n']} vs {sa['n']} runs)")
    else:
        verdict = f"the seeds of {a} and {b} overlap: no clear difference with {min(sa['n'], sb['n'])} seeds"
    return {"a": a, "b": b, "metric": metric, "a_mean": sa["mean"], "a_std": sa["std"], "b_mean": sb["mean"],
            "b_std": sb["std"], "diff": diff, "t": t, "separated": higher or lower, "verdict": verdict}


def format_comparison(c, digits=3):
    """One line for a ``compare`` result: both means ± spreads, the difference, t and the verdict."""
    t = "n/a" if c["t"] is None else f"{c['t']:+.1f}"
    return (f"{c['metric']}: {c['a']} {c['a_mean']:.{digits}f} ± {c['a_std']:.{digits}f}, "
            f"{c['b']} {c['b_mean']:.{digits}f} ± {c['b_std']:.{digits}f}; difference {c['diff']:+.{digits}f} "
            f"(t = {t}): {c['verdict']}")


# ---------------------------------------------------------------------------------------------
# Where results come from, and what they say about the chapter's claims (lesson 06's verdicts)

COUNTED = {"parameters": "parameters", "macs_per_image": "MACs per image"}  # the same for every seed
OUTCOMES = ("supports", "contradicts", "does not tell")


def describe(results):
    """Lines saying where and when a grid ran: its size, machine, date, command and settings (lesson 06)."""
    m = results["machine"]
    lines = [f"the {results['mode']} grid: {len(results['configs'])} configurations × {len(results['seeds'])} seeds "
             f"{results['seeds']}, complete: {results['complete']}",
             f"ran on {results['created'][:10]}: {results['device']}; {m.get('gpu') or m['cpu']}, "
             f"{m['cpu_count']} CPU cores, torch {m['torch']}; {results['seconds'] / 60:.0f} min for the whole grid",
             f"command: {results['command']}"]
    for key in ("settings", "settings_224"):
        s = results.get(key)
        if s:
            lines.append(f"{s['arch']}-px NiN at width {s['width']}: {s['train_size'] or 60000:,} training and "
                         f"{s['test_size'] or 10000:,} test images (the same for every run), batch size "
                         f"{s['batch_size']}, {s['num_epochs']} epochs")
    return lines


def experiment(key):
    """The definition of experiment ``key`` (``EXPERIMENTS`` or ``EXPERIMENTS_224``), its claims included."""
    for e in EXPERIMENTS + EXPERIMENTS_224:
        if e["key"] == key:
            return e
    known = ", ".join(e["key"] for e in EXPERIMENTS + EXPERIMENTS_224)
    raise checks.refuse(f"experiment {key!r} is not known; choose one of {known}")


def twin(key):
    """The 28-px experiment that a 224-px one repeats ('head_224' -> 'head'), or None for a 28-px key."""
    experiment(key)
    base = key[:-len("_224")] if key.endswith("_224") else None
    return base if base is not None and any(e["key"] == base for e in EXPERIMENTS) else None


def _metric_words(metric):
    return COUNTED.get(metric) or METRIC_LABELS[metric].split(" (")[0]


def _need(results, *names):
    for name in names:
        if name not in results["configs"]:
            raise checks.refuse(f"configuration {name!r} is not in these results")


def _stalled(results, name):
    runs = results["configs"][name]["runs"]
    return sum(bool(r.get("stalled")) for r in runs), len(runs)


def judge(results, claim):
    """Whether ``results`` support one claim of an experiment (its ``claims``), with the numbers it rests on.

    A measured metric is judged over the seeds: the claim is supported when every seed of ``claim['config']``
    lies on the predicted side of every seed of ``claim['against']``, contradicted when every seed lies on the
    other side, and not told when they overlap. Parameters and MACs are counted (the same for every seed).
    Returns the claim plus ``outcome`` (one of ``OUTCOMES``), ``sentence`` and, for a measured metric,
    ``comparison`` (``compare``'s dict).
    """
    b, a, metric = claim["config"], claim["against"], claim["metric"]
    checks.choice("expected direction", claim["expect"], ("higher", "lower"))
    _need(results, a, b)
    words, comparison = _metric_words(metric), None
    if metric in COUNTED:
        vb, va = results["configs"][b][metric], results["configs"][a][metric]
        side = "higher" if vb > va else "lower" if vb < va else None
        big, small = (b, a) if vb >= va else (a, b)
        ratio = max(va, vb) / min(va, vb) if min(va, vb) > 0 else math.inf
        numbers = f"{words}: {b} {vb:,}, {a} {va:,} (counted, the same for every seed)"
        relation = f"{big} has {ratio:.1f}× as many" if side else "the same count"
        judged_by = "the counts"
    else:
        comparison = compare(results, a, b, metric)
        c = comparison
        side = ("higher" if c["diff"] > 0 else "lower") if c["separated"] else None
        n = min(len(results["configs"][a]["runs"]), len(results["configs"][b]["runs"]))
        numbers = (f"{words}: {b} {c['b_mean']:.3f} ± {c['b_std']:.3f}, {a} {c['a_mean']:.3f} ± {c['a_std']:.3f} "
                   f"(mean ± spread over the seeds)")
        (kb, nb), (ka, na) = _stalled(results, b), _stalled(results, a)
        if kb or ka:
            numbers += f"; stalled at chance: {b} {kb} of {nb} runs, {a} {ka} of {na}"
        relation = f"{b} is {side} for every seed" if side else f"the seeds overlap, so {n} seeds cannot tell"
        judged_by = "the seeds"
    outcome = "does not tell" if side is None else "supports" if side == claim["expect"] else "contradicts"
    verdict = {"supports": f"Supported by {judged_by}", "contradicts": f"Contradicted by {judged_by}",
               "does not tell": f"Not told apart by {judged_by}"}[outcome]
    opposite = ", the opposite of the claim" if outcome == "contradicts" else ""
    return {**claim, "outcome": outcome, "comparison": comparison,
            "sentence": f"{verdict}: {claim['says']}. {numbers}; {relation}{opposite}."}


def _differences(results, metric, leave_out):
    """|difference of means| of every measured claim in ``results`` on ``metric`` not involving ``leave_out``."""
    seen, found = set(), []
    for e in EXPERIMENTS + EXPERIMENTS_224:
        for c in e.get("claims", ()):
            pair = frozenset((c["config"], c["against"]))
            if (c["metric"] != metric or pair in seen or leave_out in pair
                    or not all(name in results["configs"] for name in pair)):
                continue
            seen.add(pair)
            d = compare(results, c["against"], c["config"], metric)
            found.append((abs(d["diff"]), c["config"], c["against"]))
    return sorted(found, reverse=True)


def spread_against_differences(results, name, metric="test_acc"):
    """One sentence: the spread of ``name``'s ``metric`` over the seeds beside the differences of means that the
    other claims in ``results`` rest on (how many of them one run of ``name`` could hide)."""
    _need(results, name)
    s = summarize(per_seed(results, name, metric))
    words = _metric_words(metric)
    head = (f"The spread of {name}'s {words} over {s['n']} seeds is {s['std']:.3f} (its seeds run from "
            f"{s['min']:.3f} to {s['max']:.3f})")
    diffs = _differences(results, metric, name)
    if not diffs:
        return head + "; these results hold no other difference of means to set it beside."
    larger = sum(d < s["std"] for d, _, _ in diffs)
    largest, x, y = diffs[0]
    amount = ("every one" if larger == len(diffs) else "none" if larger == 0 else str(larger))
    return (f"{head}; it is larger than {amount} of the {len(diffs)} differences of mean {words} between other "
            f"configurations that these claims rest on (the largest: {x} vs {y}, {largest:.3f}).")


def overall(verdicts):
    """The line that sums up a list of ``judge`` verdicts: how many claims are supported, contradicted, not told."""
    count = {o: sum(v["outcome"] == o for v in verdicts) for o in OUTCOMES}
    claims = "claim" if len(verdicts) == 1 else "claims"
    return (f"Overall: of {len(verdicts)} {claims}, {count['supports']} supported, {count['contradicts']} "
            f"contradicted, {count['does not tell']} not told apart by these results.")


def evidence(results, key):
    """Lesson 06's verdicts on experiment ``key``: one sentence per claim (``judge``), one per configuration
    in its ``spread`` list (``spread_against_differences``), and the overall line (``overall``)."""
    e = experiment(key)
    verdicts = [judge(results, claim) for claim in e["claims"]]
    spreads = [spread_against_differences(results, name) for name in e.get("spread", ())]
    return [v["sentence"] for v in verdicts] + spreads + [overall(verdicts)]
