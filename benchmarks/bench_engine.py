"""Engine benchmark: circuitlab against `transformers` on the same GPT-2-small-shaped random weights.

Every figure is a median over repeated runs measured in this one process, and every claim is a ratio
against a baseline measured alongside it (timings drift 15-25% between processes on a shared CPU).

    .venv/bin/python benchmarks/bench_engine.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

import circuitlab


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Run each function once to warm up, then ``repeats`` rounds alternating between them."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)

    hf_model = GPT2LMHeadModel(GPT2Config()).eval()  # GPT-2 small shape: 12 layers, d_model 768, vocab 50257
    with tempfile.TemporaryDirectory() as folder:
        hf_model.save_pretrained(folder)  # safetensors
        load_times = interleaved_medians(
            {
                "transformers from_pretrained": lambda: GPT2LMHeadModel.from_pretrained(folder),
                "circuitlab from_pretrained (+ processing)": lambda: circuitlab.from_pretrained(folder),
                "circuitlab no processing": lambda: circuitlab.from_pretrained_no_processing(folder),
            },
            repeats=max(3, args.repeats // 2),
        )
        model = circuitlab.from_pretrained_no_processing(folder).eval()

    from circuitlab.model.memory import retain_freed_memory

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}, "
        f"freed memory retained for reuse: {retain_freed_memory()} (CIRCUITLAB_RETAIN_FREED_MEMORY)\n"
    )
    for batch, pos in ((8, 128), (1, 20)):
        tokens = torch.randint(0, 50257, (batch, pos), generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            torch.testing.assert_close(model(tokens), hf_model(tokens).logits, atol=1e-4, rtol=0)
            medians = interleaved_medians(
                {
                    "hf": lambda tokens=tokens: hf_model(tokens).logits,
                    "forward": lambda tokens=tokens: model(tokens),
                    "cache": lambda tokens=tokens: model.run_with_cache(tokens),
                },
                args.repeats,
            )
        print(f"batch {batch} x {pos} tokens")
        print(f"  transformers forward            {medians['hf'] * 1e3:9.1f} ms")
        print(f"  circuitlab forward              {medians['forward'] * 1e3:9.1f} ms   "
              f"{medians['forward'] / medians['hf']:.3f}x transformers (target <= 1.05)")  # fmt: skip
        print(f"  circuitlab run_with_cache (all) {medians['cache'] * 1e3:9.1f} ms   "
              f"{medians['cache'] / medians['forward']:.3f}x circuitlab forward (target <= 1.15)")  # fmt: skip
    print("\nload from a local safetensors folder")
    baseline = load_times["transformers from_pretrained"]
    for name, seconds in load_times.items():
        print(f"  {name:42s} {seconds:6.2f} s   {seconds / baseline:.2f}x transformers")


if __name__ == "__main__":
    main()
