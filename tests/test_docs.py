"""The README is the front door, docs/ the manual: its option tables are the code's, its links
lead somewhere, and the README's commands are the ones CI runs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from eventisc.config import option_tables, options_markdown

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]

#: The README's install and test commands, which .ci/run runs as they are written.
INSTALL = "pip install -e '.[all,test]'"
TEST = "scripts/check"


def _docs_script() -> ModuleType:
    """scripts/docs, imported (it has no .py suffix)."""
    path = ROOT / "scripts" / "docs"
    loader = importlib.machinery.SourceFileLoader("eventisc_scripts_docs", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# -- generated option tables -------------------------------------------------------------------


def test_the_option_tables_in_docs_are_the_ones_the_code_generates():
    stale = _docs_script().stale()
    names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
    assert not stale, (
        f"the option tables in {names} differ from the JSON Schemas in the code: run "
        "scripts/docs (and commit the result)"
    )


def test_every_option_table_appears_in_the_manual():
    script = _docs_script()
    used = [name for page in DOCS.glob("*.md") for name in script.names_used(page.read_text())]
    assert sorted(used) == sorted(option_tables()), (
        "each option table must appear once in docs/, between "
        "<!-- generated: options NAME --> and <!-- end generated -->; then run scripts/docs"
    )


def test_a_marker_naming_an_unknown_table_is_an_error():
    script = _docs_script()
    text = "<!-- generated: options nope -->\n<!-- end generated -->\n"
    with pytest.raises(ValueError, match="nope.*no such table"):
        script.regenerate(text, {"http": "| table |\n"})


def test_regenerating_replaces_only_what_is_between_the_markers():
    script = _docs_script()
    text = "before\n<!-- generated: options http -->\nold\n<!-- end generated -->\nafter\n"
    new = script.regenerate(text, {"http": "| new |\n"})
    expected = "<!-- generated: options http -->\n\n| new |\n\n<!-- end generated -->"
    assert new == f"before\n{expected}\nafter\n"
    assert script.regenerate(new, {"http": "| new |\n"}) == new


_ROW = re.compile(r"^\| `(?P<option>[^`]+)` \| (?P<default>.*?) \| (?P<meaning>.*) \|$")


@pytest.mark.parametrize(
    "name", ["config", "listener", "retry", "dispatcher", "http", "celery", "rabbit"]
)
def test_every_option_is_described_with_its_default_in_the_default_column(name):
    _title, table = option_tables()[name]
    rows = [_ROW.match(line) for line in table.splitlines()[2:]]
    assert rows and all(rows), table
    for row in rows:
        assert row is not None
        option, default, meaning = row["option"], row["default"], row["meaning"]
        assert meaning.strip(), f"{name}: `{option}` has no description in its JSON Schema"
        assert default.strip(), f"{name}: `{option}` has an empty default cell"
        # A default goes in the `default` keyword, or in a last sentence "Default: ...".
        assert "Default:" not in meaning and "(default" not in meaning.lower(), (
            f"{name}: `{option}`: state its default with the `default` keyword, or as the "
            f"description's last sentence starting with 'Default: ' ({meaning!r})"
        )


def test_eventisc_schema_markdown_prints_every_table():
    result = subprocess.run(
        [sys.executable, "-m", "eventisc", "schema", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == options_markdown()
    for title, table in option_tables().values():
        assert f"## {title}\n\n{table}" in result.stdout


# -- the README, the front door ----------------------------------------------------------------


def test_the_readme_stays_short():
    lines = README.read_text().count("\n")
    assert lines <= 220, (
        f"README.md has {lines} lines: it is the front door (what, install, the two commands, "
        "one example, links); move the rest to docs/"
    )


def _code_lines(text: str) -> set[str]:
    """The lines inside fenced code blocks, stripped."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return {line.strip() for block in blocks for line in block.splitlines()}


@pytest.mark.parametrize("command", [INSTALL, TEST])
def test_the_readme_commands_are_the_ones_ci_runs(command):
    assert any(
        line == command or line.startswith(command + " ")
        for line in _code_lines(README.read_text())
    ), f"README.md no longer shows `{command}`; .ci/run runs it: keep them in step"
    ci = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}
    assert command in ci, f".ci/run no longer runs `{command}`, the README's command"


# -- links ---------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks."""
    return _FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in _HEADING.finditer(_prose(path.read_text())):
        slug = github_anchor(match[2])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_github_anchors():
    assert github_anchor("Outcomes: `dispatch`") == "outcomes-dispatch"
    assert github_anchor("`kind: http`") == "kind-http"
    assert github_anchor("The unquoted `{event_name}` in YAML") == "the-unquoted-event_name-in-yaml"
    assert github_anchor("Listener keys (every kind)") == "listener-keys-every-kind"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_and_headings_that_exist(page):
    text = _CODE_SPAN.sub("", _prose(page.read_text()))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.name}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)
