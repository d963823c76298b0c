"""The CPU engine against its own anchors, as ratios measured in one run on this machine.

Absolute speeds differ between sessions' CPUs (AVX2-only or avx512_bf16) and this machine
is noisy, so every figure here is a ratio of two things measured interleaved, in rounds,
in one process, and reported as the median with the raw figures beside it:

- `single_vs_plain`: `LlamaCppBackend`'s one-stream decode over plain llama-cpp-python's
  `create_chat_completion`, same model, prompt and token count;
- `agg4_over_1`: the backend's aggregate tokens/s with 4 requests at once over 1;
- `bench_agg4_over_1`: the same ratio from llama.cpp's own `llama-batched-bench`, built
  from the llama.cpp source llama-cpp-python's sdist vendors, in this benchmark's cache
  folder (skipped with a note when there is no compiler or no sdist);
- `planner_prefix_cached_over_uncached`: a plan request's prompt time when the planner's
  prefix is in the KV cache (a step request decoded in between) over the same request
  from an empty cache;
- `run_over_direct_wall`: a Runtime run of the demo instruction over the model's direct
  answer to it (the run's own floor request), wall time; over a plain chat reply beside it.
  Each of the three is timed on a model loaded anew (as the demo loads it), its cache
  empty, as a user's process starts; `..._shared_backend` is the same on the backend the
  other parts share, where what was decoded before changes the 0.5B's greedy answer.

Writes results/engine_speed.json as it goes (a stopped run continues with the parts it
has not measured; `--again` measures everything again).

Run: .venv/bin/python benchmarks/engine_speed.py [--rounds 4] [--again]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stepgraph-bench"
TOKENS = 128
PROMPT = "Write a long story about a fox who learns to sail. Keep going until you are stopped."
OTHERS = [
    "Write a long story about a lighthouse keeper. Keep going until you are stopped.",
    "Describe, at length, how bread is made, step by step, with every detail.",
    "Write a long letter from a sailor to his sister about the sea.",
]
OUT = RESULTS / "engine_speed.json"


def _cpu_flags() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            keep = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "f16c", "fma")
            return " ".join(f for f in keep if f in flags)
    return ""


def _save(data: dict) -> None:
    OUT.write_text(json.dumps(data, indent=2) + "\n")


def _request(prompt: str, tokens: int = TOKENS):
    from stepgraph.models.base import Request

    return Request.chat(prompt, max_tokens=tokens)


def single(backend, rounds: int) -> dict:
    """Decode tokens/s of one request: the backend, then plain llama-cpp-python, in turns."""
    from llama_cpp import Llama

    plain = Llama(
        str(backend.path),
        n_ctx=4096,
        n_threads=len(os.sched_getaffinity(0)),
        n_threads_batch=len(os.sched_getaffinity(0)),
        verbose=False,
    )
    ours, theirs = [], []
    for _ in range(rounds):
        done = backend.complete(_request(PROMPT))
        decode = done.seconds - (done.first_token_seconds or 0.0)
        ours.append((done.completion_tokens - 1) / decode)  # tokens after the first
        first = None
        count = 0
        for _chunk in plain.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=TOKENS,
            temperature=0.0,
            stream=True,
        ):
            count += 1
            first = first or time.perf_counter()
        theirs.append((count - 1) / (time.perf_counter() - first))
        print("single", round(ours[-1], 1), round(theirs[-1], 1), flush=True)
    plain.close()
    ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
    return {"ratio": ratio, "backend_tok_s": ours, "plain_tok_s": theirs}


def aggregate(backend, rounds: int) -> dict:
    """Generated tokens/s over wall time: 4 requests submitted together against 1 alone."""
    one, four = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        done = backend.complete(_request(PROMPT))
        one.append(done.completion_tokens / (time.perf_counter() - start))
        start = time.perf_counter()
        batch = backend.generate([_request(p) for p in [PROMPT, *OTHERS]])
        four.append(sum(c.completion_tokens for c in batch) / (time.perf_counter() - start))
        print("aggregate", round(one[-1], 1), round(four[-1], 1), flush=True)
    ratio = statistics.median(f / o for f, o in zip(four, one, strict=True))
    return {"ratio": ratio, "one_tok_s": one, "four_tok_s": four}


def prefix(backend) -> dict:
    """A plan request's time to its first token from an empty cache, then with the
    planner's prefix cached (another plan, then a step request, decoded before it)."""
    from stepgraph import Runtime
    from stepgraph.models.base import Request

    with Runtime(backend, store=Path(tempfile.mkdtemp()) / "p.db") as runtime:
        planner = runtime.planner

        def plan_request(text: str):
            return planner._request(text, None).model_copy(update={"max_tokens": 1})

        target = "Work out 15% of 240, then write a one-line note about the result."
        backend.deterministic = True  # no prefix reuse: from an empty cache
        uncached = [backend.complete(plan_request(target)).first_token_seconds for _ in range(3)]
        backend.deterministic = False
        cached = []
        for other in ("Summarize the water cycle in three steps.", "List two uses of copper."):
            backend.complete(plan_request(other))
            backend.complete(Request.chat("Name a colour.", max_tokens=4))  # a step between
            cached.append(backend.complete(plan_request(target)).first_token_seconds)
    prompt = len(backend.prompt_tokens(plan_request(target)))
    ratio = statistics.median(cached) / statistics.median(uncached)
    print("prefix", ratio, flush=True)
    return {"ratio": ratio, "uncached_s": uncached, "cached_s": cached, "prompt_tokens": prompt}


