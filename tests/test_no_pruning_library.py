"""The course forbids PyTorch's built-in pruning module: no code in labutils, the benchmarks or the notebooks
uses it."""
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = "torch.nn.utils.prune"


def _imports_and_attributes(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute):
            parts = []
            while isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name):
                names.add(".".join([node.id, *reversed(parts)]))
    return names


def _code_cells(path: Path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            # IPython magics (!, %) are not Python: drop those lines before parsing.
            yield "\n".join(l for l in "".join(cell["source"]).splitlines() if not l.strip().startswith(("!", "%")))


def test_detector_finds_the_forbidden_module():
    assert any(n.startswith(FORBIDDEN) for n in _imports_and_attributes("import torch\ntorch.nn.utils.prune.l1_unstructured(m, 'w', 0.5)"))
    assert any(n.startswith(FORBIDDEN) for n in _imports_and_attributes("from torch.nn.utils import prune"))


def test_labutils_benchmarks_and_notebooks_do_not_use_it():
    sources = {p: p.read_text() for folder in ("labutils", "benchmarks") for p in (ROOT / folder).rglob("*.py")}
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        sources.update({f"{nb}#{i}": code for i, code in enumerate(_code_cells(nb))})
    offenders = [where for where, code in sources.items()
                 if any(n.startswith(FORBIDDEN) for n in _imports_and_attributes(code))]
    assert not offenders, offenders
