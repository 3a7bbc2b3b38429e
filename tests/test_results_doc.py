"""docs/results.md's generated part: one section per results folder between two markers, the rest kept."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from geocontrast.report.results_doc import (
    BEGIN,
    END,
    cpu_model,
    describe_machine,
    main,
    pretraining_recipe,
    replace_generated,
    results_section,
)

SUMMARY = (
    "strategy          protocol      labels  seeds\naugmented         linear          10%  n=3  top1  40.1 ± 2.0\n"
)
COMPARISONS = "context_pos_neg - augmented, linear, 10% labels: -3.1 [-6.0, -0.2] resolved\n"
DOCUMENT = f"# Results\n\nHand-written table.\n\n{BEGIN}\nfilled by `make results-doc`\n{END}\n\nA closing note.\n"


def results_folder(root: Path, name: str = "synthetic_flora", *, comparisons: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "results_summary.txt").write_text(SUMMARY)
    if comparisons:
        (folder / "comparisons.txt").write_text(COMPARISONS)
    return folder


def test_the_cpu_model_is_the_first_model_name_of_cpuinfo():
    cpuinfo = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\nprocessor\t: 1\nmodel name\t: other\n"
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Platinum 8488C"
    assert cpu_model("processor\t: 0\n") is None


def test_the_machine_names_cpu_cores_and_the_gpu_given(tmp_path):
    (tmp_path / "cpuinfo").write_text("model name\t: AMD EPYC 7R13\n")
    machine = describe_machine(tmp_path / "cpuinfo", gpu="no GPU seen by torch")
    assert machine == f"AMD EPYC 7R13, {os.cpu_count()} logical cores, no GPU seen by torch"


def test_a_section_holds_dataset_date_machine_config_and_both_texts_fenced(tmp_path):
    folder = results_folder(tmp_path)
    stamp = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    os.utime(folder / "results_summary.txt", (stamp, stamp))
    section = results_section(folder, "a test machine", Path("config/config.yaml"))
    assert section.startswith("### synthetic_flora\n")
    assert "- date: 2026-12-02" in section
    assert "- machine: a test machine" in section
    assert "- config: `config/config.yaml`" in section
    assert f"```text\n{SUMMARY}```" in section
    assert f"```text\n{COMPARISONS}```" in section
    assert section.index(SUMMARY) < section.index(COMPARISONS)


def test_a_section_names_the_encoder_resolution_and_epochs_its_pretrained_runs_used(tmp_path):
    folder = results_folder(tmp_path)
    runs = pd.DataFrame(
        {
            "strategy": ["augmented", "augmented", "most_common", "random_init", "resnet_run"],
            "encoder": ["cnn5_half", "cnn5_half", None, "cnn5_half", "resnet18"],
            "resolution": [32, 32, 32, 32, 64],
            "epochs": [5, 5, 0, 0, 20],
        }
    )
    runs.to_csv(folder / "results.csv", index=False)
    section = results_section(folder, "m")
    assert "- pretraining: cnn5_half at 32 px, 5 epochs; resnet18 at 64 px, 20 epochs\n" in section
    assert pretraining_recipe(runs[runs["epochs"] == 0]) == "none"


def test_a_section_without_a_config_says_it_was_not_recorded(tmp_path):
    assert "- config: not recorded" in results_section(results_folder(tmp_path), "m")


def test_a_missing_text_is_named_in_the_error(tmp_path):
    folder = results_folder(tmp_path, comparisons=False)
    with pytest.raises(FileNotFoundError, match=r"synthetic_flora/comparisons\.txt: not found"):
        results_section(folder, "m")


def test_only_the_text_between_the_markers_is_replaced():
    replaced = replace_generated(DOCUMENT, "### new section\n")
    assert replaced == f"# Results\n\nHand-written table.\n\n{BEGIN}\n### new section\n{END}\n\nA closing note.\n"


def test_replacing_twice_gives_the_same_document():
    once = replace_generated(DOCUMENT, "generated")
    assert replace_generated(once, "generated") == once


@pytest.mark.parametrize(
    "document",
    ["no markers at all\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"],
    ids=["missing", "out of order", "repeated"],
)
def test_a_document_without_one_pair_of_markers_is_refused(document):
    with pytest.raises(ValueError, match="generated:begin"):
        replace_generated(document, "generated")


def test_the_command_fills_the_markers_of_the_file_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr("geocontrast.report.results_doc.gpu_seen", lambda: "no GPU seen by torch")
    first, second = results_folder(tmp_path, "synthetic_flora"), results_folder(tmp_path, "synthetic_ablation")
    out = tmp_path / "results.md"
    out.write_text(DOCUMENT)
    assert (
        main([str(first), str(second), "--config", "config/config.yaml", "config/ablation.yaml", "--out", str(out)])
        == 0
    )
    written = out.read_text()
    assert written.startswith("# Results\n\nHand-written table.\n\n")
    assert written.endswith(f"{END}\n\nA closing note.\n")
    assert "filled by `make results-doc`" not in written
    assert written.index("### synthetic_flora") < written.index("### synthetic_ablation")
    assert "- config: `config/ablation.yaml`" in written


def test_the_command_names_the_missing_file_and_leaves_the_document_alone(tmp_path, capsys):
    folder = results_folder(tmp_path, comparisons=False)
    out = tmp_path / "results.md"
    out.write_text(DOCUMENT)
    with pytest.raises(SystemExit) as exit:
        main([str(folder), "--out", str(out)])
    assert exit.value.code == 2
    assert f"{folder / 'comparisons.txt'}: not found" in capsys.readouterr().err
    assert out.read_text() == DOCUMENT


def test_the_command_refuses_a_config_count_that_does_not_match(tmp_path, capsys):
    out = tmp_path / "results.md"
    out.write_text(DOCUMENT)
    with pytest.raises(SystemExit):
        main([str(results_folder(tmp_path)), "--config", "a.yaml", "b.yaml", "--out", str(out)])
    assert "2 --config files for 1 results folders" in capsys.readouterr().err
