"""The book's own additions to its Sphinx build (a local extension, see _config.yml).

- Every page gets `book.css` (code boxes as wide as the code, printed output wrapped).
- Citations in author-year style with round brackets: {cite:p} gives
  "(He et al., 2022)" and {cite:t} "He et al. (2022)" (`author_year` uses [ ]); the
  reference list is labelled the same way ("He et al., 2022"), not [HCX+22] or [1].
- The light theme when a reader has not chosen one (the theme otherwise logs an error).
- Widgets on a page: the widget manager finds its fonts next to its script on the CDN
  (RequireJS would look under the page's folder), and ipywidgets' calls to MathJax 2's
  `MathJax.Hub.Queue` are answered by the pages' MathJax 3 (else each label throws).
- `_build/jupyter_execute/` holds the executed notebooks even when they come from the
  execution cache (myst-nb then writes the unexecuted ones there).
- A notebook that did not execute (a cell raised, or ran past `execute.timeout`) fails
  the build, which names each such chapter and its report
  (`_build/html/reports/<docname>.err.log`); myst-nb only logs a warning and renders
  the page with what ran before the error. The next build executes it again, so a fix
  outside the notebook (in the package it imports) counts without editing the notebook.
- Each script is included once. Inline scripts that extensions add after the HTML
  builder started (sphinx-thebe's settings, sphinx-togglebutton's selector) are
  registered twice by Sphinx 7, and the repeated `const THEBE_JS_URL` is a JavaScript
  error on every page.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.util import logging
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

LOGGER = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "_static"


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclasses.dataclass
class RoundAuthorYearStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author-year references, with ( ) instead of [ ]."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearStyle)


class AuthorYearLabels(BaseLabelStyle):
    """Reference-list labels as the text cites them: "Krizhevsky, 2009", "Hinton and
    Salakhutdinov, 2006", "He et al., 2022" (then a, b, ... if two would be equal)."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        labels = [self._label(entry) for entry in sorted_entries]
        total, seen = Counter(labels), Counter()
        for label in labels:
            if total[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label

    @staticmethod
    def _label(entry: Any) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [Text.from_latex(" ".join(p.prelast_names + p.last_names))
                 .render_as("text") for p in people]
        if len(names) > 2:
            who = f"{names[0]} et al."
        else:
            who = " and ".join(names) or entry.fields.get("title", "?")
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style (sorted by author), with author-year labels."""

    default_label_style = "author_year"


pybtex.plugin.register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
pybtex.plugin.register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)

# Before the theme's script runs: the mode it reads is empty until a reader picks one.
LIGHT_BY_DEFAULT = ("if (!document.documentElement.dataset.mode) {"
                    " document.documentElement.dataset.mode = 'light'; }")


# ipywidgets typesets its labels with MathJax 2's API; the pages load MathJax 3, whose
# global object replaces the configuration object when it loads, so the shim is
# installed once the document is parsed, before the widget manager renders.
WIDGETS_ON_A_PAGE = """
var require = {paths: {"@jupyter-widgets/html-manager": %s}};
(function () {
  const hub = {Queue: (...calls) => calls.forEach((call) => {
    const el = Array.isArray(call) ? call[2] : null;
    if (el && window.MathJax && window.MathJax.typesetPromise) {
      window.MathJax.typesetPromise([el]).catch(() => {});
    }
  })};
  const install = () => {
    if (window.MathJax && !window.MathJax.Hub) window.MathJax.Hub = hub;
  };
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
"""


def _configure(app: Any, config: Any) -> None:
    config.html_static_path.append(str(STATIC))
    suffix = "/dist/embed-amd.js"
    managers = [url for url in config.nb_ipywidgets_js if url.endswith(suffix)]
    if managers:  # RequireJS reads a global `require` object as its configuration
        package = json.dumps(managers[0][: -len(suffix)])
        app.add_js_file(None, body=WIDGETS_ON_A_PAGE % package, priority=100)


def _one_copy_of_each_script(app: Any, pagename: str, templatename: str,
                             context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = (getattr(script, "filename", script) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _write_executed_notebooks(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.config.nb_execution_mode != "cache":
        return
    import nbformat
    from jupyter_cache import get_cache

    build = Path(app.outdir).parent
    cache = get_cache(app.config.nb_execution_cache_path or build / ".jupyter_cache")
    for docname in sorted(app.env.found_docs):
        source = Path(app.env.doc2path(docname))
        if source.suffix != ".ipynb":
            continue
        try:
            _, executed = cache.merge_match_into_notebook(nbformat.read(source, 4))
        except KeyError:  # not in the cache (excluded from execution)
            continue
        nbformat.write(executed, build / "jupyter_execute" / f"{docname}.ipynb")


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _execution_failures(env: Any) -> dict[str, dict[str, Any]]:
    """By docname, the execution data of every notebook whose last execution failed
    (myst-nb keeps it in the environment, which is saved between builds)."""
    metadata = getattr(env, "nb_metadata", {})
    failed = {}
    for docname in sorted(env.found_docs):
        data = metadata.get(docname, {}).get("exec_data")
        if data and data.get("succeeded") is False:
            failed[docname] = data
    return failed


def _read_failed_notebooks_again(app: Any, env: Any, added: set[str],
                                 changed: set[str], removed: set[str]) -> list[str]:
    """A notebook that failed is not in the execution cache: reading it again executes
    it again, even when only what it imports or reads was fixed."""
    return [docname for docname in _execution_failures(env) if docname not in removed]


def _shown(path: Path) -> str:
    """`path` relative to the working folder when it lies inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _what_went_wrong(data: dict[str, Any]) -> str:
    """One line from the execution's traceback: the exception a cell raised (its last
    line), or the executor's own error (a timeout, a kernel that died)."""
    error = data.get("error") or "execution failed"
    text = ANSI_ESCAPE.sub("", data.get("traceback") or "")
    lines = [line.strip() for line in text.splitlines()]
    if error == "CellExecutionError":  # the cell's exception comes last
        lines = [line for line in lines if line and not set(line) <= set("-")]
        found = lines[-1:]
    else:
        found = [line.split(": ", 1)[-1] for line in lines
                 if re.match(rf"([\w.]+\.)?{re.escape(error)}: ", line)]
        found = [f"{error}: {found[-1]}"] if found else []
    line = found[0] if found else error
    return line if len(line) <= 120 else line[:119] + "…"


def _fail_on_notebooks_that_did_not_execute(app: Any,
                                            exception: Exception | None) -> None:
    """Log one line per notebook whose last execution failed, and make the build's
    exit status 1 (raising here would end `jupyter-book build` in a long traceback)."""
    if exception is not None:
        return
    reports = Path(app.outdir) / "reports"
    failures = _execution_failures(app.env)
    for docname, data in getattr(app.env, "nb_metadata", {}).items():
        # the report of a notebook that failed before and executes now
        report = reports.joinpath(*f"{docname}.err.log".split("/"))
        if docname not in failures and data.get("exec_data") and report.is_file():
            report.unlink()
    if not failures:
        return
    lines = [f"{len(failures)} notebook(s) did not execute:"]
    for docname, data in failures.items():
        report = reports.joinpath(*f"{docname}.err.log".split("/"))
        source = _shown(Path(app.env.doc2path(docname)))
        lines.append(f"  {docname} ({source}): {_what_went_wrong(data).rstrip('.')}; "
                     f"see {_shown(report)}")
    LOGGER.error("\n".join(lines))
    app.statuscode = 1


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _configure)
    app.add_css_file("book.css")
    app.add_js_file(None, body=LIGHT_BY_DEFAULT, priority=100)
    app.connect("html-page-context", _one_copy_of_each_script, priority=900)
    app.connect("build-finished", _write_executed_notebooks)
    app.connect("env-get-outdated", _read_failed_notebooks_again)
    app.connect("build-finished", _fail_on_notebooks_that_did_not_execute)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
