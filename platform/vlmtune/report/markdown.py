"""The report as markdown (pure): a verdict, the paper's columns per arm with their intervals, the differences
between arms and whether they are significant, other metrics, notes, jobs and plots."""

from __future__ import annotations

from collections.abc import Mapping

from vlmtune.report.metrics import PAPER_COLUMNS, beats_chance, metric, number
from vlmtune.report.uncertainty import CONFIDENCE

COLUMN_NAMES = dict(PAPER_COLUMNS)


def _label(name: str) -> str:
    return {"samples": "samples", "loss.final": "final loss", "answers.emptyRate": "empty answers"}.get(
        name, COLUMN_NAMES.get(name, metric(name).title)
    )


def _cell(summary: Mapping, arm: Mapping, name: str) -> str:
    value = arm["metrics"].get(name)
    text = number(name, value)
    interval = arm.get("intervals", {}).get(name)
    if value is not None and interval is not None:
        text += f" ({number(name, interval[0])}–{number(name, interval[1])})"
    return f"**{text}**" if arm["name"] in summary["best"].get(name, []) else text


def _table(summary: Mapping, names: list[str], chance_row: bool) -> str:
    headers = ["arm", *map(_label, names)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * len(names)) + "|"]
    for arm in summary["arms"]:
        cells = [arm["name"] + ("" if arm["complete"] else " (incomplete)")]
        lines.append("| " + " | ".join(cells + [_cell(summary, arm, name) for name in names]) + " |")
    chance = summary.get("chance") or {}
    if chance_row and any(name in chance for name in names):
        lines.append(
            "| *chance (random answers)* | "
            + " | ".join(number(name, chance[name]) if name in chance else "" for name in names)
            + " |"
        )
    return "\n".join(lines)


def table_markdown(summary: Mapping) -> str:
    """One row per arm: training budget and loss, the paper's columns, the empty-answer rate; values with their
    95% intervals over questions; bold only where an arm beats every other beyond those intervals."""
    names = [
        name
        for name in summary["metrics"]
        if name in ("samples", "loss.final", "answers.emptyRate") or name in COLUMN_NAMES
    ]
    return _table(summary, names, chance_row=True)


def other_metrics_markdown(summary: Mapping) -> str:
    names = [
        name
        for name in summary["metrics"]
        if name not in COLUMN_NAMES and name not in ("samples", "loss.final", "answers.emptyRate")
    ]
    return _table(summary, names, chance_row=True) if names else ""


def _signed(name: str, value: float) -> str:
    text = number(name, abs(value))
    return f"{'+' if value >= 0 else '−'}{text}"


