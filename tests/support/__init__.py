"""Helpers shared by the tests and the benchmarks (``scripts/bench/``): servers, workers, browsers, TikTok messages.

``ROOT`` is the repository's root, wherever a test file sits below ``tests/``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
