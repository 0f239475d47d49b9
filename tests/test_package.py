"""The package's shape: a cheap import, one encoder path, seeds without collisions, a command
line typed from the configuration, and one repository address everywhere."""

import json
import re
import subprocess
import sys
from pathlib import Path

import torch

import mae_tutorial as mt

ROOT = Path(__file__).resolve().parents[1]


def test_import_loads_only_the_core():
    code = ("import sys, torch; before = set(sys.modules); import mae_tutorial; "
            "print(sorted(set(sys.modules) - before))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                       text=True, check=True).stdout.replace("'", '"'))
    outer = [m for m in loaded if not m.startswith(("mae_tutorial", "einops"))]
    assert outer == []
    core = {"mae_tutorial.patches", "mae_tutorial.masking", "mae_tutorial.pos_embed",
            "mae_tutorial.vit", "mae_tutorial.mae", "mae_tutorial.runtime"}
    assert {m for m in loaded if m.startswith("mae_tutorial.")} == core


def test_outer_names_load_on_first_use():
    assert mt.load_weights is mt.checkpoint.load_weights
    assert mt.to_hf_vitmae is mt.hf.to_hf_vitmae
    assert "train" in dir(mt)


def test_running_the_trainer_as_a_module_warns_nothing():
    out = subprocess.run([sys.executable, "-W", "error", "-m", "mae_tutorial.train", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--max-steps MAX_STEPS" in out.stdout


def test_command_line_types_come_from_the_type_hints():
    parser = mt.config.arg_parser()
    args = parser.parse_args(["--max-steps", "7", "--clip-grad", "1.5", "--no-norm-pix-loss",
                              "--mask-ratio", "0.6"])
    assert args.max_steps == 7 and args.clip_grad == 1.5 and args.mask_ratio == 0.6
    assert args.norm_pix_loss is False


def test_seed_streams_do_not_collide():
    streams = ["order", "augment", "mask", "augment-image", "synthetic-train"]
    seeds = {mt.derive_seed(s, name, i) for s in range(3) for name in streams for i in range(50)}
    assert len(seeds) == 3 * len(streams) * 50
    assert mt.derive_seed(1, "augment", 5) != mt.derive_seed(0, "mask", 5)
    assert mt.derive_seed(0, "mask", 5) == mt.derive_seed(0, "mask", 5)
    assert 0 <= mt.derive_seed(123, "order", 9) < 2**63


def test_one_encoder_path_for_mae_classifier_and_attention():
    torch.manual_seed(0)
    mae = mt.mae_from_preset("vit_mini_patch4").eval()
    vit = mt.vit_from_mae(mae, num_classes=3, global_pool=False).eval()
    imgs = torch.randn(2, 3, 32, 32)
    tokens, mask, ids_restore = mae.forward_encoder(imgs)
    assert torch.equal(vit.forward_encoder(imgs)[0], tokens)  # same weights, same path
    assert torch.equal(vit.forward_features(imgs), tokens[:, 0])
    assert mask.sum() == 0 and torch.equal(ids_restore[0], torch.arange(64))
    latent, mask, _ = mae.forward_encoder(imgs, 0.75, torch.rand(2, 64))
    assert latent.shape == (2, 1 + 16, 128) and mask.sum() == 2 * 48
    maps = mt.vit.cls_attention_maps(mae, imgs)
    assert maps.shape == (2, 4, 8, 8)
    assert torch.allclose(maps.sum(dim=(2, 3)) < 1, torch.ones(2, 4, dtype=torch.bool))
    assert torch.allclose(mt.vit.cls_attention_maps(vit, imgs), maps)


def test_every_notebook_links_to_the_repository_of_the_config():
    """The repository's address lives in _config.yml; every badge and every setup cell's
    install line follows it, and the install block is the same in every chapter."""
    config = (ROOT / "_config.yml").read_text()
    repo = re.search(r"^repository:\n\s+url: (\S+)", config, re.M).group(1)
    branch = re.search(r"^repository:\n(?:\s+.*\n)*?\s+branch: (\S+)", config, re.M).group(1)
    assert repo.startswith("https://github.com/")
    slug = repo.removeprefix("https://github.com/")
    installs = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells)
        setup = [c for c in cells if "".join(c["source"]).startswith("# Setup.")]
        assert len(setup) == 1, f"{path.name}: one setup cell"
        source = "".join(setup[0]["source"])
        assert cells.index(setup[0]) == 1, f"{path.name}: the setup cell comes first"
        installs[path.name] = source[:source.index("cell again")]
        assert f'REPOSITORY = "{repo}"' in source, path.name
        for url in re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", text):
            assert url == (f"https://colab.research.google.com/github/{slug}/blob/{branch}/book/"
                           f"{path.name}"), f"{path.name}: {url}"
        if path.stem != "intro":
            assert f"colab.research.google.com/github/{slug}" in text, f"{path.name}: badge"
    first = next(iter(installs.values()))
    assert "MAE_TUTORIAL_PIP" in first and "pip.stdout + pip.stderr" in first
    assert all(block == first for block in installs.values()), "one install block everywhere"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'Repository = "{repo}"' in pyproject


# how a docstring names a page: "Chapter 3", "chapters 5 and 7", "The ablations appendix",
# "the after-MAE page", "the landing page", "the representation chapter"
PAGE_REF = re.compile(r"[Cc]hapters?\s+(\d+)|[Tt]he\s+(\w+)\s+appendix|(after-MAE\s+page)|"
                      r"([Ll]anding\s+page)|([Rr]epresentation\s+chapter)")


def page_name(stem: str) -> str:
    """A notebook's name as docstrings write it: 03_vision_transformer -> 'chapter 3'."""
    if stem.startswith("appendix_"):
        return f"the {stem.split('_', 1)[1]} appendix"
    return {"after_mae": "the after-MAE page", "intro": "the landing page",
            "representation": "the representation chapter"}.get(
        stem, f"chapter {int(stem[:2])}" if stem[:2].isdigit() else stem)


def first_page_named(doc: str) -> str | None:
    match = PAGE_REF.search(doc)
    if match is None:
        return None
    number, appendix, after, landing, representation = match.groups()
    if number:
        return f"chapter {int(number)}"
    if appendix:
        return f"the {appendix.lower()} appendix"
    if representation:
        return "the representation chapter"
    return "the after-MAE page" if after else "the landing page"


def first_users() -> dict[tuple[str, str], str]:
    """(module, public name) -> the first page, in the book's order, whose cells use it as
    `mt.module.name` (or `mt.name`, `mt.lab.name` where the package hands it on), or name it
    as `module.name`. The landing page, a demo of everything, is not counted."""
    pages = [Path(f).name for f in re.findall(r"(?:root|file):\s*(\S+)",
                                              (ROOT / "_toc.yml").read_text())
             if (ROOT / f"{f}.ipynb").exists() and not f.endswith("intro")]
    texts = {p: "\n".join("".join(c["source"]) for c in json.loads(
        (ROOT / "book" / f"{p}.ipynb").read_text())["cells"]) for p in pages}
    found = {}
    for module, name in public_names():
        forms = [rf"\bmt\.{re.escape(module)}\.{name}\b", rf"`{re.escape(module)}\.{name}\b"]
        if name in mt.__all__:
            forms.append(rf"\bmt\.{name}\b")
        if module.startswith("lab.") and name in mt.lab.__all__:
            forms.append(rf"\bmt\.lab\.{name}\b")
        first = next((p for p in pages if any(re.search(f, texts[p]) for f in forms)), None)
        if first:
            found[module, name] = page_name(first)
    return found


def public_names() -> dict[tuple[str, str], str]:
    """(module, name) -> docstring, for every public function and class of the package."""
    import ast

    names = {}
    package = ROOT / "mae_tutorial"
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                names[module, node.name] = ast.get_docstring(node) or ""
    return names


def test_each_chapter_tag_names_the_first_chapter_that_uses_the_name():
    # like d2l's "Defined in": a reader who meets `mt.patches.patchify` in chapter 1 finds
    # "Chapters 1 and 2" in its docstring, not a later chapter
    docs, users = public_names(), first_users()
    assert users["patches", "patchify"] == "chapter 1"  # the scan finds uses
    assert users["lab.cache", "book_model"] == "chapter 5"  # through mt.lab
    wrong = {f"{m}.{n}": (first_page_named(docs[m, n]), page)
             for (m, n), page in users.items() if first_page_named(docs[m, n]) != page}
    assert wrong == {}, "docstring's first page, first page using it"


def package_imports() -> dict[str, set[str]]:
    """Each module of the package ('lab.cache', 'train', ...) -> the package modules it
    imports anywhere in its source ('lab' for the lab's own package)."""
    import ast

    found: dict[str, set[str]] = {}
    package = ROOT / "mae_tutorial"
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(package).with_suffix("").parts)
        here = name.split(".")[:-1]  # the subpackage a relative import starts from
        found[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)]
                targets = [node.module] if node.module else [a.name for a in node.names]
                found[name] |= {".".join([*base, t]) for t in targets}
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [
                    a.name for a in node.names]
                found[name] |= {n.removeprefix("mae_tutorial.") for n in names
                                if n and n.startswith("mae_tutorial.")}
    return found


