"""References in code, notebooks and README resolve inside the repository: every "§N" and flaw id cited is defined in
docs/upstream.md, nothing points at files outside the repository, and experiment descriptions cite no tracker."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = REPO / "docs" / "upstream.md"
CITING = [REPO / "README.md", *sorted((REPO / "notebooks").glob("*.ipynb")), *sorted((REPO / "archive").iterdir()),
          *(p for d in ("model_utils", "data_utils", "mser", "tests") for p in sorted((REPO / d).rglob("*.py")))]


def _defined() -> tuple[set[str], set[str]]:
    text = UPSTREAM.read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+)\.", text, re.M)) | set(re.findall(r"^- \*\*(\d+\.\d+) ", text, re.M))
    flaws = set(re.findall(r"^\| (B\d+) \|", text, re.M))
    return sections, flaws


def test_the_upstream_page_defines_its_sections_and_every_flaw():
    sections, flaws = _defined()
    assert {"1", "2", "3", "4", "5", "1.7", "2.3", "4.3"} <= sections
    assert flaws == {f"B{i}" for i in range(1, 24)}


def test_every_section_and_flaw_cited_is_defined_and_nothing_points_outside_the_repository():
    sections, flaws = _defined()
    problems = []
    for path in CITING:
        if not path.is_file() or path.suffix not in (".py", ".ipynb", ".md") or path.name == Path(__file__).name:
            continue
        text = path.read_text(encoding="utf-8")
        for bad in ("protocol.md", "shared/seed"):
            if bad in text:
                problems.append(f"{path.name}: cites {bad}, which is not in the repository")
        cited = set(re.findall(r"§(\d+(?:\.\d+)?)", text))
        if cited and "docs/upstream.md" not in text:
            problems.append(f"{path.name}: cites § sections without naming docs/upstream.md")
        problems += [f"{path.name}: §{s} is not a section of docs/upstream.md" for s in sorted(cited - sections)]
        ids = set(re.findall(r"(?:flaw |\*\*|, |\()(B\d{1,2})\b", text))
        problems += [f"{path.name}: flaw {b} is not in docs/upstream.md" for b in sorted(ids - flaws)]
    assert not problems, "\n".join(problems)


def test_experiment_descriptions_cite_no_issue_numbers():
    from model_utils.experiments import EXPERIMENTS

    cited = {e.name: e.description for e in EXPERIMENTS.values() if re.search(r"\bissues? #?\d", e.description, re.I)}
    assert not cited
