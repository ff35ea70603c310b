"""Overhead of @tracked_eval against a bare loop and the seed's hand-written ClearML loop.

    python benchmarks/bench.py                       # N = 1,000 / 100,000 / 1,000,000
    python benchmarks/bench.py --sizes 1000 --repeat 1
    python benchmarks/bench.py --sizes 10000000 --shapes float,map3text,label,batch3text --ways tracked --repeat 1

Ways: ``bare`` (no tracking), ``seed`` (the seed guide's hand-written
loop), ``tracked`` (``verbose=False``: no bar, flushing every 3 s by
default) and ``live`` (a progress bar drawn on a pseudo-terminal and the
run flushed every 0.2 s: chart streamed, journal written, many times over
even in a one-second run).

Every measurement runs in a fresh child process (so peak RSS and ClearML's
global state belong to that measurement alone); all of them run in this one
command, baseline included, and the table shows medians over --repeat runs.
The input is built, and garbage-collected, before the clock starts.

Columns:
- overhead us/ex: (loop time - bare loop time) / N, the loop being the time
  from the generator's first line to its end (the per-example cost);
- total s: the whole call, task creation and closing included;
- end s: from the last example to the call's return (final metrics, table,
  writing and closing the session);
- peak RSS MB and growth MB: peak resident memory during the call, and its
  growth over the same process just before the call (libraries imported,
  input built, one warm-up run);
- events: ClearML events written to the offline session.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "float": "one float",
    "map3": "mapping of 3 metrics",
    "map3text": "3 metrics + a 60-character text",
    "label": "an int label + 2 metrics",
    "tensor": "torch CPU scalar tensor",
    "batch1": "batch(1,000 × 1 numpy metric)",
    "batch3": "batch(1,000 × 3 numpy metrics + text)",
    "batch3text": "batch(1,000 × 3 numpy metrics + a 60-character text)",
    "batch-torch": "batch(1,000 × 3 torch CPU metrics)",
    "batch-cuda": "batch(1,000 × 3 torch CUDA metrics)",
}
BATCH = 1000  # examples per batch in the batch shapes
TENSOR_MAX_N = 100_000  # a million torch tensor objects alone take gigabytes
SEED_MAX_N = 1_000  # ~1.2-3.5 ms per example with ClearML's defaults: 1,000 is ~1 minute with repeats


def status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Start VmHWM (peak RSS) afresh, so the peak is the call's own, not the set-up's (Linux)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")


#: Realistic scores are random (periodic ones zip to almost nothing, flattering the end of a run); texts are
#: English-like, unique, and made while the evaluation runs, as a model's answers are.
_SENTENCE = (
    "the of and to in is was that for on as with by at from his an were are which this be or had not but "
    "first one their its new after who they have her she two been other when there all during into school "
    "time may years more most only over city some world would where later up such used many can state about "
    "national out known university united then made"
)
_WORDS = _SENTENCE.split()


def text(i: int) -> str:
    """A unique 60-character English-like answer for example ``i`` (the cost of a model's text, roughly)."""
    words, h = [], i * 2654435761
    while sum(len(w) + 1 for w in words) < 48:
        h = (h * 6364136223846793005 + 1442695040888963407) % 2**64
        words.append(_WORDS[(h >> 32) % len(_WORDS)])
    return f"{' '.join(words)} #{i}".ljust(60)[:60]


def make_items(n: int, shape: str) -> list[Any]:
    import numpy as np

    if shape.startswith("batch"):
        return make_batches(n, shape)
    rng = np.random.default_rng(n)
    values = rng.random(n).tolist()
    if shape == "tensor":
        import torch

        return [torch.tensor(v) for v in values]
    if shape == "float":
        return values
    other, third = rng.random(n).tolist(), rng.random(n).tolist()
    if shape == "label":
        labels = rng.integers(0, 10, n).tolist()
        return [{"label": k, "a": v, "b": w} for k, v, w in zip(labels, values, other, strict=True)]
    return [{"a": v, "b": w, "c": x} for v, w, x in zip(values, other, third, strict=True)]


def make_batches(n: int, shape: str) -> list[dict[str, Any]]:
    """The columns of each batch, made before timing (a bare loop consumes the same columns)."""
    import numpy as np

    rng = np.random.default_rng(n)
    values = rng.random(n)
    texts = [f"answer {i}" for i in range(n)] if shape == "batch3" else []
    batches = []
    for start in range(0, n, BATCH):
        part = values[start : start + BATCH]
        columns: dict[str, Any] = {"a": part} if shape == "batch1" else {"a": part, "b": 1.0 - part, "c": part * part}
        if shape == "batch3text":
            columns["b"], columns["c"] = rng.random(len(part)), rng.random(len(part))
        if shape == "batch3":
            columns["prediction"] = texts[start : start + BATCH]
        if shape.startswith("batch-"):
            import torch

            device = "cuda" if shape == "batch-cuda" else "cpu"
            columns = {k: torch.tensor(v, device=device) for k, v in columns.items()}
        batches.append(columns)
    return batches


def evaluation(
    items: list[Any], marks: dict[str, float], batched: bool = False, texts: bool = False, wrap: bool = True
) -> Iterator[Any]:
    marks["first"] = time.perf_counter()
    if batched:
        from tracked import batch

        for number, columns in enumerate(items):
            if texts:  # the batch's answers, made now
                first = number * BATCH
                columns = {**columns, "prediction": [text(first + j) for j in range(len(columns["a"]))]}
            yield batch(columns) if wrap else columns
    elif texts:
        for i, item in enumerate(items):
            yield {**item, "prediction": text(i)}
    else:
        yield from items
    marks["last"] = time.perf_counter()


def count_events(folder: Path | None) -> int:
    if folder is None or not (folder / "metrics.jsonl").is_file():
        return 0
    with (folder / "metrics.jsonl").open(encoding="utf-8") as lines:
        return sum(len(json.loads(line)) for line in lines if line.strip())


def child(variant: str, n: int, shape: str) -> dict[str, Any]:
    import clearml  # noqa: F401 - imported up front by every variant, so RSS growth compares alike
    import pandas  # noqa: F401

    from tracked import tracked_eval

    marks: dict[str, float] = {}
    folder: Path | None = None
    options: dict[str, Any] = {"verbose": False}
    if variant == "live":
        options = {"verbose": True, "progress": "on", "flush_interval": 0.2}
        draw_on_a_terminal()
    tracked = tracked_eval(project="bench", task_name=f"{variant}-{shape}-{n}", **options)(evaluation)
    batched, texts = shape.startswith("batch"), shape.endswith("text")
    if variant in ("tracked", "live"):
        tracked(make_items(BATCH if batched else 10, shape), {}, batched, texts)  # warm-up: one-off start-up costs
    items = make_items(n, shape)
    # The input is long-lived, as a real evaluation's dataset is: collected into the oldest generation
    # now, or the first collection that the tracked run's allocations trigger walks a million fresh
    # objects of the set-up (0.03-0.05 µs per example in the batch rows), a cost the bare loop never pays.
    gc.collect()
    reset_peak_rss()
    before = status_mb("VmRSS")
    start = time.perf_counter()
    if variant == "bare":
        for _item in evaluation(items, marks, batched, texts, wrap=False):
            pass
    elif variant in ("tracked", "live"):
        result = tracked(items, marks, batched, texts)
        folder = result.session_dir
    else:
        folder = seed_loop(items, marks, shape)
    end = time.perf_counter()
    peak = status_mb("VmHWM")
    return {
        "loop": marks["last"] - marks["first"],
        "total": end - start,
        "end": end - marks["last"],
        "first": marks["first"] - start,
        "peak": peak,
        "growth": peak - before,
        "events": count_events(folder),
    }


def draw_on_a_terminal() -> None:
    """stderr becomes a pseudo-terminal (drained by a thread), so the progress bar is really drawn."""
    import pty
    import threading

    master, slave = pty.openpty()
    os.dup2(slave, 2)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's stderr from now on

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()


def seed_loop(items: list[Any], marks: dict[str, float], shape: str) -> Path | None:
    """The seed guide's way, by hand: report_scalar per example with ClearML's default settings."""
    import pandas as pd
    from clearml import Task

    Task.set_offline(True)
    start = time.perf_counter()
    task = Task.init(project_name="bench", task_name=f"seed-{shape}-{len(items)}")
    logger = task.get_logger()
    sums: dict[str, float] = {}
    count = 0
    for i, item in enumerate(evaluation(items, marks)):
        scores = item if isinstance(item, dict) else {"score": float(item)}
        for name, value in scores.items():
            logger.report_scalar("Training Progress", name, value=value, iteration=i)
            sums[name] = sums.get(name, 0.0) + value
        count += 1
    metrics = {name: total / count for name, total in sums.items()}
    metrics.update(num_examples=count, duration_seconds=time.perf_counter() - start)
    for name, value in metrics.items():
        logger.report_single_value(name, value)
    table = pd.DataFrame({"Metric": list(metrics), "Value": list(metrics.values())})
    logger.report_table("Final Metrics", "summary", iteration=0, table_plot=table)
    folder = task.get_offline_mode_folder()
    task.close()
    return Path(folder) if folder else None


SEED_TIMEOUT_S = 60  # ClearML's forked reporter sometimes waits ~300 s at close (clearml-notes.md)


def measure(variant: str, n: int, shape: str, repeat: int, cache: str) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        env = {**os.environ, "CLEARML_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for key in ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_AUTH_TOKEN"):
            env.pop(key, None)
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, str(n), shape],
                capture_output=True, text=True, env=env, check=True, cwd=ROOT,
                timeout=SEED_TIMEOUT_S if variant == "seed" else None,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"{variant} N={n:,} {shape} failed:\n{exc.stderr}") from None
        except subprocess.TimeoutExpired:
            print(f"  {variant} N={n:,} {shape}: no return within {SEED_TIMEOUT_S} s", file=sys.stderr)
            runs.append(dict.fromkeys(("loop", "total", "end", "first", "peak", "growth", "events"), float("nan")))
            continue
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finished = [run for run in runs if run["total"] == run["total"]] or runs  # NaN: timed out
    medians = {key: statistics.median(run[key] for run in finished) for key in runs[0]}
    medians["hung"] = len(runs) - len(finished) if finished is not runs else len(runs)
    return medians


