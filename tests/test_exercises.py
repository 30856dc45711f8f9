"""The "Try it yourself" exercises that end notebooks 01, 02, 03, 04 and 06 run as written, in the
smoke profile, on a copy of the shared 01-02 smoke run: a renamed function, argument or variable
breaks them here, not in a student's hands. Each says it saves nothing; that is checked too."""
import builtins
import re
import shutil
import symtable
import textwrap
from importlib import import_module

import matplotlib.pyplot as plt
import nbformat
import pytest

from labutils import Session
from labutils.artifacts import REPO_ROOT

LABS = {"01_data": "data", "02_baseline_training": "baseline", "03_unstructured_pruning": "unstructured",
        "04_structured_pruning": "structured", "06_quantization": "quantization"}


def _notebook(stem: str):
    return nbformat.read(REPO_ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


def exercises(stem: str) -> list[str]:
    """The python blocks of the notebook's last cell, the "Try it yourself" one."""
    last = _notebook(stem).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Try it yourself\n"), stem
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", last.source, re.S)]
    assert blocks, f"{stem}: no python block in its exercises"
    return blocks


def module_names(code: str) -> tuple[set[str], set[str]]:
    """(names the code reads from its module's scope without binding them, names it binds there),
    from Python's own symbol table: a function's parameters and locals are its own."""
    top = symtable.symtable(code, "exercise", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read = set()

    def walk(table):
        read.update(s.get_name() for s in table.get_symbols()
                    if s.is_referenced() and (table is top or s.is_global()))
        for child in table.get_children():
            walk(child)

    walk(top)
    return read - bound, bound


def notebook_names(stem: str) -> set[str]:
    """What the notebook's code cells bind at top level (IPython magics and shell lines dropped)."""
    code = "\n".join(line for c in _notebook(stem).cells if c.cell_type == "code"
                     for line in c.source.splitlines() if not line.lstrip().startswith(("!", "%")))
    return module_names(code)[1]


@pytest.mark.parametrize("stem", LABS)
def test_exercises_use_only_what_their_notebook_defines(stem):
    """Each block, pasted in its turn, finds its names: in the notebook above or in earlier blocks."""
    known = notebook_names(stem) | set(dir(builtins))
    for i, block in enumerate(exercises(stem), 1):
        read, bound = module_names(block)
        assert read <= known, f"{stem}, exercise block {i}, uses {sorted(read - known)} from nowhere above it"
        known |= bound


def test_a_functions_own_names_do_not_count_as_the_notebooks():
    read, bound = module_names("def f(scores):\n    return [s for s in scores] + torch_ones\nprint(scores)")
    assert read == {"scores", "torch_ones", "print"} and bound == {"f"}


def _snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _namespace(stem: str, s: Session) -> dict:
    """The names the exercises take from their notebook, made as the notebook makes them."""
    params = next(c for c in _notebook(stem).cells if "parameters" in c.metadata.get("tags", []))
    ns: dict = {}
    exec(params.source, ns)  # the notebook's defaults (MODELS, STUDY_EPOCHS...)
    lab = import_module(f"labutils.labs.{LABS[stem]}")
    ns.update(s=s, lab=lab)
    if stem.startswith("01"):
        ns["originals"] = lab.load(s)["train_x"][:6]
    elif stem.startswith("02"):
        ns["results"] = lab.recorded(s)  # as its Results cell reads them
    elif stem.startswith("03"):
        ns["subjects"] = lab.load_subjects(s, ns["MODELS"])
        ns["sweeps"] = {name: lab.sweep(subject) for name, subject in ns["subjects"].items()}
    elif stem.startswith("06"):
        ns["cfg"] = lab.config(s)
        ns["model"], _ = lab.resnet20_baseline(s)
        ns["train"], ns["test"] = lab.loaders(s)
    return ns


@pytest.mark.slow
@pytest.mark.parametrize("stem", LABS)
def test_exercises_run_and_save_nothing(stem, smoke_run, tmp_path, capsys):
    run = shutil.copytree(smoke_run, tmp_path / "run")
    s = Session("smoke", run)
    ns = _namespace(stem, s)
    before = _snapshot(run)
    plt.close("all")
    for block in exercises(stem):
        exec(compile(block, f"{stem} exercise", "exec"), ns)
    assert _snapshot(run) == before  # "saves nothing"
    printed = capsys.readouterr().out
    if stem.startswith("01"):
        assert len(plt.get_fignums()) == 3  # a figure per set of draws
    if stem.startswith("02"):
        assert len(ns["longer"]) == 2 * s.train_config("cnn")["epochs"]
        assert printed.count("nothing saved") == 5 and "cutout=16" in printed
    if stem.startswith("03"):
        assert re.search(r"yours \d+\.\d+%, global magnitude \d+\.\d+%, layer-wise \d+\.\d+% at 90%", printed)
        assert {r["sparsity"] for r in ns["rows"]} == {0.95, 0.98}
        assert "study" not in ns["subjects"]["cnn"].results  # nor the final recipe's choice of method
        assert re.search(r"yours removes \d+\.\d+% of the weights; \d+ weights differ", printed)
        assert all(re.search(rf"{label} +\d+\.\d+%", printed) for label in ("2:4", "global 50%", "layer-wise 50%"))
    if stem.startswith("04"):
        assert ns["steps"][-1]["pruning_percentage"] > ns["steps"][0]["pruning_percentage"] >= 40
        assert "cnn (the architecture given, new random weights) with the recipe unchanged" in printed
        assert "pruned and fine-tuned" in printed
    if stem.startswith("06"):
        assert "PTQ symmetric/channel/minmax" in printed and "QAT asymmetric/tensor/minmax" in printed


def test_notebook_01s_augmentation_exercises_name_their_policy_on_each_figure():
    """RandAugment's, AutoAugment's and Cutout's figures had no title: such figures look alike (review)."""
    import ast

    calls = [node for block in exercises("01_data") for node in ast.walk(ast.parse(block))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "plot_augmentation"]
    assert len(calls) == 3
    for call in calls:
        title = call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "title"), None)
        assert isinstance(title, ast.Constant) and title.value, ast.unparse(call)


