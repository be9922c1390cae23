"""Benchmark suite: every derivative estimator on a fixed set of problems.

* :mod:`.problems` — the problems (scene + scalar ParamSpec θ + loss + optimization target);
* :mod:`.make_references` — regenerates the stored finite-difference references;
* :mod:`.run` — measures one (problem, estimator) pair;
* :mod:`.report` — the markdown table, JSON and plots;
* ``pathdiff bench`` (or ``python -m pathdiff.bench``) — runs everything (:mod:`.__main__`).

See ``docs/benchmark.md``.
"""
