"""A data analyst: a CSV becomes a SQLite file, a question becomes several SQL queries (run in
parallel), and the answer becomes a report with a chart, written next to the database. The
sql executor opens the file read-only, so the CSV is loaded first, typed per column: a SUM
over text columns would be wrong.

    .venv/bin/python examples/data_analyst.py                 # writes examples/output/
    .venv/bin/python examples/data_analyst.py --csv my.csv --out report/ "QUESTION"
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.utils import TypeTracker

from stepgraph import Runtime, StepResult, Store
from stepgraph.models import BackendBase

HERE = Path(__file__).parent
QUESTION = (
    "Which region had the highest total revenue, which product sold the most units, and how "
    "did total revenue change from month to month? Answer in at most 120 words."
)


def load_csv(csv_path: Path, db_path: Path) -> int:
    """A new `db_path` whose table `sales` holds the CSV, typed per column; the row count."""
    db, types = Database(db_path, recreate=True), TypeTracker()
    with csv_path.open(newline="", encoding="utf-8") as f:
        db["sales"].insert_all(types.wrap(csv.DictReader(f)))
    db["sales"].transform(types=types.types)
    count = db["sales"].count
    db.close()
    return count


def draw(steps: list[StepResult], path: Path) -> bool:
    """One bar chart per SQL result of 1-30 rows shaped like label -> number."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    tables = [s.data for s in steps if s.executor == "sql" and s.status == "done"]
    tables = [t for t in tables if 0 < len(t["rows"]) <= 30 and len(t["columns"]) > 1]
    tables = [t for t in tables if all(isinstance(r[-1], int | float) for r in t["rows"])]
    if tables:
        fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.8), squeeze=False)
        for ax, table in zip(axes[0], tables, strict=True):
            ax.bar([str(row[0]) for row in table["rows"]], [row[-1] for row in table["rows"]])
            ax.set_title(f"{table['columns'][-1]} by {table['columns'][0]}")
            ax.tick_params(axis="x", labelrotation=45)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return bool(tables)


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Load, ask, report; 0 when the run finished and no check on the answer failed."""
    parser = argparse.ArgumentParser(description="Answer a question about a CSV with SQL.")
    parser.add_argument("question", nargs="*", help="the question (default: a built-in one)")
    parser.add_argument("--csv", default=str(HERE / "data" / "sales.csv"))
    parser.add_argument("--out", default=str(HERE / "output"), help="folder for db, report, chart")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    if not Path(args.csv).is_file():
        parser.error(f"no file {args.csv}")
    out, question = Path(args.out), " ".join(args.question) or QUESTION
    out.mkdir(parents=True, exist_ok=True)
    print(f"loaded {load_csv(Path(args.csv), out / 'sales.db')} rows into {out / 'sales.db'}")
    store = store if store is not None else args.store
    runtime = Runtime(model or args.model, store=store, sql=out / "sales.db")  # + read-only sql
    try:
        result = runtime.run(question)
    finally:
        runtime.close()  # closes the store only when the runtime opened it
    chart = draw(result.steps, out / "chart.png")
    sql = [s for s in result.steps if s.executor == "sql"]
    queries = "".join(
        f"\n**{s.step_id}** ({s.status}): `{s.instruction}`\n\n{s.output}\n" for s in sql
    )
    image = "\n![chart](chart.png)\n" * chart
    report = f"# {question}\n\n{result.answer}\n\n## Queries\n{queries}{image}"
    report += f"\n_run {result.run_id}: {result.status}_\n"
    (out / "report.md").write_text(report, encoding="utf-8")
    failed = [v for v in result.verdicts if v.passed is False]
    print(f"\n{result.answer}\n\nreport: {out / 'report.md'}" + ", chart.png" * chart)
    print(f"run {result.run_id}: {result.status}, {len(failed)} failed check(s) on the answer")
    if result.error:
        print(f"error: {result.error}")
    return 0 if result.status == "done" and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
