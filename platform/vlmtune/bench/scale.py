"""`vlmtune bench scale`: does the data plane's cost stay flat as the dataset grows?

For each size it synthesizes a Vision-Flan-format dataset (191 tasks, one small image file per record),
prepares it with `vlmtune data prepare` in a child process, then trains the tiny preset on the whole
epoch with `vlmtune run` in another, stopping after a few optimizer steps, and reports:

- `prepare_instances_per_s_per_core`: instances kept / CPU-seconds of the prepare process (all threads);
- `prepare_peak_rss_bytes`: its peak resident memory (the kernel's high-water mark, from wait4);
- `driver_peak_rss_bytes` / `worker_peak_rss_bytes`: peak resident memory of the `vlmtune run` process and of
  the largest Ray Train worker, sampled every 0.1 s while training;
- `seconds_to_first_step`: from starting `vlmtune run` to its first metrics row (Ray start, planning over the
  whole epoch, workers, the first reads and step).

With `--compare M` both sizes run and the growth ratios (larger / smaller) are printed against their targets.
The job plans the full epoch (no maxSteps), as the paper's stage 1 does, and is stopped once `steps` rows exist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from vlmtune.bench.synthetic import write_vision_flan_like
from vlmtune.node_cache import cache_root

TARGETS = {"driver_peak_rss_bytes": 1.3, "worker_peak_rss_bytes": 1.3, "seconds_to_first_step": 1.5}
_POLL_S = 0.1


@dataclass(frozen=True)
class ScaleBenchConfig:
    instances: int
    compare: int | None = None
    workdir: str | None = None  # default: $VLMTUNE_CACHE/bench-scale (synthesized data is reused across runs)
    tasks: int = 191
    steps: int = 3
    workers: int = 2
    io_threads: int = 8
    timeout_s: float = 3600.0


class BenchFailed(RuntimeError):
    """A child process of the benchmark failed; the message holds the end of its output."""


def run_scale_bench(config: ScaleBenchConfig) -> dict:
    workdir = Path(config.workdir) if config.workdir else cache_root() / "bench-scale"
    sizes = [config.instances] + ([config.compare] if config.compare else [])
    results = {size: measure_size(size, workdir, config) for size in sizes}
    report = {"sizes": {str(size): figures for size, figures in results.items()}, "config": asdict(config)}
    if config.compare:
        small, large = results[min(sizes)], results[max(sizes)]
        report["growth"] = {name: large[name] / small[name] for name in (*TARGETS, "prepare_peak_rss_bytes")}
        report["targets"] = dict(TARGETS)
        report["meets_targets"] = all(report["growth"][name] <= limit for name, limit in TARGETS.items())
    return report


def measure_size(instances: int, workdir: Path, config: ScaleBenchConfig) -> dict:
    dataset = write_vision_flan_like(workdir / f"raw-{instances}", instances, tasks=config.tasks)
    shards = workdir / f"shards-{instances}"
    prepare = _prepare(dataset.annotations, dataset.images, shards, config.io_threads, config.timeout_s)
    train = _train(shards, workdir / f"run-{instances}", config)
    return {"instances": instances, **prepare, **train}


def _prepare(annotations: Path, images: Path, out: Path, io_threads: int, timeout_s: float) -> dict:
    _remove(out)  # a fresh conversion: an up-to-date output would measure nothing
    command = [
        sys.executable,
        "-m",
        "vlmtune.cli",
        "data",
        "prepare",
        "--format",
        "vision-flan",
        "--annotations",
        str(annotations),
        "--images",
        str(images),
        "--out",
        str(out),
        "--io-threads",
        str(io_threads),
    ]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        status, usage = _wait4(process, timeout_s)  # the child's own high-water mark and CPU time
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise BenchFailed(f"vlmtune data prepare failed:\n{log.read().decode(errors='replace')[-3000:]}")
    kept = json.loads((out / "manifest.json").read_text())["instances"]
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "prepare_instances_per_s_per_core": kept / cpu,
        "prepare_instances_per_s": kept / wall,
        "prepare_peak_rss_bytes": usage.ru_maxrss * 1024,
        "prepare_seconds": wall,
        "prepared_instances": kept,
    }


def _train(shards: Path, out: Path, config: ScaleBenchConfig) -> dict:
    _remove(out)
    job = out.with_suffix(".yaml")
    job.write_text(_job_file(shards, out, config.workers))
    command = [sys.executable, "-m", "vlmtune.cli", "run", str(job), "--force"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )  # its own group: stopping it takes Ray down too
    driver, workers, first_step = 0, 0, None
    metrics = out / "metrics.jsonl"
    try:
        while _rows(metrics) < config.steps:
            if process.poll() is not None:
                raise BenchFailed(f"vlmtune run ended before step {config.steps}:\n{process.stdout.read()[-3000:]}")
            if time.perf_counter() - started > config.timeout_s:
                raise BenchFailed(f"no step {config.steps} within {config.timeout_s:.0f} s")
            driver = max(driver, _rss(process.pid))
            workers = max([workers, *(_rss(p.pid) for p in train_workers(process.pid))])
            if first_step is None and _rows(metrics) >= 1:
                first_step = time.perf_counter() - started
            time.sleep(_POLL_S)
    finally:
        _stop(process)
    if first_step is None:
        first_step = time.perf_counter() - started
    return {"driver_peak_rss_bytes": driver, "worker_peak_rss_bytes": workers, "seconds_to_first_step": first_step}


def _job_file(shards: Path, out: Path, workers: int) -> str:
    # The whole epoch is planned (no maxSteps), as stage 1 plans all of Vision-Flan; the bench stops the run.
    return json.dumps(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": "bench-scale"},
            "spec": {
                "model": {"preset": "tiny"},
                "data": {"sources": [{"uri": str(shards), "format": "shards"}], "maxSkippedFraction": 1.0},
                "training": {
                    "epochs": 1,
                    "globalBatchSize": 16,
                    "microBatchSize": 4,
                    "maxLength": 512,
                    "learningRate": 1.0e-4,
                    "logEverySteps": 1,
                    "checkpointEverySteps": None,
                },
                "resources": {"workers": workers},
                "output": {"uri": str(out)},
            },
        }
    )


def _rows(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _rss(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def train_workers(pid: int) -> list[psutil.Process]:
    """The Ray Train worker processes under `pid`; processes that exit (or turn zombie) while listed are skipped."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if "RayTrainWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait4(process: subprocess.Popen, timeout_s: float):
    """(status, rusage) of the child once it exits; killed past `timeout_s`."""
    deadline = time.perf_counter() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return status, usage
        if time.perf_counter() > deadline:
            process.kill()
            raise BenchFailed(f"vlmtune data prepare took over {timeout_s:.0f} s")
        time.sleep(_POLL_S)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def report(result: dict, as_json: bool) -> str:
    """The figures as one JSON object, or as lines for a terminal."""
    if as_json:
        return json.dumps(result, indent=1)
    lines = []
    for size, figures in result["sizes"].items():
        lines.append(
            f"{int(size):,} instances: prepare {figures['prepare_instances_per_s_per_core']:.0f} inst/s per "
            f"core, peak {figures['prepare_peak_rss_bytes'] / 2**20:.0f} MiB; driver peak "
            f"{figures['driver_peak_rss_bytes'] / 2**20:.0f} MiB, worker peak "
            f"{figures['worker_peak_rss_bytes'] / 2**20:.0f} MiB, first step "
            f"{figures['seconds_to_first_step']:.1f} s"
        )
    for name, ratio in result.get("growth", {}).items():
        target = TARGETS.get(name)
        lines.append(f"growth {name:<24} {ratio:.2f}" + (f"  (target <= {target})" if target else ""))
    return "\n".join(lines)
