"""benchmarks/representation.py: how its results file becomes the tables benchmarks/README.md
shows (the sweep itself takes hours on a CPU; its results are shipped in
mae_tutorial/results/representation.json)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import representation  # noqa: E402


def test_table_summarizes_every_part_over_the_seeds():
    runs = {}
    for seed, shift in ((0, 0.0), (1, 2.0)):
        for name in ("MAE", "MoCo v3"):
            base = 40.0 if name == "MAE" else 30.0
            runs[f"frozen/{name}/{seed}"] = {
                pool: {"knn": base + shift, "linear_probe": base + 10 + shift}
                for pool in ("cls", "mean")}
            runs[f"partial/{name}/{seed}"] = {
                k: {"accuracy": base + 20 + i + shift} for i, k in enumerate(("1", "2", "all"))}
            runs[f"attention/{name}/{seed}"] = {"distance": [[1.0, 3.0], [2.0, 2.0 + shift]]}
    text = representation.table({"runs": runs})
    assert "| MAE, mean | 41.0 (40.0-42.0) | 51.0 (50.0-52.0) |" in text
    # Fig. 9's 0 blocks is the better-pooled linear probe, then the tuned blocks
    assert "| MoCo v3 | 41.0 (40.0-42.0) | 51.0 (50.0-52.0) | 52.0 (51.0-53.0) | " \
           "53.0 (52.0-54.0) |" in text
    # attention: the mean over heads per block, then over seeds
    assert "| MAE | 2.0 | 2.5 (2.0-3.0) |" in text
    assert "linear probe, block" not in text  # a part not run yet is left out


def test_the_readme_shows_the_shipped_results():
    results = json.loads(representation.RESULTS.read_text())
    parts = {key.split("/")[0] for key in results["runs"]}
    assert parts == set(representation.PARTS), "the sweep is finished"
    assert representation.table(results) in (ROOT / "benchmarks" / "README.md").read_text()
