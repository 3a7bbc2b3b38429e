"""The rule graph of docs/architecture.md, drawn from ``snakemake --rulegraph`` of the default config.

The graph sits in a ``dot`` block between the markers below, one line per rule with the rules that read its
outputs, in the order data flows. ``make rulegraph-doc`` rewrites it; tests/test_docs.py checks it::

    .venv/bin/python docs/rulegraph.py           # rewrite the block in docs/architecture.md
    .venv/bin/python docs/rulegraph.py --check   # say what differs, exit 1 if anything does
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
CONFIG = REPO / "config" / "config.yaml"
BEGIN = "<!-- rulegraph:begin -->"
END = "<!-- rulegraph:end -->"
WIDTH = 116
"""The longest line of the dot block; a rule's downstream rules wrap beneath each other."""
REGENERATE = "make rulegraph-doc (or .venv/bin/python docs/rulegraph.py)"

Graph = tuple[set[str], set[tuple[str, str]]]
"""(rule names, (upstream rule, downstream rule) edges)."""


def snakemake_rulegraph(config: Path = CONFIG) -> str:
    """The dot text of ``snakemake --rulegraph`` for ``config``, planned in an empty folder."""
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
        command += ["--directory", workdir, "--configfile", str(config), "--rulegraph"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake --rulegraph failed:\n{result.stderr[-3000:]}")
    return result.stdout


def parse_rulegraph(dot: str) -> Graph:
    """Rules and edges of Snakemake's dot output, whose nodes are numbers labelled with rule names."""
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)\s*$", dot, re.M)}
    return set(names.values()), edges


def data_flow_order(rules: set[str], edges: set[tuple[str, str]]) -> list[str]:
    """The rules in topological order, ties by name, so that a rule comes after every rule it reads from."""
    waiting = {rule: {a for a, b in edges if b == rule} for rule in rules}
    order = []
    while waiting:
        ready = sorted(rule for rule, upstream in waiting.items() if not upstream)
        if not ready:
            raise ValueError(f"the graph has a cycle among {sorted(waiting)}")
        for rule in ready:
            order.append(rule)
            del waiting[rule]
        for upstream in waiting.values():
            upstream.difference_update(ready)
    return order


def format_graph(graph: Graph) -> str:
    """The dot block of the doc: one line per rule in data-flow order, ``rule -> {downstream ...}`` by name."""
    rules, edges = graph
    lines = ["digraph rules {"]
    for rule in data_flow_order(rules, edges):
        downstream = sorted(b for a, b in edges if a == rule)
        if not downstream:
            lines.append(f"    {rule}")
            continue
        start = f"    {rule} -> {{"
        wrapped = textwrap.wrap(" ".join(downstream), WIDTH - len(start) - 1, break_on_hyphens=False)
        lines += [f"{start if i == 0 else ' ' * len(start)}{part}" for i, part in enumerate(wrapped)]
        lines[-1] += "}"
    return "\n".join([*lines, "}"])


def block(document: str) -> str:
    """The text between the markers of ``document``."""
    if document.count(BEGIN) != 1 or document.count(END) != 1:
        raise ValueError(f"expected one {BEGIN} and one {END} in the document")
    return document.split(BEGIN)[1].split(END)[0]


def parse_doc_graph(document: str) -> Graph:
    """Rules and edges of the doc's block as :func:`format_graph` writes it (a rule alone, ``a -> b`` or
    ``a -> {b c}``)."""
    text = "\n".join(line for line in block(document).splitlines() if not line.lstrip().startswith(("```", "//")))
    body = text[text.index("{", text.index("digraph")) + 1 : text.rindex("}")]
    rules, edges = set(), set()
    for source, group, single in re.findall(r"(\w+)(?:\s*->\s*(?:\{([^}]*)\}|(\w+)))?", body):
        rules.add(source)
        for target in (group or single).split():
            rules.add(target)
            edges.add((source, target))
    return rules, edges


def with_graph(document: str, graph: Graph) -> str:
    """``document`` with its block replaced by ``graph`` in a dot fence."""
    head, rest = document.split(BEGIN)
    tail = rest.split(END)[1]
    return f"{head}{BEGIN}\n```dot\n{format_graph(graph)}\n```\n{END}{tail}"


def differences(documented: Graph, drawn: Graph) -> list[str]:
    """What differs between the doc's graph and Snakemake's, in words; empty when they agree."""
    found = []
    for what, mine, theirs in (("rules", documented[0], drawn[0]), ("edges", documented[1], drawn[1])):
        for label, items in (("only in the doc", mine - theirs), ("only in snakemake --rulegraph", theirs - mine)):
            if items:
                shown = sorted(" -> ".join(item) if isinstance(item, tuple) else item for item in items)
                found.append(f"{what} {label}: {', '.join(shown)}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the doc differs")
    args = parser.parse_args(argv)
    drawn = parse_rulegraph(snakemake_rulegraph())
    document = DOC.read_text()
    if args.check:
        found = differences(parse_doc_graph(document), drawn)
        print("\n".join(found) or "docs/architecture.md's rule graph matches snakemake --rulegraph")
        return 1 if found else 0
    DOC.write_text(with_graph(document, drawn))
    print(f"wrote the rule graph of {CONFIG.relative_to(REPO)} ({len(drawn[0])} rules) into {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
