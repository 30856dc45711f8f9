"""Every profile, the full one included, hands fit() only arguments it knows: a typo in the GPU
recipe would otherwise surface only on a GPU."""
import inspect

import pytest

from labutils.course import MODEL_NAMES
from labutils.profiles import PROFILES, auto_profile, get_profile
from labutils.train import fit

FIT_ARGS = set(inspect.signature(fit).parameters) - {"model", "train_loader", "test_loader"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_recipes_use_fit_arguments(name):
    p = get_profile(name)
    recipes = {f"train.{m}": {k: v for k, v in p["train"][m].items() if k != "batch_size"} for m in MODEL_NAMES}
    recipes |= {f"unstructured.finetune.{m}": p["unstructured"]["finetune"][m] for m in MODEL_NAMES}
    recipes |= {f"structured.{m}.finetune": p["structured"][m]["finetune"] for m in MODEL_NAMES}
    for where, recipe in recipes.items():
        unknown = set(recipe) - FIT_ARGS
        assert not unknown, f"{name}: {where} has {unknown}, which fit() does not take"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_covers_every_model_and_notebook(name):
    p = get_profile(name)
    assert p["name"] == name and set(p["models"]) == set(p["train"]) == set(MODEL_NAMES)
    assert {"unstructured", "structured", "quant"} <= set(p)
    assert p["reduced"] == (name != "full")


def test_unknown_profile_is_explained():
    with pytest.raises(ValueError, match="choose one of"):
        get_profile("huge")
    assert auto_profile() in ("cpu", "full")