def import_ms() -> float:
    code = "import time; t = time.perf_counter(); import tracked; print((time.perf_counter() - t) * 1000)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout)
        for _ in range(11)
    ]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument(
        "--shapes",
        default="float,map3,map3text,label,tensor,batch1,batch3,batch3text,batch-torch,batch-cuda",
        help="tensor and batch-torch rows need torch; batch-cuda a CUDA device",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--ways", default="tracked,live", help="besides bare: tracked, live (tracked alone: quicker at 10,000,000)"
    )
    parser.add_argument("--seed-max", type=int, default=SEED_MAX_N)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, n, shape = args.child
        print(json.dumps(child(variant, int(n), shape)))
        return

    print(f"\nmedians of {args.repeat} runs; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(f"import tracked: {import_ms():.1f} ms (median of 11 fresh interpreters)\n")
    print(
        "| items | N | way | overhead µs/example | total s | call → first example s | last example → return s "
        "| peak RSS MB | RSS growth MB | ClearML events |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="tracked-bench-") as cache:
        for shape in args.shapes.split(","):
            if shape in ("tensor", "batch-torch", "batch-cuda") and importlib.util.find_spec("torch") is None:
                print(f"  torch is not installed: no {shape} rows", file=sys.stderr)
                continue
            if shape == "batch-cuda" and not _cuda():
                print("  no CUDA device here: no batch-cuda rows", file=sys.stderr)
                continue
            for n in (int(s) for s in args.sizes.split(",")):
                if shape == "tensor" and n > TENSOR_MAX_N:
                    continue
                bare = measure("bare", n, shape, args.repeat, cache)
                seed = n <= args.seed_max and shape in ("float", "map3", "tensor")
                variants = args.ways.split(",") + (["seed"] if seed else [])
                for variant in ["bare", *variants]:
                    m = bare if variant == "bare" else measure(variant, n, shape, args.repeat, cache)
                    print_row(SHAPES[shape], n, variant, (m["loop"] - bare["loop"]) / n * 1e6, m, args.repeat)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def print_row(shape: str, n: int, variant: str, overhead: float, m: dict[str, float], repeat: int) -> None:
    ov = "—" if variant == "bare" or overhead != overhead else f"{overhead:.2f}"
    if m["hung"]:
        variant = f"{variant} ({int(m['hung'])} of {repeat} runs hung > {SEED_TIMEOUT_S} s at close)"
    print(
        f"| {shape} | {n:,} | {variant} | {ov} | {m['total']:.3f} | {m['first']:.3f} | {m['end']:.3f} | "
        f"{m['peak']:.0f} | {m['growth']:.1f} | {int(m['events']) if m['events'] == m['events'] else 0:,} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
