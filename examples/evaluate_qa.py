"""The seed scenario: token recall over a small QA dataset, tracked in ClearML.

Run it with ``python examples/evaluate_qa.py`` (``--model good|weak``, ``--name``,
``--repeat N``), or on several ranks with ``torchrun --nproc_per_node=2 examples/evaluate_qa.py``
(one run all the same). With no ClearML server configured, the run is written as an offline session; the summary printed
at the end says where, and how to upload it later.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracked import tracked_eval

DATA = Path(__file__).with_name("data") / "qa_eval.jsonl"


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_recall(prediction: str, reference: str) -> float:
    """Share of the reference's tokens that appear in the prediction."""
    wanted = tokens(reference)
    found = set(tokens(prediction))
    return sum(token in found for token in wanted) / len(wanted) if wanted else 0.0


def load(path: Path = DATA) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def weak(prediction: str) -> str:
    """A worse "model" over the same questions: every other word of the good prediction is lost."""
    return " ".join(prediction.split()[::2])


MODELS = {"good": lambda prediction: prediction, "weak": weak}


def evaluate(dataset: list[dict[str, Any]], model: str = "good") -> Iterator[dict[str, Any]]:
    """Score every example; tracked turns the yields into the progress chart and final metrics."""
    answer = MODELS[model]
    for example in dataset:
        prediction = answer(example["prediction"])
        yield {
            "token_recall": token_recall(prediction, example["reference"]),
            "id": example["id"],
            "prediction": prediction,
            "reference": example["reference"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(MODELS), default="good", help="which answers to score")
    parser.add_argument("--name", help="the run's name (ClearML task name; default: qa token recall (MODEL))")
    parser.add_argument("--repeat", type=int, default=1, help="evaluate the dataset this many times over")
    args = parser.parse_args()
    name = args.name or f"qa token recall ({args.model})"
    tracked = tracked_eval(project="tracked-examples", task_name=name)(evaluate)
    dataset = load() * args.repeat
    if "WORLD_SIZE" in os.environ:  # under torchrun: each rank scores every WORLD_SIZE-th question
        import torch.distributed as dist

        dist.init_process_group("gloo")
        dataset = dataset[dist.get_rank() :: dist.get_world_size()]
    result = tracked(dataset, model=args.model)
    print(f"token_recall = {result['token_recall']:.4f} over {result['num_examples']} examples")


if __name__ == "__main__":
    main()
