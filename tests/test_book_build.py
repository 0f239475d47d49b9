"""A notebook that does not execute fails `jupyter-book build` (book/_ext/book_build.py).

myst-nb itself only logs a warning and renders the page with what ran before the error;
the book's extension makes the build exit non-zero and name each chapter that did not
execute.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXTENSIONS = Path(__file__).resolve().parents[1] / "book" / "_ext"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# One line per chapter under the build's error, e.g.
# "  broken (broken.ipynb): ZeroDivisionError: division by zero; see .../broken.err.log"
FAILED_CHAPTER = re.compile(r"^  (\S+) \((\S+)\): (.*); see (\S+\.err\.log)$", re.M)


def _notebook(path: Path, source: str, metadata: dict | None = None) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    notebook = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"),
                                   new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata.update(metadata or {})
    nbformat.write(notebook, path)


def _book(root: Path) -> None:
    root.mkdir()
    (root / "_config.yml").write_text(
        "title: A tiny book\n"
        "only_build_toc_files: true\n"
        "execute:\n"
        "  execute_notebooks: cache\n"
        "  timeout: 120\n"
        "sphinx:\n"
        "  local_extensions:\n"
        f"    book_build: {EXTENSIONS.as_posix()}\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n"
        + "".join(f"- file: {name}\n" for name in ("good", "broken", "uses_helper",
                                                    "parts/slow")))
    (root / "intro.md").write_text("# Intro\n\nA book of four small chapters.\n")
    (root / "helper.py").write_text(
        "def answer():\n    raise ValueError('the helper is broken')\n")
    _notebook(root / "good.ipynb", "print('good chapter ' + 'output')")
    _notebook(root / "broken.ipynb", "1 / 0")
    _notebook(root / "uses_helper.ipynb", "import helper\nprint(helper.answer())")
    (root / "parts").mkdir()
    _notebook(root / "parts" / "slow.ipynb", "import time\ntime.sleep(60)",
              {"mystnb": {"execution_timeout": 2}})


def _build(root: Path) -> tuple[int, str]:
    script = (shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
              or shutil.which("jupyter-book"))
    command = ([script] if script else
               [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"])
    done = subprocess.run([*command, "build", str(root)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, cwd=root.parent,
                          env={**os.environ, "NO_COLOR": "1"})
    return done.returncode, ANSI.sub("", done.stdout)


def _failed_chapters(output: str) -> dict[str, tuple[str, str, str]]:
    return {docname: (source, error, report)
            for docname, source, error, report in FAILED_CHAPTER.findall(output)}


def test_a_notebook_that_does_not_execute_fails_the_build_until_it_is_fixed(tmp_path):
    root = tmp_path / "book"
    _book(root)

    code, output = _build(root)
    assert code == 1, output
    # A status, not an exception: jupyter-book ends without a traceback of its own.
    assert "returns a non-zero exit code (1)" in output
    assert "There was an error in building" not in output
    failed = _failed_chapters(output)
    assert set(failed) == {"broken", "uses_helper", "parts/slow"}, output
    assert "good" not in failed
    assert failed["broken"][0] == "book/broken.ipynb"
    assert failed["broken"][1] == "ZeroDivisionError: division by zero"
    assert failed["uses_helper"][1] == "ValueError: the helper is broken"
    assert failed["parts/slow"][1].startswith("CellTimeoutError: A cell timed out")
    for docname, (_, _, report) in failed.items():
        assert report == f"book/_build/html/reports/{docname}.err.log"
        assert (tmp_path / report).is_file()
    html = root / "_build" / "html"
    assert "good chapter output" in (html / "good.html").read_text()

    # Two chapters fixed; the helper that `uses_helper` imports is still broken. Its
    # notebook did not change, yet it is executed again and fails the build again.
    _notebook(root / "broken.ipynb", "print(1 / 2)")
    _notebook(root / "parts" / "slow.ipynb", "print('slow no more')")
    code, output = _build(root)
    assert code == 1, output
    failed = _failed_chapters(output)
    assert set(failed) == {"uses_helper"}, output
    assert failed["uses_helper"][1] == "ValueError: the helper is broken"
    assert not (html / "reports" / "broken.err.log").exists()  # no stale report
    assert "0.5" in (html / "broken.html").read_text()

    # The helper fixed, the notebook untouched: the build passes.
    (root / "helper.py").write_text("def answer():\n    return 'forty-two'\n")
    code, output = _build(root)
    assert code == 0, output
    assert "did not execute" not in output
    assert not list((html / "reports").rglob("*.err.log"))
    assert "forty-two" in (html / "uses_helper.html").read_text()
