"""Load times of the registered datasets, against a baseline measured in the same run: reading the
same files with plain ``json``/``csv``/``gzip`` and no validation. Also the in-memory cache.

Run: ``python bench/bench_data_load.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from personalign.data import load_dataset
from personalign.data.datadir import resolve_data_dir

WAVES = [f"American_Trends_Panel_W{n}" for n in (26, 27, 29, 32, 34, 36, 41, 42, 43, 45, 49, 50, 54, 82, 92)]


def _raw_read(root: Path, rels: list[str]) -> None:
    for rel in rels:
        for p in sorted((root / rel).rglob("*")) if (root / rel).is_dir() else [root / rel]:
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif p.suffix == ".jsonl":
                [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
            elif p.name.endswith(".jsonl.gz"):
                [json.loads(x) for x in gzip.decompress(p.read_bytes()).decode().splitlines() if x.strip()]
            elif p.suffix == ".csv":
                with p.open(newline="", encoding="utf-8") as f:
                    for row in csv.DictReader(f):  # parse the Python-literal cells too
                        for col in ("references", "option_ordinal", "options"):
                            if col in row:
                                ast.literal_eval(row[col])
                        if "selections" in row:
                            ast.literal_eval(row["selections"].partition(", ")[2][:-1])


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


RAW = {
    "opinionqa-users": ["opinionqa/hwang2023_users"],
    "opinionqa-groups": ["opinionqa/group_counts"] + [f"opinionqa/questions/{w}" for w in WAVES],
    "globalopinionqa": ["globalopinionqa/questions.jsonl", "globalopinionqa/country_distributions.jsonl"],
    "globalopinionqa-csv": ["globalopinionqa/global_opinions_format.csv"],
    "hh-rlhf": ["hh_rlhf"],
    "ultrafeedback": ["ultrafeedback_binarized_sample"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = resolve_data_dir(None)
    print(f"{'dataset':22} {'raw read':>9} {'load':>9} {'ratio':>7} {'cached':>9}")
    for name, rels in RAW.items():
        raw = _best(lambda rels=rels: _raw_read(root, rels), args.repeat)
        cold = _best(lambda name=name: load_dataset(name, cache=False), args.repeat)
        load_dataset(name)
        cached = _best(lambda name=name: load_dataset(name), args.repeat)
        print(f"{name:22} {raw:8.3f}s {cold:8.3f}s {cold / raw:6.1f}x {cached * 1000:7.2f}ms")


if __name__ == "__main__":
    main()
