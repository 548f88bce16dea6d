#!/usr/bin/env bash
# Every GPU figure of issue 17 in one run (about 8 minutes on one H100 80 GB): `bench step` with each throughput
# lever on and off on the LLaVA-1.5-7B shape, then `bench e2e` (the full path against the bare step) on the
# llava-2.7b shape. Results go to $OUT/gpu_suite.json (a fresh temporary folder when OUT is unset) with the log
# beside it; the summary table is printed last. Installs nothing from a network: the step runs need only the
# python3 that holds torch and transformers; bench e2e also needs ray, deepspeed and pydantic, and is recorded as
# skipped where they are missing, unless their wheels lie in .whl/ at the repository root (installed offline into
# a temporary folder).
#
#   bench/gpu.sh              the GPU run (needs CUDA)
#   bench/gpu.sh --dry-run    the same runs on CPU with the tiny shape (checks the script where no GPU is lent)
#   bench/gpu.sh --budget-s N end everything within N seconds (default 480; the command itself adds ~30 s)
#   PYTHON=/path/python       the interpreter (default python3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
dry_run=""
budget=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=--dry-run ;;
    --budget-s)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "gpu.sh: --budget-s needs a whole number of seconds" >&2; exit 2; }
      budget="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument '$1'; use --dry-run or --budget-s N (--help)" >&2; exit 2 ;;
  esac
  shift
done
budget="${budget:-$([ -n "$dry_run" ] && echo 600 || echo 480)}"

out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/vlmtune-gpu-XXXXXX")}"
mkdir -p "$out"

extra=""
if compgen -G "$root/.whl/*.whl" >/dev/null; then
  extra="$(mktemp -d "${TMPDIR:-/tmp}/vlmtune-site-XXXXXX")"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$extra" "$root"/.whl/*.whl
fi
export PYTHONPATH="$root/platform:$root/model${extra:+:$extra}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -n "$dry_run" ]; then
  export TORCH_COMPILE_DISABLE="${TORCH_COMPILE_DISABLE:-1}"  # inductor on a shared 2-core machine takes minutes
elif command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi

# The suite keeps its own deadline; this outer limit only catches a hang (a stuck collective, a wedged child).
timeout --kill-after=20 "$((budget + 60))" "$python" -m vlmtune.bench.gpu_suite --out "$out" --budget-s "$budget" \
  ${dry_run:+"$dry_run"} 2>&1 | tee "$out/gpu_suite.log"
echo "results: $out/gpu_suite.json"