def test_notebook_02s_augmentation_exercise_trains_the_cnn_beside_the_vit():
    """"Does TrivialAugment help the ViT more than it helps the CNN?" ran the ViT alone (review)."""
    block = exercises("02_baseline_training")[2]
    assert re.findall(r'try_recipe\(s, "(\w+)", augment="trivialaugment"\)', block) == ["cnn", "vit_scratch"]


def test_notebook_04s_scratch_exercise_draws_the_same_weights_whatever_ran_before(tmp_path, monkeypatch):
    """Exercise 3 built its random model before try_recipe seeded: its weights hung on the cells run
    before, and two runs gave 30.00% and 28.50% (review). Here the training is left out: the
    weights it would start from are compared."""
    import torch

    from labutils.errors import SettingsError
    from labutils.labs import baseline

    drawn = []

    def weights_only(session, name, model, recipe, desc):
        drawn.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.3, "test_accuracy": 0.3}], None, 0.0

    monkeypatch.setattr(baseline, "_train", weights_only)
    s = Session("smoke", tmp_path / "run", "", "cpu", 0, ["cnn"])
    small = s.new_model("cnn")
    for _ in range(2):
        torch.rand(7)  # whatever ran before
        exec(exercises("04_structured_pruning")[2], {"s": s, "small": small, "steps": [{"accuracy": 0.3}]})
    assert len(drawn) == 2 and torch.equal(*drawn)
    with pytest.raises(SettingsError, match=r"arch is a model's \.arch record, such as small\.arch: got 'resnet18'"):
        baseline.try_recipe(s, "cnn", arch="resnet18")
    with pytest.raises(SettingsError, match="give one of model, arch and pretrained_weights, not several"):
        baseline.try_recipe(s, "cnn", model=small, arch=small.arch)