def demo(backend, rounds: int) -> dict:
    """The demo instruction: a Runtime run against the model's direct answer, wall time.
    The direct answer is the one a run holds as its floor (the same request: reasoning
    first where a number is asked for, the calculator writing results); a plain chat reply
    with no system prompt is timed beside it.

    `backend` None: each of the three starts as a user's process does, on the model loaded
    anew the way `examples/demo.py` loads it (the settings' defaults), its cache empty. The
    0.5B's greedy text changes with what else the unified KV cache holds (other cells
    change how the sums round), and with it how many tie-breakers a run needs: after the
    floor request in one process, the run's direct answer stopped adding up the total.
    With a `backend`, all three share it, cache and all, as the other parts do."""
    import asyncio

    from stepgraph import Runtime
    from stepgraph.config import load_settings
    from stepgraph.executors.llm import answer
    from stepgraph.memory.timeline import phases
    from stepgraph.models.spec import load_model
    from stepgraph.runtime.candidates import asks_for_number, direct_request

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from demo import INSTRUCTION

    settings = load_settings()
    store = Path(tempfile.mkdtemp()) / "d.db"

    def on_model(measure):
        """`measure(model)` on the shared backend, or on a model loaded anew and closed."""
        model = backend or load_model(settings.model, **settings.engine_options())
        try:
            return measure(model)
        finally:
            if backend is None:
                model.close()

    def clock(work) -> tuple[float, object]:
        start = time.perf_counter()
        done = work()
        return time.perf_counter() - start, done

    def run_once(model):
        with Runtime(model, store=store) as runtime:  # built before the clock starts
            seconds, result = clock(lambda: runtime.run(INSTRUCTION))
            return seconds, result, dict(phases(runtime.store.run(result.run_id)))

    floor = direct_request(INSTRUCTION, [], reasoning=asks_for_number(INSTRUCTION))
    direct, plain, runs, answers = [], [], [], []
    for _ in range(rounds):
        plain.append(on_model(lambda m: clock(lambda: m.complete(_request(INSTRUCTION, 512)))[0]))
        direct.append(on_model(lambda m: clock(lambda: asyncio.run(answer(m, floor)))[0]))
        seconds, result, spent = on_model(run_once)
        runs.append(seconds)
        answers.append({"status": result.status, "answer": result.answer, "phases": spent})
        print("demo", *(round(x[-1], 1) for x in (plain, direct, runs)), result.status, spent)
    ratio = statistics.median(r / d for r, d in zip(runs, direct, strict=True))
    over_plain = statistics.median(r / p for r, p in zip(runs, plain, strict=True))
    return {
        "ratio": ratio,
        "fresh_process_state": backend is None,
        "run_over_plain_chat": over_plain,
        "direct_s": direct,
        "plain_chat_s": plain,
        "run_s": runs,
        "answers": answers,
    }


