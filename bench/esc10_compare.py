"""Compare `cnn` parameter sets on ESC-10 by fold, outside `bench.run` (a quick A/B while
choosing defaults): ``python -m bench.esc10_compare '{"name": {params}, ...}' 1,2,3,4
[workers]``. Folds in the outer loop; each fit is `bench.esc10_cnn.fit_fold` in a fresh
one-thread process; results are printed and appended to bench/out/esc10_compare.jsonl.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.common import DATA_DIR, OUT_DIR, run_isolated
from bench.esc10_cnn import CACHE, fit_fold, load_esc10


def one(job: tuple[str, dict[str, Any], int]) -> dict[str, Any]:
    name, params, fold = job
    found, _ = run_isolated(fit_fold, str(CACHE), "cnn", params, fold, threads=1,
                            timeout_s=1800.0)
    found.update(name=name, params=params, fold=fold)
    with (OUT_DIR / "esc10_compare.jsonl").open("a") as log:
        log.write(json.dumps(found) + "\n")
    return found


def main(argv: list[str]) -> None:
    configs: dict[str, dict[str, Any]] = json.loads(argv[0])
    folds = [int(f) for f in argv[1].split(",")]
    workers = int(argv[2]) if len(argv) > 2 else 1
    load_esc10(DATA_DIR)
    jobs = [(name, params, fold) for fold in folds for name, params in configs.items()]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for found in pool.map(one, jobs):
            print(json.dumps(found), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
