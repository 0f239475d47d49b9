"""The page check (tools/check_pages.py) fails on what a reader would see broken."""

import json
import shutil
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
import check_pages  # noqa: E402


def _page(body: str, title: str = "page") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><main>{body}</main></body></html>")


def _notebook(cells: list[tuple[str, list[dict]]]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": source,
                       "outputs": outputs, "execution_count": None}
                      for i, (source, outputs) in enumerate(cells)]}


PNG_OUTPUT = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}


def test_expected_figures_counts_pictures_and_finds_plotting_cells_without_one():
    notebook = _notebook([
        ("mt.viz.show_images(imgs);", [PNG_OUTPUT]),
        ("fig, ax = plt.subplots()\nax.plot(x);", []),          # lost its figure
        ("def draw(ax):\n    ax.imshow(img)", []),              # only defines a function
        ("%matplotlib inline\nprint('no figure here')", []),
        ("mt.viz.show_images(imgs)", [PNG_OUTPUT, PNG_OUTPUT]),  # returned and displayed
    ])
    count, blank = check_pages.expected_figures(notebook)
    assert count == 3
    assert len(blank) == 2
    assert blank[0].startswith("cell 1 ") and "no picture" in blank[0]
    assert blank[1].startswith("cell 4 ") and "same figure twice" in blank[1]


def test_patterns_for_raw_math_repeated_citations_and_stray_reprs():
    assert check_pages.RAW_MATH.search("the loss $L = x^2$ of")
    assert check_pages.RAW_MATH.search(r"inline \(x\) math")
    assert not check_pages.RAW_MATH.search("it costs 5 dollars, not 6")
    assert check_pages.CITED_TWICE.search("(Vincent et al., 2008) [Vincent et al., 2008]")
    assert check_pages.CITED_TWICE.search("Vincent et al. (2008) (Vincent et al., 2008)")
    assert not check_pages.CITED_TWICE.search("Vincent et al. (2008) corrupt the input")
    assert check_pages.RAW_TABLE.search("| a | b | | --- | :---: | | 1 | 2 |")
    assert not check_pages.RAW_TABLE.search("a -- b | c --- d")
    stray = ["Text(0.5, 0.23, 'tokens')", "<Figure size 640x480 with 1 Axes>",
             "[<matplotlib.lines.Line2D at 0x7f>]", "<Axes: title={'center': 'x'}>"]
    for line in stray:
        assert any(p.search(line) for p in check_pages.STRAY_REPRS), line
    assert not any(p.search("loss 0.36 (Text and figures agree)")
                   for p in check_pages.STRAY_REPRS)


def test_executed_notebooks_come_from_the_execution_cache(tmp_path):
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    source = tmp_path / "book" / "chapter.ipynb"
    source.parent.mkdir()
    code = [("plt.imshow(x);", [])]
    nbformat.write(nbformat.from_dict(_notebook(code)), source)
    executed_copy = nbformat.from_dict(_notebook([("plt.imshow(x);", [PNG_OUTPUT])]))
    get_cache(tmp_path / "_build" / ".jupyter_cache").cache_notebook_bundle(
        CacheBundleIn(executed_copy, str(source)), check_validity=False)
    executed = check_pages.executed_notebooks(tmp_path / "_build", tmp_path)
    assert executed("book/other.html") is None  # not a notebook page
    assert check_pages.expected_figures(executed("book/chapter.html")) == (1, [])
    # Once the code changes, the cache's copy is stale: the check says so.
    nbformat.write(nbformat.from_dict(_notebook([("plt.imshow(y);", [])])), source)
    with pytest.raises(LookupError, match="no run of its current code"):
        executed("book/chapter.html")


