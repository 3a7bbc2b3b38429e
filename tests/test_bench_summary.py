"""bench/run_all.py's summary: every figure of the committed results against its reference and target."""

from __future__ import annotations

import importlib.util
import json

from conftest import REPO


def run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_script_is_discovered_except_the_runner():
    assert run_all().benchmarks() == [
        "data_throughput",
        "knn_blocks",
        "neighbours",
        "scale",
        "train_throughput",
        "workflow_time",
    ]


def test_train_throughput_figures_carry_ratio_target_and_verdict_of_the_result_file():
    results = json.loads((REPO / "bench" / "results" / "train_throughput.json").read_text())
    rows = run_all().train_throughput_figures(results)
    strategies = sum(len(encoder["strategies"]) for encoder in results["encoders"].values())
    assert len(rows) == strategies + len(results["encoders"])  # plus one lightly comparison per encoder
    lightly = results["encoders"]["cnn5"]["lightly"]
    row = next(row for row in rows if row["reference"].startswith("lightly") and row["figure"].startswith("cnn5"))
    assert (row["ratio"], row["target"], row["pass"]) == (lightly["augmented_over_lightly"], 2.0, lightly["pass"])


def test_markdown_marks_failures_and_benchmarks_without_results():
    module = run_all()
    summary = {
        "written_at": "now",
        "benchmarks": {
            "train_throughput": {
                "results": "r.json",
                "status": "ran now",
                "machine": "m",
                "figures": [module.figure("cnn5 augmented", 281.0, "lightly", 255.0, 1.1, 2.0, False, unit="images/s")],
            },
            "neighbours": {"results": "n.json", "status": "no results yet: run it", "figures": []},
        },
    }
    text = module.markdown(summary)
    assert (
        "| train_throughput | cnn5 augmented | 281 images/s | lightly (255 images/s) | 1.10 | ≥ 2 | **FAIL** |" in text
    )
    assert "| neighbours | `n.json` | – | no results yet: run it |" in text
