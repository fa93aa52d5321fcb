"""Where the Gibbs sampler's peak memory comes from, on relation blocks at scale.

Generates ``--size`` synthetic ratings (``make_relational_ratings``, as
``bench_relational_scale.py`` does: the last 1% held out), fits ``BayesianFM(k=8)`` for
two sweeps, and prints the peak resident memory (VmRSS sampled every 10 ms on a thread)
between consecutive steps of the fit: the schedule, the sampler's set-up, the refreshes,
the w and V updates and the hyperparameter draws.

    python benchmarks/profile_sampler_memory.py --size 1e7
    python benchmarks/profile_sampler_memory.py --smoke     # seconds: 3,000 ratings

It prints its profile (no results file); the first line is the run's provenance
(``common.provenance``: commit, dirty flag, versions, command).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402

import fmlib  # noqa: E402
from fmlib.data.relational_synthetic import make_relational_ratings  # noqa: E402
from fmlib.solvers import (
    mcmc,  # noqa: E402
    sweeper,  # noqa: E402
)


def rss_mib() -> float:
    value = common.rss_mib()
    if value is None:
        raise RuntimeError("no VmRSS in /proc/self/status: this profile needs Linux")
    return value


class Recorder:
    """Samples the resident memory on a thread; ``mark`` notes a step of the fit."""

    def __init__(self):
        self.samples, self.events, self.running = [], [], True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.running:
            self.samples.append((time.perf_counter(), rss_mib()))
            time.sleep(0.01)

    def mark(self, label: str) -> None:
        self.events.append((time.perf_counter(), label))

    def wrap(self, owner, name: str) -> None:
        """Mark the entry and the exit of ``owner.name``."""
        original = getattr(owner, name)

        def marked(*args, **kwargs):
            self.mark(f"> {name}")
            result = original(*args, **kwargs)
            self.mark(f"< {name}")
            return result

        setattr(owner, name, marked)

    def report(self) -> None:
        """The largest sample between every pair of consecutive marks (repeated pairs,
        as the sweeps repeat, are merged)."""
        self.running = False
        peaks: dict[str, float] = {}
        ends = self.events[1:] + [(time.perf_counter(), "end")]
        for (t0, a), (t1, b) in zip(self.events, ends):
            inside = [m for t, m in self.samples if t0 <= t <= t1]
            if inside:
                peaks[f"{a} .. {b}"] = max(peaks.get(f"{a} .. {b}", 0.0), max(inside))
        for stage, peak in peaks.items():
            print(f"{peak:8.0f} MiB  {stage}")
        print(f"{max(m for _, m in self.samples):8.0f} MiB  peak (sampled)")
        print(f"{common.peak_rss_mib():8.0f} MiB  peak (VmHWM)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1e6)
    parser.add_argument(
        "--smoke", action="store_true", help="3,000 ratings: checks the script runs"
    )
    args = parser.parse_args()
    size = 3000 if args.smoke else int(args.size)
    print(json.dumps(common.finish(common.provenance(smoke=args.smoke))))
    rec = Recorder()
    for name in ("relational_schedule", "make_sweeper"):
        rec.wrap(sweeper, name)
    mcmc.make_sweeper = sweeper.make_sweeper  # the name mcmc imported
    for name in ("refresh", "update_w", "update_V", "__init__"):
        rec.wrap(sweeper.RelationalSweeper, name)
    for name in ("draw_alpha", "draw_normal_gamma"):
        rec.wrap(mcmc, name)
    print(f"{rss_mib():8.0f} MiB  after the imports")
    rec.mark("imports done")
    data = make_relational_ratings(size, k=4, seed=0)
    held = max(1000, size // 100)
    train, y_train = data.design[:-held], data.y[:-held]
    del data
    rec.mark("data ready")
    fmlib.BayesianFM(k=8, num_sweeps=2, burn_in=1, seed=0).fit(train, y_train)
    rec.mark("fit done")
    time.sleep(0.05)
    rec.report()


if __name__ == "__main__":
    main()