def _book_with_a_notebook_that_did_not_execute(root: Path) -> Path:
    """A built book (ROOT/_build) of two notebook chapters: `chapter` executed (the cache
    has its run, with one figure), `failed` did not (no run; the build's report of it)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from PIL import Image

    build = root / "_build"
    html = build / "html"
    (html / "_images").mkdir(parents=True)
    Image.new("RGB", (20, 10), "red").save(html / "_images" / "figure.png")
    (html / "chapter.html").write_text(_page(
        "<h1>Chapter</h1><div class='cell_output'><img src='_images/figure.png' alt='a'>"
        "</div>", "chapter"))
    (html / "failed.html").write_text(_page("<h1>Failed</h1><p>No outputs.</p>", "failed"))
    (html / "reports").mkdir()
    (html / "reports" / "failed.err.log").write_text(
        "Traceback (most recent call last):\nZeroDivisionError: division by zero\n")
    code = [("plt.imshow(x);", [])]
    for name in ("chapter", "failed"):
        nbformat.write(nbformat.from_dict(_notebook(code if name == "chapter" else
                                                    [("1 / 0", [])])),
                       root / f"{name}.ipynb")
    get_cache(build / ".jupyter_cache").cache_notebook_bundle(
        CacheBundleIn(nbformat.from_dict(_notebook([("plt.imshow(x);", [PNG_OUTPUT])])),
                      str(root / "chapter.ipynb")), check_validity=False)
    return build


def test_a_notebook_that_did_not_execute_is_named_with_its_report(tmp_path):
    build = _book_with_a_notebook_that_did_not_execute(tmp_path)
    executed = check_pages.executed_notebooks(build, tmp_path)
    assert check_pages.expected_figures(executed("chapter.html")) == (1, [])
    with pytest.raises(check_pages.NotExecutedError) as caught:
        executed("failed.html")
    report = build / "html" / "reports" / "failed.err.log"
    assert str(caught.value) == ("failed.ipynb did not execute (the execution cache has no "
                                 f"run of its current code): see {report}")


def test_cdn_urls_are_served_from_the_matching_npm_package(tmp_path):
    package = tmp_path / "node_modules" / "@scope" / "lib"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"version": "1.2.3"}))
    (package / "dist" / "lib.js").write_text("// lib")
    modules = tmp_path / "node_modules"
    url = check_pages.CDN + "@scope/lib@1.2.3/dist/lib.js"
    assert check_pages.cdn_file(url, modules) == package / "dist" / "lib.js"
    assert check_pages.cdn_file(check_pages.CDN + "@scope/lib@1/dist/lib.js", modules)
    with pytest.raises(LookupError, match="asks for @scope/lib@1.2.4"):
        check_pages.cdn_file(check_pages.CDN + "@scope/lib@1.2.4/dist/lib.js", modules)
    with pytest.raises(LookupError, match="not installed"):
        check_pages.cdn_file(check_pages.CDN + "other@1.0.0/x.js", modules)


def _browser_or_skip() -> str:
    pytest.importorskip("playwright.sync_api")
    try:
        return check_pages.find_chromium()
    except FileNotFoundError as err:
        pytest.skip(f"{err} (CI installs it: see .ci/run)")


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    """A small site with one healthy page and one page per defect the check must catch."""
    from PIL import Image

    build = tmp_path_factory.mktemp("build")
    html, executed = build / "html", build / "executed"
    (html / "_images").mkdir(parents=True)
    executed.mkdir()
    Image.new("RGB", (20, 10), "red").save(html / "_images" / "figure.png")
    figure = "<div class='cell_output'><img src='_images/figure.png' alt='a figure'></div>"
    pages = {
        "good.html": f"<h1 id='top'>Good</h1>{figure}<a href='good.html#top'>up</a>"
                     "<div class='highlight'><pre>x = 1  # short enough</pre></div>",
        "missing_image.html": "<img src='_images/missing.png' alt='gone'>",
        "traceback.html": "<div class='cell_output'><pre>Traceback (most recent call last):\n"
                          "  File \"x.py\", line 1\nZeroDivisionError: division by zero"
                          "</pre></div>",
        "raw_math.html": "<p>The loss is $\\frac{1}{2} x^2$ on the removed patches.</p>",
        "stray_repr.html": "<div class='cell_output'><pre>Text(0.5, 0.23, 'a title')</pre>"
                           "</div>",
        "lost_figures.html": "<p>A chapter whose figures were lost.</p>",
        "broken_link.html": "<a href='nowhere.html'>a page that does not exist</a>"
                            "<a href='good.html#missing'>an anchor that does not exist</a>",
        "cited_twice.html": "<p>Denoising (Vincent et al., 2008) [Vincent et al., 2008].</p>",
        "raw_table.html": "<p>| row | k-NN | | --- | --- | | baseline | 30.8 |</p>",
        "wide_code.html": "<div class='highlight' style='width: 300px'><pre>"
                          + "x = " + " + ".join(["value"] * 30) + "</pre></div>",
        "console_error.html": "<script>console.error('something broke')</script>",
    }
    for name, body in pages.items():
        (html / name).write_text(_page(body, name))
    (executed / "good.ipynb").write_text(json.dumps(_notebook([("plt.imshow(x);",
                                                                 [PNG_OUTPUT])])))
    (executed / "lost_figures.ipynb").write_text(json.dumps(_notebook([
        ("fig, ax = plt.subplots()\nax.plot(x);", [])])))
    return build


def test_the_check_passes_a_healthy_page_and_names_every_defect(broken_site, tmp_path):
    browser = _browser_or_skip()
    def executed(rel):
        path = broken_site / "executed" / rel.replace(".html", ".ipynb")
        return json.loads(path.read_text()) if path.exists() else None

    reports, site = check_pages.check_site(broken_site / "html", executed,
                                           screenshots=tmp_path / "shots",
                                           browser_path=browser)
    problems = {r.path: " | ".join(r.problems) for r in reports}
    assert problems["good.html"] == ""
    good = next(r for r in reports if r.path == "good.html")
    assert (good.figures, good.expected_figures) == (1, 1)
    assert "image did not load: _images/missing.png" in problems["missing_image.html"]
    assert "traceback" in problems["traceback.html"].lower()
    assert "raw TeX in the text: '$\\\\frac{1}{2} x^2$'" in problems["raw_math.html"]
    assert "Text(0.5, 0.23" in problems["stray_repr.html"]
    assert "draws a figure but has no picture" in problems["lost_figures.html"]
    assert "0 figures on the page" not in problems["lost_figures.html"]  # 0 == 0 pictures
    assert "without a single figure" in problems["lost_figures.html"]
    assert "citation printed twice" in problems["cited_twice.html"]
    assert "markdown table shown as text" in problems["raw_table.html"]
    assert "wider than its box" in problems["wide_code.html"]
    assert "something broke" in problems["console_error.html"]
    assert any("link to missing nowhere.html" in p for p in site)
    assert any("missing anchor good.html#missing" in p for p in site)
    shots = sorted(p.name for p in (tmp_path / "shots").iterdir())
    assert shots == sorted(name.replace(".html", ".png") for name in problems)


def test_main_exits_nonzero_on_a_broken_site_and_zero_on_a_healthy_one(broken_site, tmp_path,
                                                                       capsys):
    browser = _browser_or_skip()
    healthy = tmp_path / "healthy"
    shutil.copytree(broken_site, healthy)
    for page in (healthy / "html").glob("*.html"):
        if page.name != "good.html":
            page.unlink()
    assert check_pages.main(["--build-dir", str(healthy), "--browser", browser]) == 0
    assert "1 pages checked" in capsys.readouterr().out
    assert check_pages.main(["--build-dir", str(broken_site), "--browser", browser]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_main_names_a_notebook_that_did_not_execute_and_checks_the_other_pages(tmp_path,
                                                                             capsys):
    browser = _browser_or_skip()
    build = _book_with_a_notebook_that_did_not_execute(tmp_path)
    assert check_pages.main(["--build-dir", str(build), "--browser", browser]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    lines = out.splitlines()
    report = build / "html" / "reports" / "failed.err.log"
    assert lines[lines.index("failed.html: 0 figures, 0 widgets, 0 math: 1 problems") + 1] \
        == (f"  - failed.ipynb did not execute (the execution cache has no run of its "
            f"current code): see {report}")
    assert "chapter.html: 1 figures (notebook: 1), 0 widgets, 0 math: ok" in lines
    assert lines[-1].startswith("2 pages checked") and lines[-1].endswith("FAILED")
