"""Check the built book as a reader sees it, in a real browser.

    jupyter-book build .
    python tools/check_pages.py                 # checks _build/html
    python tools/check_pages.py --build-dir _build --screenshots _build/screenshots

Serves `_build/html` on 127.0.0.1, opens every page in headless Chromium (Debian's
`chromium`, driven by Playwright's Python package; no browser is downloaded) at 1280x900, and
fails if any page shows the reader something broken:

- a Python traceback or error text, or a stray repr such as `<Figure size ...>` or `Text(...)`;
- an `<img>` that did not load;
- fewer figures than the executed notebook produced, a plotting cell without a picture, a
  figure shown twice, or a chapter without any figure;
- math that MathJax did not typeset, or raw `$...$` left in the text;
- a widget that did not render from its saved state, or a slider that changes nothing;
- an error in the browser console, a request that failed, a script included twice;
- an internal link to a missing page or anchor;
- a code cell or printed line wider than the page (it would scroll sideways);
- a citation printed twice, as in "(Vincent et al., 2008) [Vincent et al., 2008]".

The pages load MathJax and the widget manager from the jsDelivr CDN. The check answers those
requests from the npm packages in `tools/node_modules` (`npm install --prefix tools`), at the
versions the pages ask for, and blocks every other request that leaves the machine, so it runs
offline and sees what an online reader sees. It saves a screenshot of every page.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import http.server
import json
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

TOOLS = Path(__file__).resolve().parent
NODE_MODULES = TOOLS / "node_modules"
CDN = "https://cdn.jsdelivr.net/npm/"
VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

# Output text a reader should never see.
ERROR_TEXT = [re.compile(p) for p in (
    r"Traceback \(most recent call last\)",
    r"^\w*(Error|Exception): ",
)]
STRAY_REPRS = [re.compile(p) for p in (
    r"<Figure size [\d.]+x[\d.]+ with \d+ Axes>",
    r"^Text\(-?[\d.]+, -?[\d.]+, ",
    r"<matplotlib\.[\w.]+ object at 0x",
    r"^\[<matplotlib",
    r"^<Axes: ",
    r"^<(BarContainer|ErrorbarContainer|StemContainer) object",
    r"^(Line2D|Text|Rectangle|Legend)\(",
    r"^(VBox|HBox|Box|interactive|Output)\(children=",
)]
# A markdown table printed as text (a `display(Markdown(...))` table the renderer did not turn
# into a table): its rule row, e.g. "| --- | --- |".
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|\s*:?-{3,}:?\s*\|")
# Raw TeX that MathJax did not turn into math.
RAW_MATH = re.compile(r"(?<![\w\\$])\$[^\s$][^$\n]{0,200}?(?<![\s\\])\$(?![\w$])"
                      r"|\\\(|\\\)|\\\[|\\\]")
# "(Vincent et al., 2008) [Vincent et al., 2008]": the same citation twice in a row.
CITED_TWICE = re.compile(
    r"([A-Z][\w'\-]+(?: et al\.| and [A-Z][\w'\-]+)?),? [(\[]?(\d{4}[a-z]?)[)\]]?\s*"
    r"[(\[]\1,? \2[)\]]")
# Calls that draw a figure when a cell runs them at its top level.
PLOT_CALLS = {"show_images", "subplots", "figure", "imshow", "plot", "bar", "barh", "hist",
              "scatter", "matshow", "plot_metrics", "imshow_grid"}
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


@dataclass
class PageReport:
    """What the check saw on one page, and what was wrong with it."""

    path: str
    figures: int = 0
    expected_figures: int | None = None
    widgets: int = 0
    widgets_played: int = 0
    math: int = 0
    problems: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.figures} figures"]
        if self.expected_figures is not None:
            parts[0] += f" (notebook: {self.expected_figures})"
        parts.append(f"{self.widgets} widgets")
        if self.widgets_played:
            parts[-1] += f" ({self.widgets_played} played without a kernel)"
        parts.append(f"{self.math} math")
        state = "ok" if not self.problems else f"{len(self.problems)} problems"
        return f"{self.path}: {', '.join(parts)}: {state}"


# ---------------------------------------------------------------------------------------------
# What the executed notebooks say the pages should show


def _top_level_calls(source: str) -> set[str]:
    """Names of the functions a cell calls outside any def/lambda/class."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                names.add(func.attr)
            elif isinstance(func, ast.Name):
                names.add(func.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


def expected_figures(nb: dict) -> tuple[int, list[str]]:
    """Figures an executed notebook holds, and what is wrong with them: a plotting cell
    without a picture, a cell showing the same picture twice."""
    count, blank = 0, []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "remove-output" in tags or "remove-cell" in tags:
            continue
        pictures = [next(str(out["data"][m]) for m in IMAGE_MIMES if m in out["data"])
                    for out in cell.get("outputs", [])
                    if any(m in out.get("data", {}) for m in IMAGE_MIMES)]
        images = len(pictures)
        count += images
        source = "".join(cell["source"])
        if len(set(pictures)) < images:
            blank.append(f"cell {index} shows the same figure twice (a returned figure "
                         "displayed as well? end the line with ';')")
        if not images and _top_level_calls(source) & PLOT_CALLS:
            first = source.strip().splitlines()[0][:60]
            blank.append(f"cell {index} ({first!r}) draws a figure but has no picture")
    return count, blank


class NotExecutedError(LookupError):
    """The execution cache has no run of a notebook's current code: the notebook did not
    execute (a cell raised or timed out), or it changed after the build."""


def executed_notebooks(build_dir: Path, root: Path) -> Callable[[str], dict | None]:
    """For a page (`book/x.html`), the executed notebook it was rendered from, or None for a
    page that is not a notebook.

    The execution cache (`BUILD_DIR/.jupyter_cache`) holds the outputs of the notebook's
    current code. `BUILD_DIR/jupyter_execute/` is not used: when the build takes a notebook
    from the cache, myst-nb writes the unexecuted notebook there. A notebook the cache has
    no run of raises NotExecutedError, which names the build's report of its error
    (`BUILD_DIR/html/reports/book/x.err.log`)."""
    cache_dir = build_dir / ".jupyter_cache"
    reports = build_dir / "html" / "reports"

    def executed(rel: str) -> dict | None:
        source = root / Path(rel).with_suffix(".ipynb")
        if not source.exists():
            return None
        import nbformat
        from jupyter_cache import get_cache

        notebook = nbformat.read(source, as_version=4)
        if not cache_dir.exists():
            raise FileNotFoundError(f"no execution cache at {cache_dir}: build the book first")
        try:
            _, merged = get_cache(cache_dir).merge_match_into_notebook(notebook)
        except KeyError:
            name = Path(rel).with_suffix(".ipynb").as_posix()
            report = reports / Path(rel).with_suffix(".err.log")
            if report.is_file():
                raise NotExecutedError(
                    f"{name} did not execute (the execution cache has no run of its current "
                    f"code): see {report}") from None
            raise NotExecutedError(
                f"{name}: the execution cache has no run of its current code: it did not "
                f"execute (see {reports}/) or it changed after the build; rebuild the book"
            ) from None
        return merged

    return executed


# ---------------------------------------------------------------------------------------------
# Serving the site and the CDN files


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def cdn_file(url: str, node_modules: Path = NODE_MODULES) -> Path:
    """The local copy of a jsDelivr npm URL (`.../npm/<package>@<version>/<path>`).

    The installed package must have the version the page asks for (a full version must
    match exactly; a major version such as `mathjax@3` must match the major)."""
    rest = url[len(CDN):].split("?")[0]
    match = re.match(r"((?:@[^/]+/)?[^/@]+)@([^/]+)/(.*)", rest)
    if not match:
        raise LookupError(f"{url}: not a versioned npm URL")
    package, version, path = match.groups()
    root = node_modules / package
    manifest = root / "package.json"
    if not manifest.exists():
        raise LookupError(f"{url}: npm package {package} is not installed in {node_modules} "
                          f"(run: npm install --prefix {node_modules.parent})")
    installed = json.loads(manifest.read_text())["version"]
    if not (installed == version or installed.startswith(version + ".")):
        raise LookupError(f"{url}: the page asks for {package}@{version}, {node_modules} has "
                          f"{installed}; make tools/package.json and the page agree")
    target = root / path
    if not target.is_file():
        raise LookupError(f"{url}: {target} does not exist")
    return target


# ---------------------------------------------------------------------------------------------
# What a page shows, read in the browser

_PAGE_FACTS = """() => {
  const visible = el => el.offsetWidth > 0 && el.offsetHeight > 0;
  const skip = 'pre, code, script, style, mjx-container, .highlight, textarea, .MathJax';
  const texts = [];
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest(skip)) texts.push(n.textContent);
  }
  const outputs = [...document.querySelectorAll('.cell_output')];
  const outputTexts = outputs.flatMap(o => [...o.querySelectorAll('pre')]
    .filter(p => !p.closest('.jupyter-widgets')).map(p => p.textContent));
  const figures = outputs.flatMap(o => [...o.querySelectorAll('img')]
    .filter(i => !i.closest('.jupyter-widgets')));
  const images = [...document.querySelectorAll('img')].filter(i => !i.closest('.jupyter-widgets')
    || visible(i));
  const wide = [...document.querySelectorAll('div.highlight pre, .cell_output pre')]
    .filter(p => visible(p) && p.scrollWidth > p.clientWidth + 1)
    .map(p => ({over: p.scrollWidth - p.clientWidth,
                line: p.textContent.split('\\n')
                       .reduce((a, b) => b.length > a.length ? b : a, '')}));
  const math = [...document.querySelectorAll('.math')];
  const scripts = [...document.querySelectorAll('script')]
    .filter(s => !(s.type || '').startsWith('application/'))
    .map(s => s.src ? 'src ' + s.getAttribute('src') : 'inline ' + s.textContent.trim())
    .filter(s => s !== 'inline ');
  return {
    text: texts.join(' ').replace(/\\s+/g, ' '),
    outputTexts,
    figures: figures.length,
    brokenImages: images.filter(i => !i.complete || i.naturalWidth === 0)
                        .map(i => i.getAttribute('src')),
    wide,
    math: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container'))
                   .map(m => m.textContent.slice(0, 60)),
    scripts,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    widgetViews: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length,
  };
}"""

_WIDGETS_RENDERED = """(n) => {
  const views = [...document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')];
  const shown = views.filter(s => [...s.parentElement.querySelectorAll('.jupyter-widgets')]
    .some(w => w.offsetHeight > 0));
  return shown.length === n;
}"""

# The images a widget shows now (those visible on the page).
_WIDGET_VIEW = """(index) => {
  const s = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')[index];
  const area = s.parentElement;
  return [...area.querySelectorAll('img')]
    .filter(i => i.offsetWidth > 0 && i.offsetHeight > 0)
    .map(i => i.getAttribute('src').slice(-64)).join('|');
}"""


def check_page(page, url: str, rel: str, notebook: dict | None,
               screenshot: Path | None) -> PageReport:
    """Open one page and report what is wrong with it."""
    report = PageReport(rel)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: console.append(f"request failed: {r.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    with contextlib.suppress(Exception):  # pages without math have no MathJax
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    facts = page.evaluate(_PAGE_FACTS)
    report.widgets = facts["widgetViews"]
    if report.widgets:
        try:
            page.wait_for_function(_WIDGETS_RENDERED, arg=report.widgets, timeout=20_000)
        except Exception:
            report.problems.append(f"{report.widgets} widgets, not all rendered from the saved "
                                   "widget state")
        else:
            _check_widget_interaction(page, report)
        facts = page.evaluate(_PAGE_FACTS)

    report.figures = facts["figures"]
    report.math = facts["math"]
    report.ids = set(facts["ids"])
    report.links = facts["links"]
    problems = report.problems
    problems += [f"browser console: {line}" for line in console]
    problems += text_problems(facts)
    if notebook is not None:
        expected, blank = expected_figures(notebook)
        report.expected_figures = expected
        problems += blank
        if report.figures != expected:
            problems.append(f"{report.figures} figures on the page, {expected} in the executed "
                            "notebook")
        if expected == 0:
            problems.append("a chapter without a single figure (figures lost at execution?)")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return report


def text_problems(facts: dict) -> list[str]:
    """What is wrong in a page's text, outputs and scripts, from `_PAGE_FACTS`."""
    problems = []
    for text in facts["outputTexts"]:
        for line in text.splitlines():
            for pattern in ERROR_TEXT + STRAY_REPRS:
                if pattern.search(line.strip()):
                    problems.append(f"output shows {line.strip()[:80]!r}")
    if "Traceback (most recent call last)" in facts["text"]:
        problems.append("the page shows a Python traceback")
    problems += [f"image did not load: {src}" for src in facts["brokenImages"]]
    problems += [f"math not typeset: {tex!r}" for tex in facts["untypeset"]]
    for match in RAW_MATH.finditer(facts["text"]):
        problems.append(f"raw TeX in the text: {match.group(0)[:60]!r}")
    if RAW_TABLE.search(facts["text"]):
        problems.append("a markdown table shown as text (render markdown outputs as gfm?)")
    for match in CITED_TWICE.finditer(facts["text"]):
        problems.append(f"citation printed twice: {match.group(0)!r}")
    for block in facts["wide"]:
        problems.append(f"a line {block['over']} px wider than its box (scrolls sideways): "
                        f"{block['line'].strip()[:70]!r}")
    seen: set[str] = set()
    for script in facts["scripts"]:
        if script in seen:
            problems.append(f"script included twice: {script[:80]!r}")
        seen.add(script)
    return problems


def _check_widget_interaction(page, report: PageReport) -> None:
    """A widget with a slider and pictures must change its picture when the slider moves,
    with no kernel behind the page (its frames come from the saved state)."""
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
    for index in range(views.count()):
        area = views.nth(index).locator("xpath=..")
        handles = area.locator(".noUi-handle, .widget-slider input, input[type=range]")
        before = page.evaluate(_WIDGET_VIEW, index)
        if handles.count() == 0 or not before:
            continue
        handles.first.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_timeout(300)
        after = page.evaluate(_WIDGET_VIEW, index)
        if after == before:
            report.problems.append(f"widget {index}: moving its slider changes nothing without a "
                                   "kernel (precompute its frames, or say it needs a kernel)")
        else:
            report.widgets_played += 1


# ---------------------------------------------------------------------------------------------
# The whole site


def pages_of(html_dir: Path) -> list[Path]:
    """Every HTML page of the site (not the theme's or Sphinx's static files)."""
    skip = ("_static", "_sources", "_images", "_downloads")
    return sorted(p for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).parts[0].startswith(skip))


def check_links(reports: dict[str, PageReport], html_dir: Path, base: str) -> list[str]:
    """Internal links that point to a missing file, page or anchor."""
    problems = []
    for rel, report in reports.items():
        for link in report.links:
            if not link.startswith(base):
                continue
            parts = urlsplit(link[len(base) - 1:])
            target = unquote(parts.path).lstrip("/") or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (html_dir / target).exists():
                problems.append(f"{rel}: link to missing {target}")
            elif parts.fragment and target in reports:
                if unquote(parts.fragment) not in reports[target].ids:
                    problems.append(f"{rel}: link to missing anchor {target}#{parts.fragment}")
    return problems


def _route(route, base: str, blocked: list[str], node_modules: Path) -> None:
    url = route.request.url
    if url.startswith(base) or url.startswith(("data:", "blob:", "about:")):
        route.continue_()
    elif url.startswith(CDN):
        try:
            path = cdn_file(url, node_modules)
        except LookupError as err:
            blocked.append(str(err))
            route.abort()
        else:
            kind = "text/javascript" if path.suffix == ".js" else None
            route.fulfill(path=str(path), content_type=kind,
                          headers={"Access-Control-Allow-Origin": "*"})
    else:
        blocked.append(f"{url}: the page loads a resource from outside the book")
        route.abort()


def check_site(html_dir: Path, executed: Callable[[str], dict | None] | None = None,
               screenshots: Path | None = None, node_modules: Path = NODE_MODULES,
               browser_path: str | None = None) -> tuple[list[PageReport], list[str]]:
    """Check every page of the site in `html_dir`; returns the page reports and the
    site-wide problems (links, blocked requests). `executed(page)` gives the executed
    notebook a page was rendered from (None for other pages); a page whose notebook did not
    execute (NotExecutedError) is a problem of that page, and the check goes on."""
    from playwright.sync_api import sync_playwright

    browser_path = browser_path or find_chromium()
    pages = pages_of(html_dir)
    if not pages:
        raise FileNotFoundError(f"no HTML pages in {html_dir}: build the book first "
                                "(jupyter-book build .)")
    reports: dict[str, PageReport] = {}
    blocked: list[str] = []
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            context.route("**/*", lambda r: _route(r, base, blocked, node_modules))
            for path in pages:
                rel = path.relative_to(html_dir).as_posix()
                not_executed = None
                try:
                    notebook = executed(rel) if executed is not None else None
                except NotExecutedError as err:
                    notebook, not_executed = None, str(err)
                shot = screenshots / rel.replace("/", "_").replace(".html", ".png") \
                    if screenshots is not None else None
                page = context.new_page()
                try:
                    reports[rel] = check_page(page, base + rel, rel, notebook, shot)
                finally:
                    page.close()
                if not_executed:
                    reports[rel].problems.insert(0, not_executed)
        finally:
            browser.close()
    site = check_links(reports, html_dir, base) + sorted(set(blocked))
    return list(reports.values()), site


def find_chromium() -> str:
    """Path of the system Chromium (Debian's `chromium`), or a clear error."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: install Debian's package "
                            "(apt-get install chromium) or pass --browser PATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=Path("_build"),
                        help="the book's build folder (with html/ and .jupyter_cache/), "
                             "inside the book's root")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="where to save one screenshot per page "
                             "(default: BUILD_DIR/screenshots)")
    parser.add_argument("--browser", default=None, help="path of the Chromium executable")
    args = parser.parse_args(argv)
    html_dir = args.build_dir / "html"
    screenshots = args.screenshots or args.build_dir / "screenshots"
    if screenshots.exists():
        shutil.rmtree(screenshots)
    executed = executed_notebooks(args.build_dir, args.build_dir.resolve().parent)
    reports, site = check_site(html_dir, executed, screenshots, browser_path=args.browser)
    failed = bool(site)
    for report in reports:
        print(report.summary())
        for problem in report.problems:
            print(f"  - {problem}")
        failed |= bool(report.problems)
    for problem in site:
        print(f"site: {problem}")
    print(f"{len(reports)} pages checked, screenshots in {screenshots}: "
          f"{'FAILED' if failed else 'all pages ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
