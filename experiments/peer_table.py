"""Mitsuba 3's AD-integrator configurations (tests/peer_configs.py) against CRN FD.

Prints one line per (configuration, estimator) and, per estimator, how many configurations
agree with finite differences of the primal ``path`` integrator (noise-aware statistics of
:func:`pathdiff.stats.compare`: total, random-weight losses, 4x4 tile sums). ``prb`` is run
on the 15 interior-only configurations, the boundary estimators on all 24.

Usage: PYTHONPATH=. python3 experiments/peer_table.py [--res 16] [--spp 32] [--fd-spp 256]
       [--seeds 4] [--estimators prb,edge,psdr,reparam] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import peer_configs as P  # noqa: E402

ISSUE = {"prb": "11/15", "edge": "19/24"}  # issue 13's measurement (32x32, 4 seeds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=16)
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=4, help="AD seeds (FD: 8)")
    ap.add_argument("--fd-spp", type=int, default=256)
    ap.add_argument("--estimators", default="prb,edge,psdr,reparam")
    ap.add_argument("--only", default="")
    a = ap.parse_args(argv)
    estimators = a.estimators.split(",")
    configs = [c for c in P.CONFIGS if not a.only or c.name in a.only.split(",")]
    if not configs or any(e not in ("prb", "edge", "psdr", "reparam") for e in estimators):
        print("peer_table: unknown configuration or estimator", file=sys.stderr)
        return 2
    tally = {e: [0, 0] for e in estimators}
    failed = {e: [] for e in estimators}
    for cfg in configs:
        t0 = time.time()
        fd = P.fd_runs(cfg, a.res, spp=a.fd_spp)
        for est in estimators:
            if est == "prb" and not cfg.interior_only:
                continue
            m = P.judge(cfg, est, P.ad_runs(cfg, est, a.res, spp=a.spp, seeds=a.seeds), fd)
            tally[est][0] += m.passed
            tally[est][1] += 1
            if not m.passed:
                failed[est].append(cfg.name)
            print(m.line(), flush=True)
        print(f"# {cfg.name}: {time.time() - t0:.1f} s", flush=True)
    print(f"\nestimator  agree with FD (res {a.res}, {a.spp} spp x {a.seeds} seeds)   issue 13")
    for est, (ok, n) in tally.items():
        print(f"{est:9s}  {ok}/{n:<40d} {ISSUE.get(est, '-')}")
    for est, names in failed.items():
        if names:
            print(f"{est} disagrees on: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