def test_notebook_06s_qat_exercise_fine_tunes_on_the_grid_the_seed_fine_tuned_on():
    """Exercise 2, "Fine-tuning on the seed's grid", ran QAT on a symmetric grid: the seed's QAT
    rows are all asymmetric (review). The number it quotes is the seed's."""
    from labutils.labs.quantization import SEED_RESULTS

    block = exercises("06_quantization")[1]
    method, bits = re.search(r'qat_sweep\(model, train, test, "([^"]+)", \[(\d)\]', block).groups()
    assert method == "asymmetric/tensor/minmax" and set(SEED_RESULTS["qat"]) == {"asymmetric"}
    text = _notebook("06_quantization").cells[-1].source
    assert f"`QAT asymmetric {bits}b` row, {SEED_RESULTS['qat']['asymmetric'][int(bits)]:.2%}" in text


def test_try_recipe_names_what_a_recipe_may_change(tmp_path):
    from labutils.labs import baseline

    with pytest.raises(ValueError, match="cannot change epoch: a recipe holds epochs, lr"):
        baseline.try_recipe(Session("smoke", tmp_path / "run"), "cnn", epoch=3)


def test_load_subjects_for_an_exercise_writes_nothing_and_refuses_a_wrong_name(tmp_path, capsys):
    """Exercise 2 of notebook 03 calls load_subjects: for a model outside MODELS it wrote a 'baseline
    not produced' record into the run (notebook 05 then reported that model as failed, not as left
    out), and "cnn" (a string) wrote records for 'c' and 'n', saying to run notebook 02."""
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as lab

    s = Session("smoke", tmp_path / "run", "", "cpu", 0, ["cnn"])
    before = sorted((tmp_path / "run").rglob("*"))
    assert lab.load_subjects(s, ["vit_scratch"]) == {}
    assert "vit_scratch  skipped: no before_pruning checkpoint in this run (not in this run's MODELS)" in capsys.readouterr().out
    assert sorted((tmp_path / "run").rglob("*")) == before
    for wrong in ("cnn", ["resnet"]):
        with pytest.raises(SettingsError):
            lab.load_subjects(s, wrong)
    assert sorted((tmp_path / "run").rglob("*")) == before
    with pytest.raises(SettingsError, match="no baseline of this run"):  # 02 not run: nothing recorded
        lab.load_subjects(s, ["cnn"])
    assert sorted((tmp_path / "run").rglob("*")) == before
    s.record_missing("cnn", "before_pruning", "diverged")  # 02 ran and produced no cnn
    lab.load_subjects(s, ["cnn"])  # a model of the run without its baseline: recorded, as notebook 03 does
    assert (tmp_path / "run" / "metrics" / "cnn_after_unstructured_pruning.json").is_file()


