"""The in-process benchmark (bench/inprocess.py, the first part of `make bench`) on the tiny model."""

from __future__ import annotations

import pytest


def test_it_times_both_batch_sizes_through_the_workers_model_cache(tiny_model_root):
    from bench.inprocess import measure

    result = measure(tiny_model_root / "tiny-v1", "keras", threads=0, seconds_per_size=0.2, predict_reference=True)

    for key in ("batch_1", "batch_32", "model_predict_batch_1_for_reference"):
        timing = result[key]
        assert 0 < timing["ms_per_call_p50"] <= timing["ms_per_call_p95"], key
        assert timing["calls"] >= 10
    assert result["batch_32"]["ms_per_image"] == pytest.approx(result["batch_32"]["ms_per_call_p50"] / 32, abs=1e-3)
    assert result["tensorflow_imported"] is True and result["rss_mb_after_load_and_batches"] > 0
