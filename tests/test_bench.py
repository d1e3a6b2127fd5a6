"""The speed benchmark runs end to end (polyak only; the peers are optional and reported as skipped)."""

import json

from polyak.bench import main


def test_bench_runs_polyak_and_reports_missing_peers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--libs", "polyak,sb3", "--algos", "sac", "--steps", "1100", "--no-flops", "--out", str(out)])
    data = json.loads(out.read_text())
    runs = [r for r in data["runs"] if r["lib"] == "polyak"]
    assert len(runs) == 1 and runs[0]["status"] == "ok" and runs[0]["steps"] == 1100
    assert runs[0]["steps_per_s"] > 0
    assert data["hyperparameters"]["batch_size"] == 256
    text = capsys.readouterr().out
    assert "polyak" in text and "steps/s" in text