def test_exercise_helpers_refuse_bad_arguments_in_words():
    """A method given as a string was iterated letter by letter ("method 's' must read ..."), bits
    as a number failed inside tqdm, n > m in an N:M pattern was torch's 'index k out of range', and
    cutout="16" a TypeError deep in the crop."""
    import numpy as np
    import torch

    from labutils.errors import SettingsError
    from labutils.labs import data as data_lab
    from labutils.labs import quantization as quant_lab
    from labutils.prune.schedules import nm_masks

    with pytest.raises(SettingsError, match="ptq_sweep's methods is a list of strings, such as"):
        quant_lab.ptq_sweep(torch.nn.Linear(2, 2), None, "symmetric/channel/minmax", [4])
    with pytest.raises(SettingsError, match=r"ptq_sweep's bits is a list of bit widths, such as \[4, 2\]: got 4"):
        quant_lab.ptq_sweep(torch.nn.Linear(2, 2), None, ["symmetric/channel/minmax"], 4)
    # Exercise 2 copied from exercise 1: qat_sweep takes one method, and its bits as a list too.
    with pytest.raises(SettingsError, match=r"qat_sweep takes one method, a string .* got \['symmetric/tensor/minmax'\]"):
        quant_lab.qat_sweep(torch.nn.Linear(2, 2), None, None, ["symmetric/tensor/minmax"], [3], {})
    with pytest.raises(SettingsError, match=r"qat_sweep's bits is a list of bit widths, such as \[4, 2\]: got 3"):
        quant_lab.qat_sweep(torch.nn.Linear(2, 2), None, None, "symmetric/tensor/minmax", 3, {})
    with pytest.raises(SettingsError, match=r"float_control's bits is a list of bit widths"):
        quant_lab.float_control(torch.nn.Linear(2, 2), None, None, 3, {})
    with pytest.raises(ValueError, match="keeps n of every m weights, 1 <= n <= m: got n=4, m=2"):
        nm_masks({"w": torch.rand(4, 8)}, 4, 2)
    with pytest.raises(SettingsError, match="cutout='16' must be a whole number from 0 to 32"):
        data_lab.augmentation_draws(np.zeros((2, 3, 32, 32), np.uint8), cutout="16")


def test_settings_an_exercise_edits_by_hand_are_checked_for_misspelt_keys():
    """include_frist=True left the first conv dense, compare_share ran the default shares and
    step_epoch fine-tuned 0 epochs, each without a word (student walkthrough)."""
    from labutils.errors import SettingsError
    from labutils.labs import structured as S
    from labutils.labs import unstructured as U
    import numpy as np

    from labutils.profiles import get_profile

    profile = get_profile("smoke")
    recipe = profile["structured"]["cnn"] | {"scope": "global", "compare_share": [0.25]}
    with pytest.raises(SettingsError, match='unknown setting "compare_share" \\(did you mean "compare_shares"\\?\\)'):
        S.compare_criteria(None, None, None, recipe)
    with pytest.raises(SettingsError, match='unknown setting "step_epoch" \\(did you mean "step_epochs"\\?\\)'):
        S.cut_and_finetune(None, None, None, profile["structured"]["vit_scratch"] | {"step_epoch": 1}, "cpu")
    # Keys only: fewer settings, numpy's values or half an epoch are an exercise's to try.
    from labutils.profile_check import check_settings
    check_settings("structured", {"compare": ["l1"], "compare_shares": np.linspace(0.25, 0.75, 3), "step_epochs": np.int64(1)})
    check_settings("unstructured", {"frontier": {"epochs": 0.5}, "sweep_levels": np.linspace(0.1, 0.8, 8)})
    subject = U.Subject("cnn", None, None, None, None, 0.5, dict(profile["unstructured"], include_frist=True))
    with pytest.raises(SettingsError, match='cnn\'s cfg: unknown setting "include_frist" \\(did you mean "include_first"\\?\\)'):
        U.sweep(subject)


def test_a_true_or_false_setting_edited_by_hand_refuses_a_string():
    """include_first="yes" was read as true without a word (review): the keys were checked, not the flags."""
    from labutils.errors import SettingsError
    from labutils.profile_check import check_settings
    from labutils.profiles import get_profile

    cfg = dict(get_profile("smoke")["unstructured"], include_first="yes", include_classifier="False")
    with pytest.raises(SettingsError, match=r'^cfg\["include_first"\] = \'yes\' must be True or False\n'
                                            r'cfg\["include_classifier"\] = \'False\' must be True or False$'):
        check_settings("unstructured", cfg)
    check_settings("unstructured", {"include_first": True, "sweep_levels": [0.5]})  # other values stay free


