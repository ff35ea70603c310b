"""Scale-out costs: gathering the ranks of a torch.distributed evaluation, and merging shard sessions.

    python benchmarks/scale.py                  # 1,000,000 examples x 3 metrics over 4 ranks; 8 x 125,000 shards

- gather: each of 4 gloo ranks (torchrun, CPU) yields 250,000 examples of 3 metrics; the figure is rank 0's
  time from its last example to the call's return, against the same for one process yielding all
  1,000,000 (the end of an ordinary run), in the same command.
- merge: 8 shard runs of 125,000 examples x 3 metrics written as offline sessions, then `tracked merge`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK_SCRIPT = """
import json, os, sys, time
import torch.distributed as dist
from tracked import tracked_eval
n = int(sys.argv[1])
if os.environ.get("WORLD_SIZE"):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
else:
    rank, world = 0, 1
marks = {}
@tracked_eval(verbose=False, task_name="scale", shard=sys.argv[2] if len(sys.argv) > 2 else None)
def evaluate(k):
    for i in range(rank, k, world):
        v = (i * 7919 % 1000) / 1000
        yield {"a": v, "b": 1.0 - v, "c": v * v}
    marks["last"] = time.perf_counter()
evaluate(n)
print(json.dumps({"rank": rank, "end": time.perf_counter() - marks["last"]}), flush=True)
"""


MERGE = """
import json, sys, time
start = time.perf_counter()
import clearml, pandas
from tracked.cli import main
imported = time.perf_counter()
main(["merge", *sys.argv[1:]])
print(json.dumps([imported - start, time.perf_counter() - imported]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: list[str], cache: str) -> str:
    env = {**os.environ, "CLEARML_CACHE_DIR": cache, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracked-scale-") as tmp:
        script = Path(tmp) / "rank.py"
        script.write_text(RANK_SCRIPT, encoding="utf-8")
        single = json.loads(run([sys.executable, str(script), str(args.n)], tmp + "/single").splitlines()[-1])
        out = run(
            [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.ranks}",
             f"--master_port={free_port()}", str(script), str(args.n)], tmp + "/ranks",
        )  # fmt: skip
        # The ranks share one stdout: their lines may run together.
        ends = {d["rank"]: d["end"] for d in map(json.loads, re.findall(r'\{"rank": \d+, "end": [^}]+\}', out))}
        print(f"gather: {args.n:,} examples x 3 metrics, {args.ranks} gloo ranks on {os.cpu_count()} CPUs")
        print(f"  one process, last example -> return: {single['end']:.2f} s")
        print(f"  rank 0 of {args.ranks}, last example -> return: {ends[0]:.2f} s "
              f"(+{ends[0] - single['end']:.2f} s)")  # fmt: skip
        size = args.n // args.shards
        cache = tmp + "/shards"
        for index in range(args.shards):
            shard_script = script.read_text().replace(
                "range(rank, k, world)", f"range({index * size}, {(index + 1) * size})"
            )
            one = Path(tmp) / f"shard{index}.py"
            one.write_text(shard_script, encoding="utf-8")
            run([sys.executable, str(one), str(args.n), f"{index}/{args.shards}"], cache)
        sessions = sorted(str(p) for p in Path(cache, "offline").iterdir() if p.is_dir())
        start = time.perf_counter()
        timed = run([sys.executable, "-c", MERGE, *sessions], tmp + "/merged")
        whole = time.perf_counter() - start
        imports, merging = json.loads(timed.strip().splitlines()[-1])
        print(
            f"merge: {args.shards} shard sessions of {size:,} examples x 3 metrics: {merging:.2f} s "
            f"(the `tracked merge` command: {whole:.2f} s, of which {imports:.2f} s importing clearml and pandas)"
        )


if __name__ == "__main__":
    main()
