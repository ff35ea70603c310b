"""The two ends of a call and the command line, against their baselines in the same run.

    python benchmarks/calls.py                    # start, many small calls, tracking off
    python benchmarks/calls.py --cli 1000000      # also show / compare / --paired on sessions of this size

Rows (medians of --repeat fresh child processes):
- first call → body: in a fresh process (tracked imported, nothing else done), the time from calling a
  decorated evaluation to its first line, tracked and ``enabled=False``;
- small calls: a 10-example evaluation called 100 times in one process; tracked's own time per call
  (the decorated call minus the bare generator);
- tracking off: ``enabled=False``, µs per example over bare, for one float and for 2 floats + a text;
- command line (``--cli N``): wall time and peak RSS of ``tracked show``, ``compare`` and ``compare
  --paired`` on sessions of N examples with 3 random metrics and a 60-character text each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import text  # noqa: E402 - the same answers as bench.py's rows


def child(what: str, n: int) -> dict[str, float]:
    from tracked import tracked_eval

    marks: dict[str, float] = {}

    def evaluation(items: list[Any], texts: bool = False) -> Any:
        marks["first"] = time.perf_counter()
        for i, item in enumerate(items):
            yield {"a": item, "b": 1 - item, "prediction": text(i)} if texts else item
        marks["last"] = time.perf_counter()

    if what in ("first", "first-off"):
        call = tracked_eval(verbose=False, enabled=what == "first")(evaluation)
        start = time.perf_counter()
        call([0.5])
        return {"value": marks["first"] - start}
    if what in ("small", "small-bare"):
        call = tracked_eval(verbose=False)(evaluation) if what == "small" else lambda items: list(evaluation(items))
        call([0.5] * 10)  # the first call's one-off costs are the row above
        start = time.perf_counter()
        for _ in range(100):
            call([0.5] * 10)
        return {"value": (time.perf_counter() - start) / 100}
    texts = what.endswith("text")
    import random

    items = [random.random() for _ in range(n)]
    if what.startswith("off"):
        tracked_eval(verbose=False, enabled=False)(evaluation)(items, texts)
    else:
        for _ in evaluation(items, texts):
            pass
    return {"value": marks["last"] - marks["first"]}


def run(args: list[str], cache: str) -> dict[str, Any]:
    env = {**os.environ, "CLEARML_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    for key in ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_AUTH_TOKEN"):
        env.pop(key, None)
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}


def median_of(what: str, n: int, repeat: int, cache: str) -> float:
    values = []
    for _ in range(repeat):
        done = run([sys.executable, __file__, "--child", what, str(n)], cache)
        if done["rc"]:
            raise SystemExit(f"{what} failed:\n{done['err']}")
        values.append(json.loads(done["out"].strip().splitlines()[-1])["value"])
    return statistics.median(values)


def make_session(n: int, name: str, shift: float, cache: str) -> str:
    code = (
        "import random, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "from bench import text\nfrom tracked import tracked_eval\n"
        f"@tracked_eval(verbose=False, task_name={name!r})\n"
        "def evaluate(n):\n"
        "    rng = random.Random(1)\n"
        "    for i in range(n):\n"
        f"        yield {{'id': i, 'a': rng.random() + {shift}, 'b': rng.random(), 'c': rng.random(), "
        "'prediction': text(i)}\n"
        f"print(evaluate({n}).session_dir)\n"
    )
    done = run([sys.executable, "-c", code], cache)
    if done["rc"]:
        raise SystemExit(f"making a session failed:\n{done['err']}")
    return str(done["out"].strip().splitlines()[-1])


def timed_command(args: list[str], cache: str) -> tuple[float, float, int]:
    """Wall seconds, peak RSS MB of the command (its own process: a fresh wrapper per command), exit code."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, rc)\n"
    )
    done = run([sys.executable, "-c", wrapper, sys.executable, "-m", "tracked.cli", *args], cache)
    wall, rss, rc = done["out"].split()
    return float(wall), float(rss), int(rc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--off-n", type=int, default=1_000_000, help="examples for the tracking-off rows")
    parser.add_argument("--cli", type=int, default=0, help="session size for the command-line rows (0: none)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    assert resource  # the wrapper's module, imported here so a missing one fails before minutes of runs
    print(f"\nmedians of {args.repeat} runs; {os.cpu_count()} CPUs; python {sys.version.split()[0]}\n")
    print("| row | tracked | baseline | tracked's own |")
    print("|---|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="tracked-calls-") as cache:
        on, off = (median_of(w, 0, args.repeat, cache) for w in ("first", "first-off"))
        print(f"| first call → body, fresh process (s) | {on:.3f} | {off:.3f} (enabled=False) | {on - off:.3f} |")
        small, bare = (median_of(w, 0, args.repeat, cache) for w in ("small", "small-bare"))
        print(f"| a 10-example call, 100 in a process (ms per call) | {small * 1e3:.2f} | {bare * 1e3:.3f} (bare) "
              f"| {(small - bare) * 1e3:.2f} |", flush=True)  # fmt: skip
        for label, off_what, bare_what in (("one float", "off", "bare"), ("2 floats + a text", "offtext", "baretext")):
            tracked_off = median_of(off_what, args.off_n, args.repeat, cache)
            baseline = median_of(bare_what, args.off_n, args.repeat, cache)
            per = (tracked_off - baseline) / args.off_n * 1e6
            print(f"| enabled=False, {label}, N={args.off_n:,} (s) | {tracked_off:.3f} | {baseline:.3f} (bare) "
                  f"| {per:.2f} µs/example |", flush=True)  # fmt: skip
        if args.cli:
            a = make_session(args.cli, "A", 0.0, cache)
            b = make_session(args.cli, "B", 0.01, cache)
            print(f"\n| command, N={args.cli:,} with a text | wall s | peak RSS MB | exit |")
            print("|---|---:|---:|---:|")
            for label, command in (
                ("tracked show", ["show", a]),
                ("tracked compare", ["compare", a, b]),
                ("tracked compare --paired", ["compare", a, b, "--paired"]),
            ):
                wall, rss, rc = timed_command(command, cache)
                print(f"| {label} | {wall:.2f} | {rss:.0f} | {rc} |", flush=True)


if __name__ == "__main__":
    main()