def test_a_nested_true_or_false_setting_edited_by_hand_refuses_a_string():
    """finetune.cnn.graphs = "no" (unstructured) or a recipe's finetune.graphs = "no" was read as true:
    only the top level's True/False settings were checked (review)."""
    from labutils.errors import SettingsError
    from labutils.profile_check import check_settings
    from labutils.profiles import get_profile

    profile = get_profile("smoke")
    cfg = profile["unstructured"]
    cfg = dict(cfg, finetune=dict(cfg["finetune"], cnn=dict(cfg["finetune"]["cnn"], graphs="no")))
    with pytest.raises(SettingsError, match=r'^cfg\["finetune"\]\["cnn"\]\["graphs"\] = \'no\' must be True or False$'):
        check_settings("unstructured", cfg)
    recipe = profile["structured"]["cnn"]
    with pytest.raises(SettingsError, match=r'^cfg\["finetune"\]\["graphs"\] = \'no\' must be True or False$'):
        check_settings("structured", recipe | {"finetune": recipe["finetune"] | {"graphs": "no"}})
    check_settings("structured", recipe | {"finetune": recipe["finetune"] | {"graphs": False, "epochs": 0.5}})


def test_a_vits_cut_line_says_heads_and_mlp_neurons_not_channels():
    """"cut 1 removes 33.8% of channels (33.3% of heads)": 33.8% counted heads and MLP neurons
    together, while report.json's share is the heads'. (Here as the exercises cut ViTs too: the
    line's tests would sit beside notebook 04's ``_point`` in test_notebook_04.py.)"""
    from labutils.labs import structured as S
    from labutils.prune.structured import Group

    groups = {"b.heads": Group("b.heads", "heads", 3, [], [], [], channels_per_unit=4),
              "b.mlp": Group("b.mlp", "mlp", 12, [], [], [])}
    said = S._cut_shares({"b.heads": 3, "b.mlp": 12}, {"b.heads": 2, "b.mlp": 7}, groups)
    assert said == "33.3% of heads (and 41.7% of MLP neurons)"  # together 37.5% of channels
    cnn = {"c": Group("c", "inner", 8, [], [], [])}
    assert S._cut_shares({"c": 8}, {"c": 6}, cnn) == "25.0% of channels"


def test_a_study_list_passed_with_papermills_p_says_to_use_y():
    """papermill's -p makes "[1]" a string; the message said to use a list, which the student had typed."""
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as U

    with pytest.raises(SettingsError, match=r"""STUDY_EPOCHS = '\[1\]': .* \(with papermill, a list goes with -y: -y "STUDY_EPOCHS: \[3, 5\]"; -p passes a string\)"""):
        U.check_study([0.5], "[1]")
    with pytest.raises(SettingsError, match=r"use a non-empty list of epoch counts above 0, such as \[3, 5\]$"):
        U.check_study([0.5], [0])


@pytest.mark.parametrize("stem", ["02_baseline_training", "03_unstructured_pruning", "04_structured_pruning"])
def test_exercises_on_the_runs_cnn_say_to_keep_it_in_models(stem):
    """Notebooks 02 and 04's exercises failed in a --models vit_scratch run; only 03's intro said why (review)."""
    intro = " ".join(_notebook(stem).cells[-1].source.split("\n1. ")[0].split())
    assert 'keep `"cnn"` in `MODELS`' in intro


def test_notebook_02s_first_exercise_reads_the_cnn_baseline_before_training(tmp_path):
    """A --models vit_scratch run: the doubled-epoch training ran (minutes on a GPU), and only then
    results["cnn"] failed with a bare KeyError (review)."""
    from types import SimpleNamespace

    s = Session("smoke", tmp_path, device="cpu", models=["vit_scratch"])
    trained = []
    lab = SimpleNamespace(try_recipe=lambda *args, **changes: trained.append(args),
                          plot_learning_curves=lambda *args, **kwargs: None)
    ns = {"s": s, "lab": lab, "results": s.recorded("before_pruning", "x")}
    with pytest.raises(KeyError, match=r"no 'cnn' record: cnn is not in this run's MODELS \(vit_scratch\)"):
        exec(exercises("02_baseline_training")[0], ns)
    assert not trained
