#!/usr/bin/env bash
# The remote command of stepgraph's GPU check (benchmarks/gpu_check.py), run from the repo
# root on a lent GPU machine (Python 3.12 with torch, transformers, peft; no network):
#     bash benchmarks/gpu_check.sh
# It needs a folder .device/ (list it in .git/info/exclude and carry it to the machine):
#   .device/whl/      wheels for what that machine lacks (pydantic, pydantic-core,
#                     annotated-types, typing-inspection, typing-extensions, gguf, xgrammar,
#                     apache-tvm-ffi, platformdirs), fetched with `pip download --no-deps
#                     --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 ...`
#   .device/qwen05b/  config.json, generation_config.json, tokenizer.json,
#                     tokenizer_config.json and chat_template.jinja of the embedded 0.5B model
#                     (from the cache's dequantized folder), without the weights: the check
#                     builds random weights, so it measures speed and plumbing, not quality.
# Results: $OUT/gpu_check.json, $OUT/gpu_check.md and this log, $OUT/log.txt.
# Local dry run of the shell logic: DEVICE=cpu GPU_CHECK_ARGS=--quick bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"

check() {
    echo "== $(date -u +%FT%TZ) on $(hostname); $(python3 --version 2>&1); repo $PWD"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .device/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || {
        echo "!! installing the wheels failed"
        return 2
    }
    nvidia-smi || echo "!! no nvidia-smi"
    command -v gcc || command -v cc || echo "!! no C compiler: triton (xgrammar's CUDA mask) may fail"
    python3 -c "
import importlib.metadata as m, importlib.util as u, torch, transformers, peft, xgrammar
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(),
      '| transformers', transformers.__version__, '| peft', peft.__version__,
      '| xgrammar', m.version('xgrammar'), '| matplotlib', u.find_spec('matplotlib') is not None)
" || echo "!! an import failed (see above); the check records what it can"
    export PYTHONUNBUFFERED=1 TRITON_CACHE_DIR=/tmp/triton-cache HF_HUB_OFFLINE=1
    # 6.5 minutes at most, so a run always ends (and writes its results) inside 8 minutes
    # shellcheck disable=SC2086 # GPU_CHECK_ARGS is a list of options
    timeout -k 20 390 python3 benchmarks/gpu_check.py --model .device/qwen05b \
        --device "$DEVICE" --work /tmp/gpuwork --out "$OUT" ${GPU_CHECK_ARGS:-}
    status=$?
    echo "== gpu_check exit status $status (124: cut by timeout); $(date -u +%FT%TZ)"
    return $status
}

check 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