def batched_bench(model: Path) -> dict:
    """llama.cpp's own batched bench at 1 and 4 sequences (S_TG, tokens/s of generation)."""
    binary = _build_batched_bench()
    if isinstance(binary, str):
        return {"ratio": None, "note": binary}
    threads = str(len(os.sched_getaffinity(0)))
    out = subprocess.run(
        [str(binary), "-m", str(model), "-c", "4096", "-b", "512", "-ub", "512", "-npp", "64"]
        + ["-ntg", str(TOKENS), "-npl", "1,4", "-t", threads, "-tb", threads],
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0].isdigit():
            rows[int(cells[2])] = float(cells[7])  # B -> S_TG t/s
    if 1 not in rows or 4 not in rows:
        return {"ratio": None, "note": f"could not read its table: {out.stderr[-300:]}"}
    return {"ratio": rows[4] / rows[1], "one_tok_s": rows[1], "four_tok_s": rows[4]}


def _build_batched_bench() -> Path | str:
    """The llama-batched-bench binary from llama-cpp-python's vendored llama.cpp, built
    once in the cache folder; a string says why it could not be."""
    import llama_cpp

    version = llama_cpp.__version__
    home = CACHE / f"llama-cpp-python-{version}"
    binary = home / "build" / "bin" / "llama-batched-bench"
    if binary.exists():
        return binary
    if not (shutil.which("cmake") and (shutil.which("c++") or shutil.which("g++"))):
        return "no C++ compiler or cmake here: the llama.cpp anchor was skipped"
    source = home / "src"
    if not source.exists():
        try:
            archive = _sdist(version, home)
        except OSError as exc:
            return f"could not download the llama-cpp-python {version} sdist ({exc}): skipped"
        with tarfile.open(archive) as tar:
            tar.extractall(home / "unpacked", filter="data")
        (vendored,) = (home / "unpacked").glob("*/vendor/llama.cpp")
        vendored.rename(source)
    build = home / "build"
    steps = [
        ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
        + ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DGGML_NATIVE=ON"],
        ["cmake", "--build", str(build), "--target", "llama-batched-bench", "-j"]
        + [str(len(os.sched_getaffinity(0)))],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"building llama-batched-bench failed: {done.stderr[-300:]}"
    return binary if binary.exists() else "llama-batched-bench was not built"


def _sdist(version: str, home: Path) -> Path:
    """The sdist, found on PyPI's simple index and checked against its sha256 (pip would
    build every build dependency from source just to download it)."""
    import hashlib
    import urllib.request

    with urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/") as r:
        page = r.read().decode()
    name = f"llama_cpp_python-{version}.tar.gz"
    found = re.search(r'href="([^"#]*/' + re.escape(name) + r')#sha256=([0-9a-f]+)"', page)
    if found is None:
        raise OSError(f"{name} is not on the index")
    home.mkdir(parents=True, exist_ok=True)
    archive = home / name
    urllib.request.urlretrieve(found.group(1), archive)
    if hashlib.sha256(archive.read_bytes()).hexdigest() != found.group(2):
        archive.unlink()
        raise OSError(f"{name} does not match its sha256")
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--again", action="store_true", help="measure every part again")
    parser.add_argument("--build-only", action="store_true", help="only build the anchor")
    parser.add_argument("--only", help="measure this one part again (a key of the JSON)")
    args = parser.parse_args()
    if args.build_only:
        print(_build_batched_bench())
        return
    from stepgraph.models import embedded
    from stepgraph.models.llamacpp import LlamaCppBackend

    data = {} if args.again or not OUT.exists() else json.loads(OUT.read_text())
    data.update(machine=machine(), cpu_flags=_cpu_flags(), date=machine()["date"])
    backend = LlamaCppBackend(embedded.model_path(), name=embedded.DEFAULT_MODEL, n_ctx=16384)
    parts = {
        "single_vs_plain": lambda: single(backend, args.rounds),
        "agg4_over_1": lambda: aggregate(backend, args.rounds),
        "planner_prefix_cached_over_uncached": lambda: prefix(backend),
        "run_over_direct_wall": lambda: demo(None, max(2, args.rounds // 2)),
        "run_over_direct_wall_shared_backend": lambda: demo(backend, max(2, args.rounds // 2)),
        "bench_agg4_over_1": lambda: batched_bench(backend.path),
    }
    for name, measure in parts.items():
        if args.only and name != args.only:
            continue
        if name in data and not (args.again or args.only):
            continue
        raw = measure()
        data[name] = raw.pop("ratio")
        data[name + "_raw"] = raw
        _save(data)
    backend.close()
    print(json.dumps({k: v for k, v in data.items() if not k.endswith("_raw")}, indent=2))


if __name__ == "__main__":
    main()
