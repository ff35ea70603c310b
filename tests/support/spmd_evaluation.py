"""One rank of a torch.distributed evaluation (run by tests/scaleout/test_distributed.py under torchrun or by hand).

Environment: N examples, MODE ("", "raise", "pad", "die", "term"), ID_FIELD, TIMEOUT (gather_timeout); DIE_WHEN: a
file rank 1 waits for before it dies (MODE=die), e.g. the one rank 0 writes when it pauses at a named point.
MODE=term: rank 0 iterates its evaluation lazily (lazy=True), takes 2 examples and sends itself SIGTERM.
Each rank writes one line to $OUT/rank<r>.txt: RESULT <rank> <json> or RAISED <rank> <exception type> <message>
(a file each: the ranks share one stdout).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

from tracked import TrackedWarning, tracked_eval


def data(n: int) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "correct": float(i % 3 == 0), "loss": i / 7, "answer": f"a{i}"} for i in range(n)]


def _wait_for(path: str) -> None:
    """Until ``path`` exists (another rank paused where the test wants this rank to die), at most 120 s."""
    deadline = time.monotonic() + 120
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mode = os.environ.get("MODE", "")
    examples = data(int(os.environ.get("N", "10")))

    @tracked_eval(
        verbose=False, task_name="spmd", id_field=os.environ.get("ID_FIELD", ""),
        gather_timeout=float(os.environ.get("TIMEOUT", "60")),
    )  # fmt: skip
    def evaluate(dataset: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for j, item in enumerate(dataset):
            if mode in ("raise", "die") and rank == 1 and j == 2:
                if mode == "die":
                    _wait_for(os.environ.get("DIE_WHEN", ""))
                    os._exit(9)
                raise ValueError("rank 1 broke")
            yield item

    if mode == "term" and rank == 0:  # a lazy evaluation is ended from the signal's handler (nothing unwinds it)
        import signal

        lazy = tracked_eval(lazy=True, verbose=False, task_name="spmd")(evaluate.__wrapped__)
        items = lazy(examples[rank::world])
        next(items), next(items)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)  # not reached: the signal ends the process once the run is saved
    if mode == "pad":  # DistributedSampler pads to a multiple of the world size with the first examples
        total = -(-len(examples) // world) * world
        examples = examples + examples[: total - len(examples)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(examples[rank::world])
        said = [str(w.message) for w in caught if issubclass(w.category, TrackedWarning)]
        out = {"metrics": dict(result), "session": str(result.session_dir), "status": result.status, "warnings": said}
        line = f"RESULT {rank} {json.dumps(out)}"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        line = f"RAISED {rank} {type(exc).__name__} {str(exc).replace(chr(10), ' ')[:300]}"
    Path(os.environ["OUT"], f"rank{rank}.txt").write_text(line + "\n", encoding="utf-8")
    if mode != "die":
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
