"""Runnable experiments: each a function returning a result object (reports come with the viz layer)."""

from circuitlab.experiments.two_back_demo import TwoBackDemoResult, run_two_back_demo

__all__ = ["TwoBackDemoResult", "run_two_back_demo"]