def test_only_the_lab_imports_the_entry_points():
    # three layers: core and machinery, then train and evaluate (library and command line),
    # then the lab; arrows only downwards
    imports = package_imports()
    assert "train" in imports["lab.cache"] and "evaluate" in imports["lab.ablations"]
    users = sorted(m for m, targets in imports.items() if targets & {"train", "evaluate"})
    assert all(m.startswith("lab.") for m in users), users
    lab_users = sorted(m for m, targets in imports.items()
                       if any(t == "lab" or t.startswith("lab.") for t in targets))
    assert all(m == "lab" or m.startswith("lab.") for m in lab_users), lab_users


def test_every_public_name_says_which_chapter_teaches_it():
    import ast

    missing = []
    for path in sorted((ROOT / "mae_tutorial").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = (ast.get_docstring(node) or "").lower()
                if not any(word in doc for word in ("chapter", "appendix", "page")):
                    missing.append(f"{path.stem}.{node.name}")
    assert missing == []


def notebook_definitions() -> dict[str, list[str]]:
    """Each function or class name defined at the top of a chapter's code cell -> the
    notebooks that define it (magics and shell lines left out)."""
    import ast

    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
            for node in ast.parse(code).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    found.setdefault(node.name, []).append(path.stem)
    return found


def test_no_function_name_is_defined_in_two_notebooks():
    # logic two chapters need lives in the package, once; a name written twice is either that
    # logic re-typed or two different things under one name
    found = notebook_definitions()
    assert "build_writeup" in found and "nearest_visible_fill" in found  # the scan sees defs
    twice = {name: where for name, where in found.items() if len(set(where)) > 1}
    assert twice == {}, f"defined in more than one notebook: {twice}"


def test_no_cell_is_repeated_within_a_notebook():
    # a paragraph or a cell pasted twice reads as an error on the page
    repeated = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        sources = ["".join(c["source"]).strip() for c in json.loads(path.read_text())["cells"]]
        seen = [s for s in sources if s]
        twice = sorted({s[:60] for s in seen if seen.count(s) > 1})
        if twice:
            repeated[path.stem] = twice
    assert repeated == {}


def test_every_cell_has_its_own_id():
    # nbformat 4.5: a cell without an id is a warning today and an error later; two cells
    # with one id break the links and the execution cache that use it
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
        assert all(ids) and len(set(ids)) == len(ids), path.name
