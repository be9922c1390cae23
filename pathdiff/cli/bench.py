"""``pathdiff bench``: the benchmark suite of toy problems (:mod:`pathdiff.bench`)."""

from __future__ import annotations

from pathdiff.bench.main import add_arguments, run


def add_parser(sub):
    p = sub.add_parser("bench", help="run the benchmark suite of toy problems")
    add_arguments(p)
    p.set_defaults(run=run)
    return p
