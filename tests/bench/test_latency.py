"""`ember bench latency` end to end on CPU with tiny sizes."""
import json
import re

import pytest

from ember.entrypoints.bench import cli


@pytest.mark.parametrize("backend", ["ember", "hf"])
def test_latency(backend, tiny_config_dir, capsys, tmp_path):
    out_json = tmp_path / "latency.json"
    cli.main(["latency", "--backend", backend, "--model", tiny_config_dir, "--random-weights",
              "--batch-size", "2", "--input-len", "8", "--output-len", "4", "--num-iters-warmup", "1",
              "--num-iters", "3", "--output-json", str(out_json)])
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert re.search(r"^Avg latency: \S+ seconds$", printed, re.M)
    for p in (10, 25, 50, 75, 90, 99):
        assert re.search(rf"^{p}% percentile latency: \S+ seconds$", printed, re.M)
    assert re.search(r"^Avg time per output token: \d+\.\d{2} ms$", printed, re.M)
    assert result["backend"] == backend and len(result["latencies"]) == 3
    assert result["avg_latency"] == pytest.approx(sum(result["latencies"]) / 3)
    assert list(result["percentiles"]) == ["10", "25", "50", "75", "90", "99"]
    assert result["time_per_output_token_ms"] == pytest.approx(result["avg_latency"] / 4 * 1000)
