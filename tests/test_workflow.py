"""The publishing workflow (.github/workflows/book.yml) passes the two checks .ci/run gives it,
GitHub's workflow schema (check-jsonschema) and zizmor's offline audit, and each check fails on a
copy broken in one place. Offline: the schema ships with check-jsonschema."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "book.yml"
SCHEMA = ["--builtin-schema", "vendor.github-workflows"]


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    tool = shutil.which(command[0])
    assert tool, f"{command[0]} is not installed: pip install -r requirements.txt"
    return subprocess.run([tool, *command[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _broken_copy(tmp_path: Path, pattern: str, replacement: str) -> Path:
    """book.yml with the one match of `pattern` replaced, as tmp_path/.github/workflows/book.yml
    (zizmor audits a `.github/workflows` folder); returns that folder."""
    text, count = re.subn(pattern, replacement, WORKFLOW.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} matched {count} times in book.yml"
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "book.yml").write_text(text)
    return folder


def test_the_workflow_passes_both_checks_as_ci_runs_them():
    files = sorted(str(p.relative_to(ROOT)) for p in WORKFLOWS.glob("*.yml"))
    assert ".github/workflows/book.yml" in files
    schema = _run("check-jsonschema", *SCHEMA, *files)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = _run("zizmor", "--offline", ".github/workflows")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No findings" in audit.stdout


@pytest.mark.parametrize(("pattern", "replacement", "message"), [
    # a misspelt top-level key
    (r"^permissions:\n  contents: read$", "permission:\n  contents: read",
     "'permission' was unexpected"),
    # a misspelt job key
    (r"timeout-minutes: 180", "timeout-minute: 180", "'timeout-minute' was unexpected"),
    # a value GitHub does not know
    (r"^  contents: read$", "  contents: readonly", "'readonly' is not one of"),
], ids=["unknown-top-level-key", "unknown-job-key", "bad-permission-value"])
def test_the_schema_check_fails_on_a_broken_copy(tmp_path, pattern, replacement, message):
    folder = _broken_copy(tmp_path, pattern, replacement)
    result = _run("check-jsonschema", *SCHEMA, str(folder / "book.yml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout


@pytest.mark.parametrize(("pattern", "replacement", "audit"), [
    # an action pinned to a movable tag instead of a commit
    (r"actions/checkout@[0-9a-f]{40} # v\S+", "actions/checkout@v7", "unpinned-uses"),
    # every permission, for every job
    (r"^permissions:\n  contents: read$", "permissions: write-all", "excessive-permissions"),
    # the checkout leaves its token in .git/config
    (r"persist-credentials: false", "fetch-depth: 1", "artipacked"),
    # a pull request's title pasted into a shell script
    (r"run: bash \.ci/run$", 'run: bash .ci/run "${{ github.event.pull_request.title }}"',
     "template-injection"),
], ids=["unpinned-action", "write-all", "persisted-credentials", "template-injection"])
def test_the_audit_fails_on_a_broken_copy(tmp_path, pattern, replacement, audit):
    folder = _broken_copy(tmp_path, pattern, replacement)
    # The broken copy still matches GitHub's schema: only the audit can catch it.
    assert _run("check-jsonschema", *SCHEMA, str(folder / "book.yml")).returncode == 0
    result = _run("zizmor", "--offline", ".github/workflows", cwd=tmp_path)
    # zizmor exits 10 + the highest severity it found (13 medium, 14 high) when it reports
    # findings, and below 10 on an error of its own (3: no workflow found).
    assert result.returncode >= 10, result.stdout + result.stderr
    assert f"[{audit}]" in result.stdout, result.stdout
