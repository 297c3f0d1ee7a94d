"""What the scale benchmarks share (bench_scale.py and bench_scale_trees.py): peak memory and
CPU sampling on the workers, the benchmark's LightGBM base learner, the generated datasets.

Imported by those scripts from their own folder (``benchmarks/`` is on ``sys.path`` when a
script there runs).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["PeakMemory", "base_learner", "ensure_dataset"]


# ---------------------------------------------------------------------- memory sampling
def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


class PeakMemory:
    """Peak RSS per worker (and of this process) while the ``with`` block runs, and the CPU
    seconds the workers (or, without a client, this process) spent: on a shared machine, rows
    per CPU second measure per-core throughput whatever else runs."""

    def __init__(self, client: Any, interval: float = 0.5) -> None:
        self.client, self.interval = client, interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                sizes = self.client.run(_rss) if self.client is not None else {}
            except Exception:  # a worker restarting: keep sampling the others
                sizes = {}
            sizes["client"] = _rss()
            for w, b in sizes.items():
                self.peak[w] = max(self.peak.get(w, 0), int(b))
            self._stop.wait(self.interval)

    def _cpu_now(self) -> float:
        if self.client is None:
            return _cpu()
        return float(sum(self.client.run(_cpu).values()))

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        self.cpu0 = self._cpu_now()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = self._cpu_now() - self.cpu0
        self._stop.set()
        self._thread.join()

    def result(self, **extra: Any) -> dict[str, Any]:
        workers = [v for k, v in self.peak.items() if k != "client"]
        return {
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "peak_worker_gb": round(max(workers) / 2**30, 2) if workers else None,
            "peak_client_gb": round(self.peak.get("client", 0) / 2**30, 2),
            **extra,
        }


def base_learner(trees: int) -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(
        n_estimators=trees,
        learning_rate=min(0.5, 10.0 / trees),
        num_leaves=15,
        min_child_samples=40,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.9,
        reg_lambda=1.0,
        n_jobs=1,
        verbose=-1,
    )


def ensure_dataset(workdir: Path, n: int, chunk: int) -> Any:
    from pex_tuner.datasets import write_synthetic_parquet

    t0 = time.perf_counter()
    info = write_synthetic_parquet(
        workdir / f"synthetic_{n}", n, chunk_size=chunk, n_features=10, parallel=True
    )
    print(f"dataset {info.path}: {n:,} units ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    return info