def differences_markdown(summary: Mapping) -> str:
    """Every pair of arms on every compared metric: the difference, its interval, and the verdict."""
    lines = ["| metric | arms | difference | 95% interval | verdict |", "|---|---|---:|---:|---|"]
    for name in summary["metrics"]:
        comparison = summary["comparisons"].get(name)
        for pair in (comparison or {}).get("pairs", []):
            verdict = f"{pair['winner']} better" if pair["winner"] else "not significant"
            lines.append(
                f"| {_label(name)} | {pair['a']} − {pair['b']} | {_signed(name, pair['difference'])} | "
                f"{_signed(name, pair['low'])} to {_signed(name, pair['high'])} | {verdict} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def verdict(summary: Mapping) -> str:
    """One paragraph a reader can quote: what differs beyond the noise on the paper's columns, and what does not.

    A difference counts for a recipe only when the better arm also beats random answers (its interval above the
    benchmark's chance level): two arms that both answer no better than chance differ in how they fail, which says
    nothing about which recipe teaches more.
    """
    columns = [column["metric"] for column in summary.get("paperColumns", [])]
    compared = [name for name in columns if summary["comparisons"].get(name, {}).get("pairs")]
    if not compared:
        return "No two arms have finished an evaluation with per-question answers, so nothing can be compared yet."
    wins, at_chance, ties = [], [], []
    for name in compared:
        for pair in summary["comparisons"][name]["pairs"]:
            if not pair["winner"]:
                ties.append(f"{COLUMN_NAMES[name]} ({pair['a']} vs {pair['b']})")
            elif _beats_chance(summary, name, pair["winner"]):
                wins.append(_win(name, pair))
            else:
                at_chance.append(_win(name, pair))
    if wins:
        text = "Significant at 95%: " + "; ".join(wins) + ". "
    else:
        which = "that beat random answers " if at_chance else ""
        text = (
            f"No difference between arms {which}is significant at 95% on any of the paper's columns measured: "
            "these figures do not support a claim that one recipe beats the other. "
        )
    if at_chance:
        text += (
            "Beyond the noise but not a result (the better arm does not beat random answers): "
            + "; ".join(at_chance)
            + ". "
        )
    if ties and (wins or at_chance):
        text += f"Not significant: {', '.join(ties)}. "
    near = _near_chance(summary, compared)
    if near:
        text += f"Not above random answers: {'; '.join(near)}. "
    return text + (
        "Intervals cover the choice of questions only; each arm was trained once, so run-to-run training "
        "noise is not in them."
    )


def _win(name: str, pair: Mapping) -> str:
    """`winner over loser on COLUMN (+margin unit, 95% interval low to high)`, the margin in the winner's favour."""
    loser = pair["b"] if pair["winner"] == pair["a"] else pair["a"]
    sign = 1 if pair["winner"] == pair["a"] else -1
    low, high = sorted((sign * pair["low"], sign * pair["high"]))
    unit = "points" if metric(name).scale == 100 else metric(name).unit
    return (
        f"{pair['winner']} over {loser} on {COLUMN_NAMES[name]} ({_signed(name, sign * pair['difference'])} {unit}, "
        f"95% interval {_signed(name, low)} to {_signed(name, high)})"
    )


def _beats_chance(summary: Mapping, name: str, arm_name: str) -> bool:
    interval = next((arm.get("intervals", {}).get(name) for arm in summary["arms"] if arm["name"] == arm_name), None)
    return beats_chance(name, interval, summary.get("chance", {}).get(name))


def _near_chance(summary: Mapping, names: list[str]) -> list[str]:
    """Arms whose interval reaches down to the chance level or below, per metric."""
    found = []
    for name in names:
        chance = summary.get("chance", {}).get(name)
        if chance is None:
            continue
        arms = [
            arm["name"]
            for arm in summary["arms"]
            if name in arm.get("intervals", {}) and not beats_chance(name, arm["intervals"][name], chance)
        ]
        if arms:
            found.append(f"{', '.join(arms)} on {COLUMN_NAMES[name]} (chance {number(name, chance)})")
    return found


def report_markdown(summary: Mapping, plots: Mapping[str, str]) -> str:
    """report.md: the verdict, the tables, how to read them, notes, each arm's jobs, and the plots."""
    parts = [
        f"# {summary['experiment']}: {summary['study']}",
        "",
        f"**Verdict.** {verdict(summary)}",
        "",
        "## The paper's columns",
        "",
        table_markdown(summary),
        "",
        _reading_guide(summary),
    ]
    differences = differences_markdown(summary)
    if differences:
        parts += [
            "",
            "## Differences between arms",
            "",
            differences,
            "",
            f"Differences are first arm minus second, in the column's units; the interval is a paired "
            f"bootstrap over the benchmark's questions ({_resamples(summary)} resamples, stratified by "
            f'subtask/split/category, MME image pairs and MMBench rotations kept together). "Not '
            f'significant": the {CONFIDENCE:.0%} interval includes no difference.',
        ]
    other = other_metrics_markdown(summary)
    if other:
        parts += ["", "## Other metrics", "", other]
    if summary.get("notes"):
        parts += ["", "## Notes", "", *(f"- {note}" for note in summary["notes"])]
    parts += ["", "## Jobs", "", "| arm | stage | job | state | finished |", "|---|---|---|---|---|"]
    for arm in summary["arms"]:
        for job in arm["jobs"]:
            parts.append(
                f"| {arm['name']} | {job['stage']} | {job['name']} | {job['phase']} | {job['finishedAt'] or '–'} |"
            )
    if plots:
        parts += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n".join(parts) + "\n"


def _resamples(summary: Mapping) -> str:
    counts = sorted({c["resamples"] for c in summary["comparisons"].values()})
    return " to ".join(map(str, counts[:: max(1, len(counts) - 1)]))


def _reading_guide(summary: Mapping) -> str:
    units = "; ".join(
        f"{COLUMN_NAMES[c['metric']]}: {metric(c['metric']).title}, {metric(c['metric']).unit}"
        for c in summary.get("paperColumns", [])
    )
    return (
        f"{units}. In brackets: the {CONFIDENCE:.0%} interval over questions. **Bold**: better than every other "
        "arm beyond those intervals (no bold: no arm is). samples: training samples per arm (steps x global "
        "batch, summed over its stages); final loss: the last logged step's loss (no interval, never bold). "
        "POPE is the mean of the three splits' F1 (LLaVA-1.5's figure); each evaluation's results.md also "
        "gives the pooled F1."
    )
