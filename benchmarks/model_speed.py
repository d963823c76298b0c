"""Model-layer speed on this machine: decode tok/s per engine, aggregate tok/s with 1/2/4
concurrent requests, cold-process time to first token, and 50 constrained generations
against a plan-shaped schema per engine (all must parse and validate).

Run: .venv/bin/python benchmarks/model_speed.py [--skip-transformers]
Resumable: finished sections are kept in benchmarks/results/model_speed.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import ResultFile  # noqa: E402

from stepgraph.models import embedded  # noqa: E402
from stepgraph.models.base import Request  # noqa: E402

PROMPT = "Write a detailed essay about the history of the printing press."
PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^s[0-9]$"},
                    "executor": {"enum": ["llm", "python", "calculator"]},
                    "instruction": {"type": "string", "maxLength": 200},
                    "depends_on": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                },
                "required": ["id", "executor", "instruction", "depends_on"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}
TASKS = [
    "Plan how to compute the average of 12, 17 and 31, then explain it.",
    "Plan a comparison of two programming languages for beginners.",
    "Plan how to write a short poem about rain and count its words.",
    "Plan how to find the largest prime below 500 and say if it is a twin prime.",
    "Plan a weekend trip to Rome on a budget of 300 euros.",
]


def valid(text: str) -> bool:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return False
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not 1 <= len(steps) <= 4 or set(data) != {"steps"}:
        return False
    for s in steps:
        if set(s) != {"id", "executor", "instruction", "depends_on"}:
            return False
        if s["executor"] not in ("llm", "python", "calculator") or not isinstance(
            s["depends_on"], list
        ):
            return False
    return True


def decode_speed(backend, n_tokens: int = 150, runs: int = 3) -> dict:
    speeds = []
    for _ in range(runs):
        done = backend.complete(Request.chat(PROMPT, max_tokens=n_tokens))
        decode_time = done.seconds - (done.first_token_seconds or 0)
        speeds.append((done.completion_tokens - 1) / decode_time)
    return {
        "tokens": n_tokens,
        "runs": runs,
        "tok_s": [round(s, 1) for s in speeds],
        "median_tok_s": round(statistics.median(speeds), 1),
    }


def plain_llama_cpp_python(n_tokens: int = 150, runs: int = 2) -> dict:
    """The same prompt through llama-cpp-python's own high-level API: the engine's yardstick."""
    import os

    from llama_cpp import Llama

    threads = len(os.sched_getaffinity(0))  # its default is half the cores
    llm = Llama(str(embedded.model_path()), n_ctx=4096, n_threads=threads, verbose=False)
    speeds = []
    for _ in range(runs):
        first, n = None, 0
        stream = llm.create_chat_completion(
            [{"role": "user", "content": PROMPT}], max_tokens=n_tokens, temperature=0, stream=True
        )
        for _chunk in stream:
            first = first or time.perf_counter()
            n += 1
        speeds.append((n - 1) / (time.perf_counter() - first))
    llm.close()
    return {
        "tok_s": [round(x, 1) for x in speeds],
        "median_tok_s": round(statistics.median(speeds), 1),
    }


def concurrency(backend, n_tokens: int = 128) -> dict:
    out = {}
    for n in (1, 2, 4):
        requests = [Request.chat(f"{PROMPT} Part {i + 1}.", max_tokens=n_tokens) for i in range(n)]
        backend.generate(requests[:1])  # warm the prefix
        start = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:  # independent callers, as the runtime's steps are
            done = list(pool.map(lambda r: backend.complete(r), requests))
        seconds = time.perf_counter() - start
        tokens = sum(d.completion_tokens for d in done)
        out[str(n)] = {
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "aggregate_tok_s": round(tokens / seconds, 1),
        }
    out["speedup_4"] = round(out["4"]["aggregate_tok_s"] / out["1"]["aggregate_tok_s"], 2)
    return out


COLD = """
import time, sys
t0 = float(sys.argv[1])
from stepgraph.models import load_model, Request
m = load_model("qwen2.5-coder-0.5b")
for piece in m.stream(Request.chat("Say hello.", max_tokens=5)):
    print(time.time() - t0)
    break
"""


def cold_first_token(runs: int = 3) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-c", COLD, str(t0)], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[0]))
    return {"runs": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2)}


def constrained(backend, n: int = 50) -> dict:
    ok, seconds = 0, []
    failures = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        request = Request.chat(
            task + " Reply with compact JSON.",
            json_schema=PLAN_SCHEMA,
            max_tokens=400,
            temperature=0.7 if i >= len(TASKS) else 0.0,
            seed=i,
        )
        done = backend.complete(request)
        seconds.append(done.seconds)
        if valid(done.text):
            ok += 1
        else:
            failures.append(done.text[:300])
    return {
        "generations": n,
        "valid": ok,
        "median_s": round(statistics.median(seconds), 2),
        "failures": failures[:5],
    }


def main() -> None:
    results = ResultFile("model_speed.json")
    from stepgraph.models.llamacpp import LlamaCppBackend

    llama = LlamaCppBackend(embedded.model_path(), name="qwen2.5-coder-0.5b")
    for key, fn in [
        ("llamacpp_decode", decode_speed),
        ("llamacpp_concurrency", concurrency),
        ("llamacpp_constrained", constrained),
    ]:
        if not results.has(key):
            print(key, "...", flush=True)
            results.put(key, fn(llama))
            print(json.dumps(results.data[key]), flush=True)
    llama.close()
    if not results.has("plain_llama_cpp_python_decode"):
        results.put("plain_llama_cpp_python_decode", plain_llama_cpp_python())
    if not results.has("cold_first_token"):
        results.put("cold_first_token", cold_first_token())
        print(json.dumps(results.data["cold_first_token"]), flush=True)
    if "--skip-transformers" in sys.argv:
        return
    from stepgraph.models.transformers import TransformersBackend

    tf = TransformersBackend(embedded.model_path())
    for key, fn in [
        ("transformers_decode", lambda b: decode_speed(b, n_tokens=60, runs=2)),
        ("transformers_constrained", constrained),
    ]:
        if not results.has(key):
            print(key, "...", flush=True)
            results.put(key, fn(tf))
            print(json.dumps(results.data[key]), flush=True)


if __name__ == "__main__":
    main()
