"""The workbook as a student meets it: JupyterLab in a real (headless) Chromium, notebooks 01, 02
and 03 opened in turn with ``PROFILE = "smoke"`` and run with Run All.

Checks what only a browser shows: every cell ran without an error; the training bars are rendered
widgets that end full and green (never tqdm's red failure state, never "Error displaying widget" or
a raw ``HBox(...)``, also after saving and reloading); figures are images; notebook 03's study
figure and verdict sit among its visible outputs (no "Show more outputs"); notebook 01 names its
data; opening a notebook does not mark it modified; notebook 03's pruning playground answers a
move of its sparsity slider with a new accuracy.

Needs Debian's ``chromium`` (/usr/bin/chromium; ``.ci/run`` installs it) and Playwright for
Python (the ``test`` extra), which drives that Chromium: no browser is downloaded. Screenshots go
to ``$LABUTILS_SCREENSHOTS`` or the test's temporary folder; the path is printed. The helpers
(``open_notebook``, ``run_all``, ``cell_outputs``, ``cell``) are meant for further checks.
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_S = 900  # per notebook; smoke takes 20 s (01) to 2 minutes (03) on 2 cores
NOTEBOOKS = ["01_data.ipynb", "02_baseline_training.ipynb", "03_unstructured_pruning.ipynb"]
# JupyterLab settings: every cell in the DOM (windowing would detach cells out of view) and no
# news or update checks (no network here).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's chromium package (.ci/run does)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed: "
                                 "pip install -e '.[test]' (it drives /usr/bin/chromium, no browser download)")
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install -e '.[test]'")


# -- the server and the browser ------------------------------------------------------------------
@dataclass
class Lab:
    url: str
    token: str
    root: Path
    out: Path
    shots: Path

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def student_copy(src: Path, dst: Path, out: Path) -> None:
    """The notebook as a student would set it: PROFILE = "smoke" in its parameters cell, outputs
    in ``out`` (nothing lands in the repository), and the kernel's Python version in its metadata
    (JupyterLab rewrites that field when it differs)."""
    nb = nbformat.read(src, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = re.sub(r'^PROFILE = "[^"]*"', 'PROFILE = "smoke"', params.source, flags=re.M)
    params.source = re.sub(r'^OUT_DIR = "[^"]*"', f"OUT_DIR = {str(out)!r}", params.source, flags=re.M)
    assert 'PROFILE = "smoke"' in params.source and str(out) in params.source
    nb.metadata.setdefault("language_info", {})["version"] = platform.python_version()
    nbformat.write(nb, dst)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free local port, its root a temporary folder holding the
    student's copies of the notebooks; kernels import the code under test (PYTHONPATH)."""
    root = tmp_path_factory.mktemp("jupyterlab")
    out, settings, home = root / "run", root / ".settings", root / ".jupyter"
    (root / "notebooks").mkdir()
    for name in NOTEBOOKS:
        student_copy(REPO / "notebooks" / name, root / "notebooks" / name, out)
    for rel, values in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    shots = Path(os.environ.get("LABUTILS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "LABUTILS_PLAIN_PROGRESS"}  # widgets, as in JupyterLab
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               JUPYTER_CONFIG_DIR=str(home), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    port, token = free_port(), secrets.token_hex(16)
    log = open(root / "jupyterlab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],  # CI containers run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    this = Lab(f"http://127.0.0.1:{port}", token, root, out, shots)
    print(f"\nJupyterLab at {this.url} (log {root / 'jupyterlab.log'}); screenshots in {shots}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                this.api("status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield this
    finally:
        try:
            for kernel in this.api("kernels"):
                this.api(f"kernels/{kernel['id']}", "DELETE")
        except OSError:
            pass
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


# -- what a student does ------------------------------------------------------------------------------
CURRENT = "window.jupyterapp.shell.currentWidget"


def open_notebook(page, lab: Lab, name: str) -> None:
    """Open notebooks/<name> in a fresh workspace and wait until its kernel is idle."""
    page.goto(f"{lab.url}/lab/tree/notebooks/{name}?reset&token={lab.token}")
    page.wait_for_function(
        f"""() => window.jupyterapp && {CURRENT} && {CURRENT}.context && {CURRENT}.context.path.endsWith({name!r})
                  && {CURRENT}.context.isReady && {CURRENT}.sessionContext.session?.kernel?.status === 'idle'""",
        timeout=120_000)


def notebook_state(page) -> dict:
    """The open notebook as its model holds it: kernel status, dirty flag, and per cell its type,
    execution count and outputs (nbformat dicts)."""
    return page.evaluate(f"""() => {{
        const w = {CURRENT}, cells = w.content.model.cells, out = [];
        for (let i = 0; i < cells.length; i++) {{
            const c = cells.get(i), outputs = [];
            if (c.type === 'code') for (let j = 0; j < c.outputs.length; j++) outputs.push(c.outputs.get(j).toJSON());
            out.push({{type: c.type, count: c.type === 'code' ? c.executionCount : null,
                      running: c.executionState === 'running', outputs}});
        }}
        return {{status: w.sessionContext.session?.kernel?.status, dirty: w.context.model.dirty, cells: out}};
    }}""")


def run_all(page, timeout_s: float = RUN_TIMEOUT_S) -> dict:
    """Run > Run All Cells, then wait until every code cell has an execution count and the kernel
    is idle (or a cell failed: run-all stops there). Returns ``notebook_state`` plus
    ``live_bars``: the most progress widgets seen rendered at once while it ran."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    live = page.locator(".jp-NotebookPanel:visible .widget-hprogress")
    deadline, seen = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        seen = max(seen, live.count())
        state = notebook_state(page)
        code = [c for c in state["cells"] if c["type"] == "code"]
        failed = any(o["output_type"] == "error" for c in code for o in c["outputs"])
        done = all(c["count"] is not None and not c["running"] for c in code)
        if state["status"] == "idle" and (done or failed):
            page.wait_for_timeout(1000)  # let the last display updates and images render
            return notebook_state(page) | {"live_bars": seen}
    pytest.fail(f"Run All did not finish within {timeout_s:.0f} s")


def cell(page, index: int):
    """The DOM element of cell ``index`` (markdown cells count)."""
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


def cell_outputs(page, index: int) -> list[dict]:
    """The outputs of cell ``index`` as nbformat dicts (from the notebook's model)."""
    return notebook_state(page)["cells"][index]["outputs"]


def code_cell_index(state: dict, source_part: str, page) -> int:
    """Index of the first code cell whose source contains ``source_part``."""
    sources = page.evaluate(f"""() => {{ const cells = {CURRENT}.content.model.cells, s = [];
        for (let i = 0; i < cells.length; i++) s.push(cells.get(i).sharedModel.getSource()); return s; }}""")
    return next(i for i, s in enumerate(sources) if source_part in s and state["cells"][i]["type"] == "code")


def screenshot(page, lab: Lab, name: str, element=None) -> Path:
    """The whole notebook (or one ``element`` of it, e.g. ``cell(page, i)``) in one image: the
    viewport is stretched to the notebook's height, scrolled to its top."""
    scroller = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
    height = page.evaluate(f"() => {scroller}.scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 150, 16000)})
    page.evaluate(f"() => {{ {scroller}.scrollTop = 0; }}")
    page.wait_for_timeout(500)
    path = lab.shots / f"{name}.png"
    (element or page).screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    print(f"screenshot: {path}")
    return path


# -- what a student must see ---------------------------------------------------------------------------
def assert_clean_run(page, state: dict) -> None:
    """Every code cell ran; no error output, no traceback on stderr, no dead or raw widget."""
    code = [(i, c) for i, c in enumerate(state["cells"]) if c["type"] == "code"]
    assert all(c["count"] is not None for _, c in code), [i for i, c in code if c["count"] is None]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, errors
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    assert not [t for t in stderr if "Traceback" in t], stderr
    text = page.locator(".jp-NotebookPanel:visible .jp-Notebook").inner_text()
    assert "Error displaying widget" not in text
    assert not re.search(r"\bHBox\(", text), "a widget shown as raw text"


def assert_bars_finished(page, at_least: int) -> None:
    """Every progress bar ended finished: full and green, none in tqdm's failure (red) state. A
    closed bar is a static copy of its last state (see ``labutils.train.progress``); a widget still
    on the page must be full and not red either."""
    finished = page.evaluate("""() => [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .labutils-bar, .jp-NotebookPanel:not(.lm-mod-hidden) .widget-hprogress')]
        .map(el => el.classList.contains('labutils-bar')
            ? {style: el.dataset.style, full: el.dataset.fill === '1.000', text: el.innerText}
            : {style: el.querySelector('.progress-bar').className.includes('danger') ? 'danger' : 'widget',
               full: el.querySelector('.progress-bar').style.width === '100%', text: el.parentElement.innerText})""")
    assert len(finished) >= at_least, f"{len(finished)} progress bars on the page, expected {at_least}+"
    red = [b["text"] for b in finished if b["style"] == "danger"]
    assert not red, f"bars in the failure state: {red}"
    short = [b["text"] for b in finished if not b["full"]]
    assert not short, f"bars that ended short of full: {short}"
    assert all(b["style"] == "success" for b in finished if b["style"] != "widget"), finished


def assert_images(page, state: dict, at_least: int) -> None:
    """Every image output of a cell is an <img> on the page (images a widget draws into its own
    output area, like the playground's, are not the cells' outputs and are not counted)."""
    pngs = sum("image/png" in o.get("data", {}) for c in state["cells"] for o in c["outputs"])
    imgs = page.evaluate("""() => [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')]
        .filter(img => !img.closest('.widget-output')).length""")
    assert pngs >= at_least and imgs == pngs, (pngs, imgs)


def output_text(outputs: list[dict]) -> str:
    def text(o):
        if o["output_type"] == "stream":
            return "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        plain = o.get("data", {}).get("text/plain", "")
        return "".join(plain) if isinstance(plain, list) else plain
    return "".join(text(o) for o in outputs)


# -- the notebooks -----------------------------------------------------------------------------------
def test_01_data(page, lab):
    open_notebook(page, lab, NOTEBOOKS[0])
    assert not notebook_state(page)["dirty"], "opening the notebook marked it modified"
    state = run_all(page)
    screenshot(page, lab, "01_data")
    assert_clean_run(page, state)
    assert_images(page, state, at_least=3)
    everything = "".join(output_text(c["outputs"]) for c in state["cells"])
    assert "data: synthetic CIFAR-shaped data" in everything and "unknown" not in everything
    assert (lab.out / "figures" / "01_samples.png").is_file()  # OUT_DIR was honoured


def test_02_baseline_training(page, lab):
    open_notebook(page, lab, NOTEBOOKS[1])
    assert not notebook_state(page)["dirty"], "opening the notebook marked it modified"
    state = run_all(page)
    screenshot(page, lab, "02_baseline_training")
    assert_clean_run(page, state)
    assert state["live_bars"] >= 1, "no progress widget rendered while training"
    assert_bars_finished(page, at_least=2)  # cnn and vit_scratch train in smoke
    assert_images(page, state, at_least=1)
    train = code_cell_index(state, "train_baseline", page)
    assert len(cell_outputs(page, train)) <= 6  # one bar and one line per model
    # Saved and reloaded (same kernel): every bar still renders, none is a dead widget.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function(f"() => !{CURRENT}.context.model.dirty", timeout=30_000)
    open_notebook(page, lab, NOTEBOOKS[1])
    page.wait_for_timeout(3000)
    screenshot(page, lab, "02_baseline_training_reloaded")
    assert_clean_run(page, notebook_state(page))
    assert_bars_finished(page, at_least=2)
    # ...and opened again with a new kernel (the next day): still nothing that cannot render.
    for kernel in lab.api("kernels"):
        lab.api(f"kernels/{kernel['id']}", "DELETE")
    open_notebook(page, lab, NOTEBOOKS[1])
    page.wait_for_timeout(3000)
    train_cell = cell(page, train)
    screenshot(page, lab, "02_training_cell_new_kernel", train_cell)
    assert_clean_run(page, notebook_state(page))
    assert_bars_finished(page, at_least=2)


def test_03_unstructured_pruning(page, lab):
    open_notebook(page, lab, NOTEBOOKS[2])
    assert not notebook_state(page)["dirty"], "opening the notebook marked it modified"
    state = run_all(page)
    screenshot(page, lab, "03_unstructured_pruning")
    assert_clean_run(page, state)
    assert_bars_finished(page, at_least=3)
    assert_images(page, state, at_least=5)
    # The study: a handful of outputs, its figure and verdict in view without "Show more outputs".
    study = code_cell_index(state, "lab.study(", page)
    outputs = cell_outputs(page, study)
    assert len(outputs) <= 8, [o["output_type"] for o in outputs]
    assert page.locator(".jp-NotebookPanel:visible .jp-TrimmedOutputs").count() == 0
    study_cell = cell(page, study)
    screenshot(page, lab, "03_study_cell", study_cell)
    assert study_cell.locator(".jp-OutputArea-output img").is_visible()
    assert study_cell.get_by_text(re.compile(r"study: \d+ points")).first.is_visible()


PLAYGROUND_LINE = re.compile(r"probe accuracy ([\d.]+)% at ([\d.]+)% sparsity")


def test_03_playground_answers_the_slider(page, lab):
    """The live playground (notebook 03, still open from the test above): moving the sparsity
    slider prunes again and shows the new accuracy and sparsity under the controls."""
    panel = page.locator(".jp-NotebookPanel:visible")
    line = panel.get_by_text(PLAYGROUND_LINE).first
    line.wait_for(timeout=60_000)
    before = PLAYGROUND_LINE.search(line.inner_text()).groups()
    assert float(before[1]) == pytest.approx(50, abs=1)  # the slider starts at 50%
    handle = panel.locator(".widget-slider .noUi-handle").first
    handle.focus()
    handle.press("End")  # the keyboard's way to the slider's maximum: one release, one update
    page.wait_for_function(
        r"""() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-label')]
            .some(el => / at 9\d(\.\d)?% sparsity/.test(el.innerText))""", timeout=60_000)
    after = PLAYGROUND_LINE.search(line.inner_text()).groups()
    state = notebook_state(page)
    screenshot(page, lab, "03_playground", cell(page, code_cell_index(state, "playground(", page)))
    assert float(after[1]) > 90 and float(after[0]) != float(before[0]), (before, after)
    assert_clean_run(page, state)
