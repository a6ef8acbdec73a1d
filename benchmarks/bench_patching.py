"""Patching benchmark: the batched sweeps against one forward per patch, in one process.

GPT-2-small-shaped random weights, one prompt of 20 tokens, 2 threads. Each sweep is timed a few
times (medians), and the batched result is checked against the loop's before any figure is printed.

    .venv/bin/python benchmarks/bench_patching.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from circuitlab.analysis import activation_patching, activation_patching_loop
from circuitlab.loading.gpt2 import convert_config, convert_state_dict
from circuitlab.model import HookedTransformer


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config())
    cfg = convert_config(hf.config.to_dict())
    model = HookedTransformer(cfg, init_weights=False)
    model.load_state_dict(convert_state_dict(hf.state_dict(), cfg))
    model.eval()
    generator = torch.Generator().manual_seed(1)
    clean = torch.randint(0, cfg.d_vocab, (1, 20), generator=generator)
    corrupted = clean.clone()
    corrupted[0, 5:9] = torch.randint(0, cfg.d_vocab, (4,), generator=generator)
    answer, wrong = 1000, 2000

    def logit_difference(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, answer] - logits[:, -1, wrong]

    print(f"GPT-2-small shape, 1 x 20 tokens, {args.threads} threads, medians of {args.repeats}\n")
    print(f"{'sweep':34s} {'patches':>8s} {'loop':>9s} {'batched':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    for target, per_position in (("resid_pre", True), ("z", False), ("attn_out", True)):
        options = dict(target=target, per_position=per_position)
        loop_seconds, looped = median_seconds(
            lambda o=options: activation_patching_loop(model, clean, corrupted, logit_difference, **o), 1
        )
        batched_seconds, batched = median_seconds(
            lambda o=options: activation_patching(model, clean, corrupted, logit_difference, **o), args.repeats
        )
        difference = float((batched.raw - looped.raw).abs().max())
        assert difference <= 1e-4, f"batched and looped {target} sweeps differ by {difference}"
        name = f"{target} {'by layer x position' if per_position else 'by layer x head'}"
        print(
            f"{name:34s} {batched.raw.numel():8d} {loop_seconds:8.2f}s {batched_seconds:8.2f}s "
            f"{loop_seconds / batched_seconds:8.1f}x {difference:11.1e}"
        )


if __name__ == "__main__":
    main()
