"""The layout a reader relies on: one lab module per notebook, imported the same way, and a library
below the labs that never imports them."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labutils"
LABS = {"01_data": "data", "02_baseline_training": "baseline", "03_unstructured_pruning": "unstructured",
        "04_structured_pruning": "structured", "05_report": "report", "06_quantization": "quantization"}


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the labutils modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names |= {module} | {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("labutils")}


def test_the_import_detector_resolves_relative_imports(tmp_path):
    names = _imported_modules(PACKAGE / "labs" / "structured.py")
    assert "labutils.prune.structured" in names and "labutils.session" in names


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if "labs" not in p.parts),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_library_module_imports_a_lab(path):
    assert not [n for n in _imported_modules(path) if n.startswith("labutils.labs")]


def test_one_lab_per_notebook():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks == sorted(LABS)
    # One lab per notebook; notebook 03's live playground is a widget its lab shows (lab.playground).
    assert sorted(p.stem for p in (PACKAGE / "labs").glob("*.py") if p.stem != "__init__") == sorted(
        [*LABS.values(), "playground"])


@pytest.mark.parametrize("notebook", sorted(LABS))
def test_a_notebook_imports_only_session_and_its_lab(notebook):
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    imports = sorted({i.strip() for i in re.findall(r"^\s*(?:from\s+\S+\s+)?import\s+.+$", code, re.M)})
    assert imports == sorted(["from labutils import Session",
                              f"from labutils.labs import {LABS[notebook]} as lab",
                              "import os, subprocess", "import sys"]), imports  # the Colab cell


def _colab_cells() -> list[str]:
    return ["".join(next(c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")["source"])
            for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def _run_colab_cell(monkeypatch, tmp_path, repo: str, existing: bool) -> list[list[str]]:
    """Runs the first cell as Colab would (google.colab imported), with /content/workbook moved to
    tmp_path and git/pip recorded instead of run; returns the commands."""
    workbook = tmp_path / "workbook"
    if existing:
        (workbook / "notebooks").mkdir(parents=True)
    commands = []

    def run(cmd, check):
        assert check  # a failed clone or install must stop the cell, not surface later as ModuleNotFoundError
        commands.append(cmd)
        if cmd[:2] == ["git", "clone"]:
            (workbook / "notebooks").mkdir(parents=True)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    source = _colab_cells()[0].replace("/content/workbook", str(workbook))
    source = source.replace("https://github.com/your-org/pruning-workbook", repo)
    exec(compile(source, "colab-cell", "exec"), {})
    assert sys.path[0] == str(workbook) and Path.cwd() == workbook / "notebooks"
    return commands


def test_every_notebook_starts_with_the_same_colab_cell():
    assert len(set(_colab_cells())) == 1


def test_every_parameters_cell_says_the_same_and_where_each_parameter_is_read():
    """The cell's comments said nothing of which notebooks read MODELS and VIT_WEIGHTS; they say it
    now, and the notebooks' code must agree (01 and 06 never read MODELS, 02 alone VIT_WEIGHTS)."""
    from labutils.pipeline import NOTEBOOK_DEFAULTS

    shared, readers = set(), {"MODELS": set(), "VIT_WEIGHTS": set()}
    for stem in LABS:
        cells = [c for c in json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
                 if c["cell_type"] == "code"]
        params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        shared.add("\n".join("".join(params["source"]).splitlines()[:len(NOTEBOOK_DEFAULTS)]))  # 03 adds its own
        code = "\n".join("".join(c["source"]) for c in cells if c is not params)
        for name in readers:
            if re.search(rf"\b{name}\b", code):
                readers[name].add(stem[:2])
    assert len(shared) == 1
    lines = {line.split(" = ")[0]: line for line in shared.pop().splitlines()}
    assert readers["MODELS"] == {"02", "03", "04", "05"}
    assert lines["MODELS"].endswith("# notebooks 02-05 (01 and 06 do not use it)")
    assert readers["VIT_WEIGHTS"] == {"02"} and "# notebook 02 only: " in lines["VIT_WEIGHTS"]


