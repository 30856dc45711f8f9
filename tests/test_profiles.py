"""Every profile, the full one included, hands fit() only arguments it knows (and its loaders only
augmentation they know): a typo in the GPU recipe would otherwise surface only on a GPU."""
import inspect
import re

import pytest
import torch

from labutils.course import MODEL_NAMES
from labutils.data import AUGMENT_POLICIES, augmentation_of, fit_arguments
from labutils.profiles import PROFILES, auto_profile, get_profile
from labutils.train import fit

FIT_ARGS = set(inspect.signature(fit).parameters) - {"model", "train_loader", "test_loader"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_recipes_use_fit_arguments(name):
    p = get_profile(name)
    recipes = {f"train.{m}": fit_arguments(p["train"][m]) for m in MODEL_NAMES}
    recipes |= {f"unstructured.finetune.{m}": p["unstructured"]["finetune"][m] for m in MODEL_NAMES}
    recipes |= {f"structured.{m}.finetune": p["structured"][m]["finetune"] for m in MODEL_NAMES}
    for where, recipe in recipes.items():
        unknown = set(recipe) - FIT_ARGS
        assert not unknown, f"{name}: {where} has {unknown}, which fit() does not take"
    for m in MODEL_NAMES:
        augmentation = augmentation_of(p["train"][m])
        assert augmentation.get("augment") in (None, *AUGMENT_POLICIES), f"{name}: train.{m}: {augmentation}"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_covers_every_model_and_notebook(name):
    p = get_profile(name)
    assert p["name"] == name and set(p["models"]) == set(p["train"]) == set(MODEL_NAMES)
    assert {"unstructured", "structured", "quant"} <= set(p)
    # results.py labels a run by its profile's name: only full is the course's recipe (the reference
    # run); any other profile, a new one too, is reduced.
    assert p["reduced"] or name == "full", (f"REDUCED[{name!r}] is False, but only full is not reduced: a new "
                                            f"profile sets REDUCED[{name!r}] = True (its runs are labelled reduced)")
    assert name != "full" or not p["reduced"], "REDUCED['full'] must be False: full makes the reference results"


def test_unknown_profile_is_explained():
    with pytest.raises(ValueError, match="choose one of"):
        get_profile("huge")
    assert auto_profile() == ("full" if torch.cuda.is_available() else "cpu")


def test_auto_profile_follows_the_device_asked_for(monkeypatch, capsys, tmp_path):
    """--device cpu on a GPU machine is the cpu profile (it was full: 150 epochs on the CPU, into
    the repository root); --device cuda without a GPU is a clear error."""
    import torch

    from labutils.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_profile() == "full" and auto_profile("cuda") == "full" and auto_profile("cpu") == "cpu"
    from labutils import Session

    assert Session("auto", tmp_path, device="cpu").name == "cpu"  # its own folder: not the repository's runs/cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_profile() == "cpu"
    assert main(["run", "--device", "cuda", "--notebooks", "05"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err


def test_settings_print_as_wrapped_pairs():
    from labutils.profiles import format_settings

    text = format_settings(get_profile("full")["structured"]["cnn"], indent=13)
    lines = text.splitlines()
    assert len(lines) > 1 and "criterion=taylor" in lines[0] and "{'criterion'" not in text
    assert 13 + len(lines[0]) <= 100 and all(len(line) <= 100 for line in lines[1:])
    assert all(line.startswith(" " * 13) for line in lines[1:])
    # Lines break between settings, not inside one (unless one is longer than a line): each
    # line starts with a key, or continues the nested recipe above it.
    assert all(re.match(r"\w+=", line.strip()) or "finetune=" in lines[i - 1] for i, line in enumerate(lines)), text


# -- a profile's mistakes are refused before any work, each named where it is ----------------------
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_shipped_profile_passes_its_check(name):
    from labutils.profile_check import problems

    assert problems(get_profile(name)) == []


def _set(profile, path, value):
    *parents, last = path
    for key in parents:
        profile = profile[key]
    if value is DELETE:
        del profile[last]
    else:
        profile[last] = value


DELETE = object()
MISTAKES = [  # (where, value, what the message must say): each once went unnoticed or surfaced late
    (("train", "vit_scratch", "grad_clipp"), 1.0,
     'TRAIN["smoke"]["vit_scratch"]: unknown setting "grad_clipp" (did you mean "grad_clip"?)'),
    (("unstructured", "final", "cnn", "sparsity"), 95,
     'UNSTRUCTURED["smoke"]["final"]["cnn"]["sparsity"] = 95 must be a number in (0, 1) (a share: write 0.95'),
    (("unstructured", "gradual_end"), 70, 'UNSTRUCTURED["smoke"]["gradual_end"] = 70 must be a number in (0, 1]'),
    (("unstructured", "study_model"), ["cnn"], '(did you mean "study_models"?)'),
    (("unstructured", "include_first"), "no", "must be True or False"),
    (("unstructured", "rounds"), 0, 'UNSTRUCTURED["smoke"]["rounds"] = 0 must be a whole number >= 1'),
    (("train", "cnn", "epochs"), -1, 'TRAIN["smoke"]["cnn"]["epochs"] = -1 must be a whole number >= 1'),
    (("train", "cnn", "optimizer"), "adam", "must be one of 'sgd', 'adamw'"),
    (("structured", "cnn", "steps"), [50], "holds 50, which must be a number in (0, 1)"),
    (("structured", "vit", "steps"), 0.5, 'STRUCTURED["smoke"]["vit"]["steps"] = 0.5 must be a non-empty list'),
    (("structured", "cnn", "steps"), [0.5, 0.25], "must increase from one entry to the next"),
    (("structured", "cnn", "scope"), "globl", "must be one of 'uniform', 'global'"),
    (("structured", "cnn", "criterion"), "l3", "must be one of 'l1', 'l2', 'bn_scale', 'taylor'"),
    (("structured", "vit_scratch", "criterion"), "l3", "must be one of 'l1', 'l2', 'taylor'"),
    # Refused by notebook 04 only, after notebooks 02 and 03: a ViT has no BatchNorm to score.
    (("structured", "vit", "criterion"), "bn_scale", 'STRUCTURED["smoke"]["vit"]["criterion"] = \'bn_scale\' must '
     "be one of 'l1', 'l2', 'taylor' (bn_scale scores BatchNorms: the CNN only)"),
    (("structured", "vit_scratch", "criterion"), "bn_scale", "must be one of 'l1', 'l2', 'taylor' (bn_scale"),
    (("quant", "qat", "steps"), {5: 1}, "is keyed by bit widths as strings ({'4': 1}), not 5"),
    (("quant", "ptq_methods"), ["symmetric/tensor"], "must read scheme/granularity/clip"),
    (("quant", "prune", "qat_variants"), ["global"], "names 'global', which is not one of its variants"),
    (("quant", "cnn_qat_bits"), DELETE, 'QUANT["smoke"]: missing setting "cnn_qat_bits"'),
    (("models", "cnn", "widht"), 8, 'MODELS["smoke"]["cnn"]: unknown setting "widht" (did you mean "width"?)'),
    (("data", "n_train"), 0, 'DATA["smoke"]["n_train"] = 0 must be a whole number >= 1 (or None)'),
    # notebook 01's TypeError: None is "the whole split", which only CIFAR-10 has.
    (("data", "n_train"), None, 'DATA["smoke"]["n_train"] = None: synthetic data needs a count'),
    (("data", "n_test"), None, 'DATA["smoke"]["n_test"] = None: synthetic data needs a count'),
    # The run failed with advice to use the whole CIFAR-10, which it was.
    (("data",), {"source": "cifar10", "n_train": 60000, "n_test": 400},
     'DATA["smoke"]["n_train"] = 60000 is more than the 50,000 images of CIFAR-10\'s training split'),
    (("data",), {"source": "cifar10", "n_train": 1000, "n_test": 20000},
     'DATA["smoke"]["n_test"] = 20000 is more than the 10,000 images of CIFAR-10\'s test split'),
    # timm's bernoulli_ failed in notebook 02, after the CNN had trained: a rate is a probability.
    (("models", "vit_scratch", "drop_path_rate"), 10,
     'MODELS["smoke"]["vit_scratch"]["drop_path_rate"] = 10 must be a number in [0, 1) (a share: write 0.1 for 10%)'),
    (("models", "vit", "drop_path_rate"), 1.5, 'MODELS["smoke"]["vit"]["drop_path_rate"] = 1.5 must be a number in [0, 1)'),
    (("models", "vit_scratch", "mlp_ratio"), 0.0, 'MODELS["smoke"]["vit_scratch"]["mlp_ratio"] = 0.0 must be a number in (0,'),
    # Accepted, then failing minutes into a run (a loader with no batch, fit's TypeError, a grid of 9 bits)
    # or silently ignored (epochs beside steps):
    (("train", "cnn", "batch_size"), 5000, 'TRAIN["smoke"]["cnn"]["batch_size"] = 5000 is more than the '
     'profile\'s 1,000 training images (DATA["smoke"]["n_train"]): an epoch would hold no whole batch'),
    (("quant", "train", "batch_size"), 5000, 'QUANT["smoke"]["train"]["batch_size"] = 5000 is more than'),
    (("unstructured", "finetune", "cnn", "cutout"), 8, 'UNSTRUCTURED["smoke"]["finetune"]["cnn"]: unknown setting '
     '"cutout"; a fine-tune trains on its model\'s loaders: set it in TRAIN'),
    (("unstructured", "finetune", "cnn", "epochs"), 3, 'unknown setting "epochs"'),
    (("structured", "cnn", "finetune", "batch_size"), 32, 'unknown setting "batch_size"; a fine-tune trains'),
    (("quant", "qat", "cutout"), 16, 'QUANT["smoke"]["qat"]: unknown setting "cutout"'),
    (("quant", "prune", "finetune", "steps"), {"4": 2}, 'QUANT["smoke"]["prune"]["finetune"]["steps"] = '
     "{'4': 2} must be a whole number >= 1"),
    (("quant", "prune", "finetune", "refresh_every"), 1, 'unknown setting "refresh_every"'),
    (("quant", "qat", "epochs"), 3, 'QUANT["smoke"]["qat"]: give "steps" or "epochs", not both'),
    (("quant", "ptq_bits"), [4, 9], "holds 9, which must be a bit width, a whole number from 2 to 8"),
    (("train", "cnn", "weight_decay"), 5, "weight_decay\"] = 5 must be a number in [0, 1)"),
    # A misspelt mode trained eagerly, with a warning that torch.compile "is not available here":
    (("train", "cnn", "compile"), "reduce_overhead", 'TRAIN["smoke"]["cnn"]["compile"] = \'reduce_overhead\' must be '
     "True, False or a torch.compile mode: one of 'default', "),
    (("structured", "vit", "finetune", "compile"), 1, "= 1 must be True, False or a torch.compile mode"),
    # Accepted, then refused by DeviceLoader when training began: a square larger than the 32x32 image.
    (("train", "cnn", "cutout"), 40, 'TRAIN["smoke"]["cnn"]["cutout"] = 40 must be a whole number from 0 to 32'),
    # timm's bare AssertionError in notebook 02, after the CNN had trained.
    (("models", "vit_scratch", "embed_dim"), 50,
     'MODELS["smoke"]["vit_scratch"]: embed_dim 50 does not split into num_heads 3'),
    (("models", "vit", "img_size"), 40, 'MODELS["smoke"]["vit"]: img_size 40 is not a whole number of 16-pixel patches'),
    (("models",), ["vit"], 'MODELS["smoke"] must be a dict of settings'),  # no traceback from the ViT rule above
]


@pytest.mark.parametrize("path, value, said", MISTAKES, ids=["/".join(m[0]) for m in MISTAKES])
def test_a_mistake_in_a_profile_is_named_where_it_is(path, value, said):
    from labutils.profile_check import ProfileError, check_profile

    profile = get_profile("smoke")
    _set(profile, path, value)
    with pytest.raises(ProfileError) as refused:
        check_profile(profile)
    message = str(refused.value)
    assert said in message, message
    assert message.startswith("the smoke profile in labutils/profiles.py has 1 mistake:\n"), message


@pytest.mark.parametrize("path, value, said", [
    (("quant", "prune", "bits"), [[4, 2]], "holds [4, 2], which must be a bit width"),
    (("quant", "cnn_qat_bits"), [[4, 2]], "holds [4, 2], which must be a bit width"),
    (("quant", "qat_bits"), [4, [2]], "holds [2], which must be a bit width"),
    (("quant", "prune", "qat_variants"), "global_iterative", "qat_variants\"] = 'global_iterative' must be a non-empty list"),
    (("models", "vit_scratch", "embed_dim"), True, "embed_dim\"] = True must be a whole number >= 1"),
], ids=["prune-bits", "cnn_qat_bits", "qat_bits", "qat_variants", "embed_dim"])
def test_a_value_of_the_wrong_type_is_named_once_not_cross_checked(path, value, said):
    """A list for a bit width gave a traceback (unhashable type: 'list') from the cross-checks, a string
    for the list of variants one line per letter ("names 'g'..."): the cross-checks read only values
    that passed their own rule."""
    from labutils.profile_check import problems

    profile = get_profile("smoke")
    _set(profile, path, value)
    found = problems(profile)
    assert len(found) == 1 and said in found[0], found


def test_the_percent_hint_suggests_only_a_value_its_rule_takes():
    """"sparsity = 100" was told to "write 1 for 100%", which the same rule refuses."""
    from labutils.profile_check import FRACTION, SHARE, number, problems

    assert SHARE(95) == "must be a number in (0, 1) (a share: write 0.95 for 95%)"
    assert SHARE(100) == "must be a number in (0, 1)"
    assert FRACTION(100) == "must be a number in [0, 1)"  # warmup
    assert number(0, 1, low_open=True, high_open=False)(100).endswith("(a share: write 1 for 100%)")  # gradual_end
    profile = get_profile("smoke")
    profile["unstructured"]["final"]["cnn"]["sparsity"] = 100
    profile["train"]["cnn"]["warmup"] = 100
    assert [line.split(" = ")[1] for line in problems(profile)] == [
        "100 must be a number in [0, 1)", "100 must be a number in (0, 1)"]


def test_a_broken_profile_stops_the_run_and_the_notebook_before_any_work(tmp_path, monkeypatch, capsys):
    from labutils import Session, profiles
    from labutils.cli import main
    from labutils.errors import SettingsError

    broken = get_profile("smoke")
    broken["train"]["cnn"]["lr_max"] = 0.1
    monkeypatch.setitem(profiles.PROFILES, "smoke", broken)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert 'TRAIN["smoke"]["cnn"]: unknown setting "lr_max"' in err and "Fix it there" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SettingsError, match='unknown setting "lr_max"'):
        Session("smoke", out_dir=tmp_path / "nb", device="cpu")
    assert not (tmp_path / "nb").exists()


def test_the_compile_setting_takes_true_false_or_a_known_mode():
    """Any string passed, and fit then trained eagerly on a misspelt mode (review)."""
    from labutils.profile_check import recipe_problems

    documented = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    for value in (True, False, *documented):
        assert recipe_problems({"compile": value}) == [], value
    wrong = recipe_problems({"compile": "max_autotune"})
    assert len(wrong) == 1 and all(repr(mode) in wrong[0] for mode in documented), wrong
