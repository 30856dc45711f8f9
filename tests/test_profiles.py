"""Every profile, the full one included, hands fit() only arguments it knows (and its loaders only
augmentation they know): a typo in the GPU recipe would otherwise surface only on a GPU."""
import inspect

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
    assert p["reduced"] == (name != "full")


def test_unknown_profile_is_explained():
    with pytest.raises(ValueError, match="choose one of"):
        get_profile("huge")
    assert auto_profile() == ("full" if torch.cuda.is_available() else "cpu")


def test_auto_profile_follows_the_device_asked_for(monkeypatch, capsys):
    """--device cpu on a GPU machine is the cpu profile (it was full: 150 epochs on the CPU, into
    the repository root); --device cuda without a GPU is a clear error."""
    import torch

    from labutils.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_profile() == "full" and auto_profile("cuda") == "full" and auto_profile("cpu") == "cpu"
    from labutils import Session

    assert Session("auto", device="cpu").name == "cpu"
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
