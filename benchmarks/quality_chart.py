"""The headline quality figures as one chart: direct answering against a stepgraph run.

Reads results/quality.json (written by gsm8k.py and ifeval.py) and draws, per benchmark and
embedded model, the direct answer's accuracy beside the run's, with the number of problems
and the paired wins and losses where the file has them. Writes results/quality.png.

Run: .venv/bin/python benchmarks/quality_chart.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402

# (benchmark, the direct figure's key, the run's key, what the figure is)
FIGURES = (
    ("gsm8k", "direct", "run", "GSM8K accuracy"),
    ("ifeval", "direct_strict", "run_strict", "IFEval prompt-level strict"),
)


def bars() -> list[tuple[str, float, float, str]]:
    quality = json.loads((RESULTS / "quality.json").read_text())
    found = []
    for bench, direct, run, what in FIGURES:
        for model, figures in quality.get(bench, {}).items():
            if direct not in figures or run not in figures:
                continue
            note = f"n = {figures.get('n', '?')}"
            if "wins" in figures:
                note += f", wins {figures['wins']} / losses {figures['losses']}"
            found.append((f"{what}\n{model}\n{note}", figures[direct], figures[run], bench))
    return found


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = bars()
    if not found:
        raise SystemExit("results/quality.json has no figures yet: run gsm8k.py or ifeval.py")
    fig, ax = plt.subplots(figsize=(2.6 * len(found) + 1.5, 4.2))
    width = 0.38
    for i, (_, direct, run, _) in enumerate(found):
        for offset, value, name, colour in (
            (-width / 2, direct, "direct answer", "#9aa5b1"),
            (width / 2, run, "stepgraph run", "#2f6fb0"),
        ):
            ax.bar(i + offset, 100 * value, width, color=colour, label=name if i == 0 else None)
            ax.text(i + offset, 100 * value + 1, f"{100 * value:.1f}", ha="center", fontsize=9)
    ax.set_xticks(range(len(found)), [label for label, *_ in found], fontsize=8)
    ax.set_ylabel("% correct")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", frameon=False)
    ax.set_title("The same model: answering directly vs a stepgraph run", fontsize=10)
    fig.tight_layout()
    out = RESULTS / "quality.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
