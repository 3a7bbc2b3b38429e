"""The docs stay true: the rule graph of docs/architecture.md is Snakemake's, the README stays short, and every
relative link of the Markdown docs leads to a file."""

from __future__ import annotations

import importlib.util
import re

import pytest
from conftest import REPO

README_MAX_LINES = 150
LINKED_DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "bench" / "results" / "measurements.md"]
)


def load_rulegraph():
    """docs/rulegraph.py, the script behind `make rulegraph-doc`, as a module."""
    spec = importlib.util.spec_from_file_location("rulegraph", REPO / "docs" / "rulegraph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rulegraph = load_rulegraph()


def test_the_rule_graph_of_architecture_md_is_snakemakes_for_the_default_config():
    drawn = rulegraph.parse_rulegraph(rulegraph.snakemake_rulegraph())
    documented = rulegraph.parse_doc_graph(rulegraph.DOC.read_text())
    found = rulegraph.differences(documented, drawn)
    assert not found, (
        "docs/architecture.md's rule graph differs:\n"
        + "\n".join(found)
        + (f"\nregenerate it with {rulegraph.REGENERATE}")
    )


def test_the_doc_graph_reads_back_what_was_written():
    graph = ({"world", "manifest", "splits", "all"}, {("world", "manifest"), ("manifest", "splits"), ("splits", "all")})
    document = f"before\n{rulegraph.BEGIN}\nold\n{rulegraph.END}\nafter\n"
    written = rulegraph.with_graph(document, graph)
    assert written.startswith("before\n") and written.endswith("after\n")
    assert rulegraph.parse_doc_graph(written) == graph


def test_snakemakes_dot_is_read_by_label():
    dot = '\t0[label = "all", color = "0.0"];\n\t1[label = "manifest", color = "0.2"];\n\t1 -> 0\n'
    assert rulegraph.parse_rulegraph(dot) == ({"all", "manifest"}, {("manifest", "all")})


def test_a_difference_names_the_rules_and_edges_on_each_side():
    documented = ({"a", "b", "c"}, {("a", "b"), ("b", "c")})
    drawn = ({"a", "b"}, {("a", "b"), ("a", "c")})
    assert rulegraph.differences(documented, drawn) == [
        "rules only in the doc: c",
        "edges only in the doc: b -> c",
        "edges only in snakemake --rulegraph: a -> c",
    ]


def test_the_readme_is_read_in_five_minutes():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES}: move detail to docs/"


def relative_links(markdown: str) -> list[str]:
    """The targets of the Markdown links and images of a text outside code, without anchors or web addresses."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)
    return [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:|#", target)]


def test_links_are_found_outside_code_and_without_anchors():
    text = "[a](docs/a.md#part) [web](https://x.org) [here](#top) `[no](code.md)`\n```\n[no](fence.md)\n```\n"
    assert relative_links(text) == ["docs/a.md"]


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file(doc):
    broken = [target for target in relative_links(doc.read_text()) if not (doc.parent / target).exists()]
    assert not broken, f"{doc.relative_to(REPO)} links to missing files: {broken}"