def test_the_colab_cell_clones_installs_and_makes_labutils_importable_at_once(monkeypatch, tmp_path):
    commands = _run_colab_cell(monkeypatch, tmp_path, "https://example.org/me/workbook", existing=False)
    assert commands == [["git", "clone", "-q", "https://example.org/me/workbook", str(tmp_path / "workbook")],
                        [sys.executable, "-m", "pip", "install", "-q", "-e", str(tmp_path / "workbook")]]


def test_the_colab_cell_reuses_an_existing_clone(monkeypatch, tmp_path, capsys):
    commands = _run_colab_cell(monkeypatch, tmp_path, "https://github.com/your-org/pruning-workbook", existing=True)
    assert [c[:2] for c in commands] == [[sys.executable, "-m"]]
    assert "using the clone at" in capsys.readouterr().out


def test_the_colab_cell_stops_on_the_placeholder_address(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="set WORKBOOK_REPO"):
        _run_colab_cell(monkeypatch, tmp_path, "https://github.com/your-org/pruning-workbook", existing=False)


@pytest.mark.parametrize("lab", sorted(LABS.values()))
def test_each_lab_says_what_its_notebook_teaches(lab):
    doc = ast.get_docstring(ast.parse((PACKAGE / "labs" / f"{lab}.py").read_text()))
    notebook = next(n for n, l in LABS.items() if l == lab)
    assert doc and doc.startswith(f"Notebook {notebook[:2]}") and "teaches" in doc and "Library pieces" in doc


def test_readme_maps_each_notebook_to_its_lab():
    readme = (ROOT / "README.md").read_text()
    for notebook, lab in LABS.items():
        assert re.search(rf"`{notebook}\.ipynb`.*\[`labs/{lab}\.py`\]\(labutils/labs/{lab}\.py\)", readme), notebook


def test_the_product_points_nowhere_outside_the_repository():
    """A user's clone has nothing beside it: no code, doc, message or notebook may send them to a
    folder outside the repository (such as the course machines' ../shared)."""
    product = [*PACKAGE.rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "docs").rglob("*.md"),
               *(ROOT / "benchmarks").rglob("*.md"), *(ROOT / "benchmarks").rglob("*.py"),
               *(ROOT / "benchmarks").rglob("*.sh"), ROOT / "README.md", ROOT / "environment.yml",
               ROOT / "pyproject.toml"]
    offenders = [str(p.relative_to(ROOT)) for p in product if re.search(r"\.\./shared\b", p.read_text())]
    assert not offenders, offenders


def test_the_conda_environment_installs_what_pip_does():
    """README's conda line must give the same tests as its pip line: every dependency, with its
    least version, and the test and lab extras."""
    yml = (ROOT / "environment.yml").read_text()
    conda = dict(re.findall(r"^  - ([A-Za-z0-9_.-]+)(\S*)", yml, re.M))
    conda["torch"] = conda.pop("pytorch")
    toml = (ROOT / "pyproject.toml").read_text()
    listed = re.search(r"^dependencies = \[(.*?)\]", toml, re.S | re.M).group(1)
    listed += re.search(r"^test = \[(.*?)\]", toml, re.M).group(1)
    listed += re.search(r"^lab = \[(.*?)\]", toml, re.M).group(1)  # was "jupyterlab", no least version
    for spec in re.findall(r'"([^"]+)"', listed):
        name, version = re.match(r"([A-Za-z0-9_.-]+)(\S*)", spec).groups()
        if name in ("playwright", "airbench"):  # pip-only: the test extra brings them
            continue
        assert name in conda and conda[name] == version, f"environment.yml: {name}{version}"
    assert re.search(r"^      - -e \.\[test\]", yml, re.M)


def test_the_cpu_profiles_time_is_the_readmes_wherever_it_is_given():
    """session.py's note and profiles.py said "about 26 minutes" where the README says "26 to 34"."""
    row = re.search(r"^\| `cpu` \|.*$", (ROOT / "README.md").read_text(), re.M).group(0)
    time = re.search(r"\d+ to \d+ minutes on \d+ cores", row).group(0)
    for path in (PACKAGE / "session.py", PACKAGE / "profiles.py"):
        text = " ".join(path.read_text().split())  # a docstring wraps its lines
        assert time in text and "about 26 minutes" not in text, path.name
