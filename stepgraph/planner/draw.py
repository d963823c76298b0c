"""Draw a plan graph as a PNG (matplotlib + networkx), layered by dependency depth."""

from __future__ import annotations

import textwrap
from pathlib import Path

from stepgraph.planner.plan import Plan


def plain(text: str) -> str:
    """Text for matplotlib, which reads `$...$` as math; instructions are full of prices."""
    return text.replace("$", r"\$")


def draw_png(plan: Plan, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = plan.graph()
    for layer, nodes in enumerate(nx.topological_generations(graph)):
        for node in nodes:
            graph.nodes[node]["layer"] = layer
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal")
    pos = {n: (x, -y) for n, (x, y) in pos.items()}
    layers = max(graph.nodes[n]["layer"] for n in graph) + 1
    width = max(len(g) for g in nx.topological_generations(graph))
    fig, ax = plt.subplots(figsize=(max(6, 3.2 * width), max(3, 1.8 * layers)))
    nx.draw_networkx_edges(
        graph, pos, ax=ax, arrows=True, arrowsize=16, node_size=3000, edge_color="#888"
    )
    for step in plan.steps:
        x, y = pos[step.id]
        label = f"{step.id} · {step.executor}\n" + textwrap.fill(plain(step.instruction[:90]), 28)
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "fc": "#eef4ff", "ec": "#3b6fd8"},
        )
    ax.set_title(plain(textwrap.shorten(plan.goal, 90)), fontsize=10)
    ax.axis("off")
    ax.margins(0.25)
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
