"""References in code, notebooks and README resolve inside the repository: every "§N" and flaw id cited is defined in
docs/upstream.md, nothing points at files outside the repository, and experiment descriptions cite no tracker."""
from __future__ import annotations

import re
from pathlib import Path

from data_utils.identity import SYNTHETIC_WARNING

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


# ------------------------------------------------------------------------------ the generated results page

def _reports(tmp_path: Path) -> Path:
    """A small reports folder as `mser reproduce` leaves it: two notebook tables and the results.md made of them."""
    from mser.reproduce import collect_results

    reports = tmp_path / "reports"
    (reports / "tables").mkdir(parents=True)
    (reports / "tables" / "10_timnet.md").write_text(
        "### NB1 · TIM-Net\n\n| Experiment | Seeds | Macro-F1 |\n|---|---|---|\n| timnet-text | 2 | 0.5181 ± 0.0074 |\n")
    (reports / "tables" / "30_final.md").write_text(
        "### NB3 · final models\n\n| Experiment | Seeds | Macro-F1 |\n|---|---|---|\n| multimodal | 2 | 0.5085 ± 0.0100 |\n")
    data = {"name": "SYNTHETIC data (not IEMOCAP)", "file": "built-in synthetic", "sha256": "ab" * 32, "dialogues": 151}
    collect_results(reports, data=data, quick=True, seconds=150.0)
    return reports


def _docs_results(*argv: str) -> int:
    from mser.cli import main

    return main(["docs", "results", *argv])


def test_docs_results_writes_the_page_from_a_reports_folder(tmp_path, capsys):
    from mser.commands.docs import MARKER

    reports, out = _reports(tmp_path), tmp_path / "docs" / "results.md"
    out.parent.mkdir()
    assert _docs_results("--reports", str(reports), "--out", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    lines = page.splitlines()
    assert lines[0] == "# Results" and MARKER in lines
    assert "> **QUICK smoke run**" in page and f"> **{SYNTHETIC_WARNING}.**" in page
    assert f"`{reports}/results.md`" in page or "`reports/results.md`" in page
    assert any(line.startswith("Data: **SYNTHETIC data (not IEMOCAP)**") and "151 dialogues" in line for line in lines)
    assert any(line.startswith("Settings: QUICK") for line in lines)
    # every table, in the notebooks' order, as written; the figures line (paths inside reports/) is left out
    assert page.index("### NB1 · TIM-Net") < page.index("### NB3 · final models")
    assert "| timnet-text | 2 | 0.5181 ± 0.0074 |" in lines and "| multimodal | 2 | 0.5085 ± 0.0100 |" in lines
    assert "Figures: `reports/figures/`" not in page
    # a generated page is replaced by the next run without --force
    (reports / "tables" / "30_final.md").write_text("### NB3 · final models\n\n| a |\n|---|\n| 1 |\n")
    from mser.reproduce import collect_results
    collect_results(reports, data={"name": "x", "file": "f.pkl", "sha256": "0" * 64, "dialogues": 3}, quick=False,
                    seconds=60.0)
    assert _docs_results("--reports", str(reports), "--out", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    assert "QUICK smoke run" not in page and "Data: **x** (file f.pkl" in page and "| 1 |" in page.splitlines()


def test_docs_results_refuses_a_hand_edited_page_without_force(tmp_path, capsys):
    from mser.commands.docs import MARKER

    reports, out = _reports(tmp_path), tmp_path / "results.md"
    assert _docs_results("--reports", str(reports), "--out", str(out)) == 0
    edited = out.read_text(encoding="utf-8").replace(MARKER + "\n", "") + "\nMy own notes.\n"
    out.write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert _docs_results("--reports", str(reports), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "edited by hand" in err and "--force" in err
    assert out.read_text(encoding="utf-8") == edited
    assert _docs_results("--reports", str(reports), "--out", str(out), "--force") == 0
    assert MARKER in out.read_text(encoding="utf-8").splitlines()


def test_docs_results_refuses_a_folder_without_results(tmp_path, capsys):
    assert _docs_results("--reports", str(tmp_path), "--out", str(tmp_path / "results.md")) == 1
    assert "run `make reproduce`" in capsys.readouterr().err and not (tmp_path / "results.md").exists()
    (tmp_path / "results.md").write_text("# Something else\n")
    assert _docs_results("--reports", str(tmp_path), "--out", str(tmp_path / "page.md")) == 1
    assert "not a results page of mser reproduce" in capsys.readouterr().err


# ------------------------------------------------------------------------------ links and commands in the docs

PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _headings(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings (lower case, punctuation dropped, spaces as hyphens)."""
    anchors, seen = set(), {}
    for title in re.findall(r"^#{1,6} +(.+?) *#*$", _FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_every_relative_link_in_readme_changelog_and_docs_resolves():
    problems = []
    for page in PAGES:
        for target in _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            path = (page.parent / name).resolve() if name else page
            if not path.exists():
                problems.append(f"{page.name}: {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _headings(path):
                problems.append(f"{page.name}: {target}: no heading with anchor #{anchor} in {path.name}")
            elif REPO not in path.parents and path != REPO:
                problems.append(f"{page.name}: {target}: outside the repository")
    assert not problems, "\n".join(problems)


def _named_commands(text: str) -> list[tuple[list[str], bool]]:
    """Every `mser …` command of a page: (its words after `mser`, whether it is a whole command line from a code
    block). A command line ends at a comment, a pipe or `&&`; an ellipsis ends what can be checked."""
    import shlex

    found = []
    blocks = [b for b in _FENCE.findall(text) if re.match(r"```(bash|sh|shell|console)?\n", b)]
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines()[1:-1]:
            found.append((line, True))
    found += [(span, False) for span in re.findall(r"`([^`]*\bmser [^`]*)`", _FENCE.sub("", text))]
    commands = []
    for line, whole in found:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        at = next((i for i, w in enumerate(words) if w == "mser" or w.endswith("/mser")), None)
        if at is None:
            continue
        words = words[at + 1:]
        for stop in ("|", "&&", ";", ">", "2>"):
            if stop in words:
                words = words[:words.index(stop)]
        cut = next((i for i, w in enumerate(words) if "…" in w or w == "..."), None)
        commands.append((words if cut is None else words[:cut], whole and cut is None))
    return commands


def test_every_mser_command_named_in_readme_changelog_and_docs_parses(capsys):
    import argparse

    from mser.cli import build_parser

    parser = build_parser()

    def subcommands(p):
        return next((a.choices for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)

    problems, checked = [], 0
    for page in PAGES:
        for words, whole in _named_commands(page.read_text(encoding="utf-8")):
            shown = f"{page.name}: mser {' '.join(words)}"
            p, rest = parser, list(words)
            while rest and subcommands(p) is not None and rest[0] in subcommands(p):
                p = subcommands(p)[rest.pop(0)]
            if p is parser and words and not words[0].startswith("-"):
                problems.append(f"{shown}: {words[0]!r} is no mser command")
                continue
            unknown = [w for w in rest if w.startswith("--") and w.split("=")[0] not in p._option_string_actions]
            if unknown:
                problems.append(f"{shown}: {', '.join(unknown)} is no option of `{p.prog}`")
            elif whole and not {"-h", "--help"} & set(words):
                try:
                    parser.parse_args(words)
                except SystemExit:
                    problems.append(f"{shown}: does not parse ({' '.join(capsys.readouterr().err.split())})")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 30


def test_the_readme_stays_a_users_manual():
    """Results, measurements and history live in docs/ and CHANGELOG.md; the README stays short enough to read."""
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
