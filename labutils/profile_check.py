"""A profile of ``labutils/profiles.py`` checked before any work: every setting known, every value
of the right kind and range. Each mistake is named by its table, profile and key, with what to write
instead. Without this check, a typo in a recipe surfaced minutes into a run as a bare TypeError.
Some mistakes never surfaced at all: ``gradual_end: 70`` pruned nothing, and a misspelt
``study_models`` ran the study on every model."""
from __future__ import annotations

import difflib
import inspect
import math
from numbers import Real

from .course import MODEL_NAMES
from .errors import Explained

# The tables of profiles.py, by the section name a profile gives them.
TABLES = {"data": "DATA", "models": "MODELS", "train": "TRAIN", "unstructured": "UNSTRUCTURED",
          "structured": "STRUCTURED", "quant": "QUANT"}


class ProfileError(Explained, ValueError):
    """A profile in labutils/profiles.py that cannot work."""


# -- rules: each returns what is wrong with a value, or None -------------------------------------
def whole(minimum: int = 1, none: bool = False, maximum: int | None = None):
    def rule(v):
        if (v is None and none) or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                    and (maximum is None or v <= maximum)):
            return None
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        return f"must be a whole number {bounds}" + (" (or None)" if none else "")
    return rule


def number(low: float = 0.0, high: float = math.inf, low_open: bool = False, high_open: bool = True,
           none: bool = False, share_hint: bool = True):
    def rule(v):
        if v is None and none:
            return None
        ok = isinstance(v, Real) and not isinstance(v, bool) and (v > low if low_open else v >= low) \
            and (v < high if high_open else v <= high)
        if ok:
            return None
        where = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        # Only a share the rule takes: "write 1 for 100%" for a sparsity, which must stay below 1, misled.
        hint = (f" (a share: write {v / 100:g} for {v:g}%)" if share_hint and high == 1 and real_number(v) and 1 < v <= 100
                and rule(v / 100) is None else "")
        return f"must be a number in {where}{hint}"
    return rule


def real_number(v) -> bool:
    """A real number that is not True/False (bool is an int to Python)."""
    return isinstance(v, Real) and not isinstance(v, bool)


SHARE = number(0, 1, low_open=True)  # a share removed: more than nothing, less than all
FRACTION = number(0, 1)              # a part of a schedule or a probability: 0 allowed
POSITIVE = number(0, low_open=True)


def _bits(v):
    from .quant import MAX_BITS, MIN_BITS

    ok = isinstance(v, int) and not isinstance(v, bool) and MIN_BITS <= v <= MAX_BITS
    return None if ok else f"must be a bit width, a whole number from {MIN_BITS} to {MAX_BITS}"


BITS = _bits


def _compile_mode(v):
    """True, False or a mode torch.compile knows: a misspelt mode ("reduce_overhead") trained
    eagerly, with a warning that blamed the platform."""
    from .accel import compile_modes, known_compile_mode

    if isinstance(v, bool) or known_compile_mode(v):
        return None
    return f"must be True, False or a torch.compile mode: one of {', '.join(map(repr, compile_modes()))}"


def choice(*options):
    def rule(v):
        return None if v in options else f"must be one of {', '.join(map(repr, options))}"
    return rule


def flag(v):
    return None if isinstance(v, bool) else "must be True or False"


def list_of(rule, increasing: bool = False):
    def check(v):
        if not isinstance(v, (list, tuple)) or not v:
            return "must be a non-empty list"
        for item in v:
            if (why := rule(item)) is not None:
                return f"holds {item!r}, which {why}"
        if increasing and any(b <= a for a, b in zip(v, v[1:])):
            return "must increase from one entry to the next"
        return None
    return check


def quant_method(v):
    from .quant import QuantSpec

    try:
        QuantSpec.parse(v, 8)
    except (ValueError, TypeError, AttributeError) as err:
        return f"is not a method: {err}"
    return None


def bits_map(v):
    """QAT's epochs or steps: one number, or one per bit width keyed by its string ({"4": 1})."""
    if not isinstance(v, dict):
        return whole(1)(v)
    bad = [k for k in v if not (isinstance(k, str) and k.isdigit())]
    if bad:
        return f"is keyed by bit widths as strings ({{'4': 1}}), not {bad[0]!r}"
    wrong = [k for k, n in v.items() if whole(1)(n)]
    return f"gives {v[wrong[0]]!r} for {wrong[0]} bits, which must be a whole number >= 1" if wrong else None


# -- schema nodes ---------------------------------------------------------------------------------
class Keys:
    """A dict with these keys (``optional`` may be left out); ``extra`` keys are allowed too."""

    def __init__(self, rules: dict, optional=(), extra: dict | None = None):
        self.rules, self.optional, self.extra = rules, set(optional), extra or {}


class Each:
    """A dict whose every value follows one node (its keys are names the instructor chooses)."""

    def __init__(self, node):
        self.node = node


def per_model(node) -> Keys:
    return Keys({m: node for m in MODEL_NAMES})


def _fit_rules() -> dict:
    """Rules for the arguments of ``train.fit`` that recipes use; any other fit argument is
    accepted as it is (fit checks it)."""
    from .data import AUGMENT_POLICIES, AUGMENTATION
    from .train import OPTIMIZERS, SCHEDULES, fit

    known = {p: None for p in inspect.signature(fit).parameters} | {a: None for a in AUGMENTATION}
    # stop_if_diverged: the caller's choice (the baseline stops, a sweep goes on), not a recipe's.
    for gone in ("model", "train_loader", "test_loader", "callback", "device", "num_classes", "stop_if_diverged"):
        known.pop(gone)
    return known | {
        "epochs": whole(1), "lr": POSITIVE, "batch_size": whole(1),
        "optimizer": choice(*OPTIMIZERS), "schedule": choice(*SCHEDULES),
        "weight_decay": number(0, 1, share_hint=False), "momentum": FRACTION, "warmup": FRACTION, "label_smoothing": FRACTION,
        "mixup": number(0), "grad_clip": number(0, low_open=True, none=True), "max_steps": whole(1, none=True),
        "eval_every": whole(1), "graphs": flag, "ema": FRACTION,
        "compile": _compile_mode,
        "precision": choice(None, "bf16", "fp16", "fp32"),
        # cutout: a square erased in the stored 32x32 image (DeviceLoader refuses a larger one, at training).
        "cutout": whole(0, maximum=32), "augment": choice(None, *AUGMENT_POLICIES), "repeats": whole(1),
        "augment_groups": whole(1)}


def fit_recipe(required=("epochs", "lr"), drop=(), **more) -> Keys:
    """A recipe of ``fit``'s arguments, less those in ``drop`` (what its caller sets itself)."""
    rules = {k: v for k, v in _fit_rules().items() if k not in drop} | more
    return Keys(rules, optional=set(rules) - set(required))


def _loader_keys() -> tuple[str, ...]:
    """What builds a loader, not a fit: a fine-tune trains on its model's loader (TRAIN's recipe)."""
    from .data import AUGMENTATION

    return ("batch_size", *AUGMENTATION)


def recipe_problems(changes: dict) -> list[str]:
    """What is wrong with values given to a training recipe (``epochs=0``, ``cutout=0.5``), one line
    each; names no recipe reads are left to the caller."""
    rules = _fit_rules()
    return [f"{key}={value!r} {why}" for key, value in changes.items()
            if rules.get(key) is not None and (why := rules[key](value)) is not None]


def _model_kwargs(builder) -> Keys:
    """A course model's overrides: its builder's arguments (widths and sizes, whole numbers; a rate,
    a probability: drop_path_rate=10, meant 10%, failed in timm's bernoulli_ after the CNN had trained;
    a ratio, a size: mlp_ratio=0 leaves no MLP)."""
    skip = ("num_classes", "pretrained", "weights_path", "heads", "mlp_hidden", "stages", "inner")
    rules = {}
    for p in inspect.signature(builder).parameters.values():
        if p.name not in skip:
            rules[p.name] = (whole(1) if isinstance(p.default, int) else FRACTION if p.name.endswith("_rate")
                             else POSITIVE)
    return Keys(rules, optional=set(rules))


def _structured_criterion(model: str):
    """The CNN's criteria, less bn_scale for a ViT: it scores BatchNorms, which a ViT has none of
    (notebook 04 refused it, after notebooks 02 and 03 had run)."""
    from .prune import structured as S

    if model == "cnn":
        return choice(*S.CRITERIA)
    fits = choice(*S.VIT_CRITERIA)

    def rule(v):
        why = fits(v)
        return why and why + (f" ({v} scores BatchNorms: the CNN only)" if v in S.BATCHNORM_CRITERIA else "")
    return rule


def schema() -> Keys:
    from . import models
    from .prune import structured as S
    from .prune.criteria import CRITERIA
    from .prune.schedules import METHODS

    batches = Keys({"cpu": list_of(whole(1), increasing=True), "cuda": list_of(whole(1), increasing=True)})
    timing = {"latency": batches, "latency_warmup": whole(0), "latency_iters": whole(1), "latency_rounds": whole(1)}
    unstructured = Keys({
        "include_first": flag, "include_classifier": flag, "study_models": list_of(choice(*MODEL_NAMES)),
        "probe_images": whole(1, none=True), "sensitivity_images": whole(1, none=True),
        "criteria": list_of(choice(*CRITERIA)), "score_batches": whole(1),
        "sensitivity_levels": list_of(SHARE, increasing=True), "sweep_levels": list_of(SHARE, increasing=True),
        "epoch_steps": whole(1, none=True), "study_epoch_scale": POSITIVE, "rounds": whole(1),
        "gradual_end": number(0, 1, low_open=True, high_open=False),
        # The study, the final recipe and the frontier set each fine-tune's length themselves.
        "finetune": per_model(fit_recipe(required=("lr",), drop=(*_loader_keys(), "epochs", "max_steps"))),
        "final_method": choice(*METHODS, "best"), "final_epoch_steps": whole(1, none=True),
        "final": per_model(Keys({"sparsity": SHARE, "epochs": whole(1)})),
        "frontier": Keys({"step_keep": SHARE, "refine": whole(0), "max_trials": whole(1), "max_sparsity": SHARE,
                          "epochs": whole(1), "epoch_steps": whole(1, none=True), "drop": SHARE}),
        **timing}, optional={"study_models"})
    structured = Keys({model: Keys({
        "criterion": _structured_criterion(model), "scope": choice("uniform", "global"),
        "steps": list_of(SHARE, increasing=True), "step_epochs": whole(0), "batch_size": whole(1),
        "taylor_batches": whole(1), "bn_batches": whole(0), "multiple": whole(1),
        "finetune": fit_recipe(drop=_loader_keys()), "compare": list_of(choice(*S.CRITERIA)),
        "compare_shares": list_of(SHARE, increasing=True), "compare_images": whole(1),
        "throughput": batches, "throughput_iters": whole(1), **timing}) for model in MODEL_NAMES})
    # QAT's length may differ per bit width; the pruning study's fine-tune runs before any grid.
    qat_recipe = dict(steps=bits_map, epochs=bits_map, refresh_every=whole(1))
    prune_recipe = dict(steps=whole(1), epochs=whole(1))
    quant = Keys({
        "resnet20": _model_kwargs(models.resnet20),
        "train": fit_recipe(required=("lr", "batch_size"), steps=whole(1)),
        "eval_images": whole(1, none=True), "ptq_bits": list_of(BITS), "ptq_methods": list_of(quant_method),
        "qat_method": quant_method, "qat_bits": list_of(BITS),
        "qat": fit_recipe(required=("lr",), drop=_loader_keys(), **qat_recipe),
        "prune": Keys({"sparsity": SHARE, "bits": list_of(BITS),
                       "variants": Each(Keys({"scope": choice("global", "layer"), "rounds": whole(1)})),
                       "qat_variants": list_of(lambda v: None if isinstance(v, str) else "must be a variant's name"),
                       "finetune": fit_recipe(required=("lr",), drop=_loader_keys(), **prune_recipe)}),
        "cnn_qat_bits": list_of(BITS)}, optional={"eval_images"})
    return Keys({
        "data": Keys({"source": choice("synthetic", "cifar10"), "n_train": whole(1, none=True),
                      "n_test": whole(1, none=True)}),
        "models": Keys({"cnn": _model_kwargs(models.resnet18), "vit": _model_kwargs(models.vit_tiny_patch16_224),
                        "vit_scratch": _model_kwargs(models.vit_scratch)}),
        "train": per_model(fit_recipe(required=("epochs", "lr", "batch_size"))),
        "unstructured": unstructured, "structured": structured, "quant": quant},
        extra={"name": None, "description": None, "reduced": None})


def problems(profile: dict) -> list[str]:
    """Every mistake in ``profile`` (as ``get_profile`` returns it), one line each."""
    found: list[str] = []
    name = profile.get("name", "?")
    rules = schema()
    for section, node in rules.rules.items():
        if section not in profile:
            found.append(f"{TABLES[section]}: no entry for profile {name!r}")
        else:
            _walk(profile[section], node, f'{TABLES[section]}["{name}"]', found)
    _cross_checks(profile, name, found, rules)
    return found


def check_settings(section: str, cfg: dict, path: str = "cfg", part: str | None = None) -> None:
    """SettingsError naming every unknown key in settings a notebook's exercise edits by hand (no
    profile check sees them: a misspelt key, "include_frist", was silently ignored): the whole
    ``"unstructured"`` or ``"quant"`` section, one model's ``"structured"`` recipe, or the section's
    ``part`` alone (``"qat"``: a QAT recipe passed by itself). Keys, and the True/False settings'
    values: an exercise may pass fewer settings, or other values a profile would not hold (numpy's,
    half an epoch)."""
    from .errors import SettingsError

    node = schema().rules[section]
    if section == "structured":
        node = node.rules[MODEL_NAMES[0]]  # one recipe, the same rules for every model
    if part is not None:
        node = node.rules[part]
    found: list[str] = []
    _walk(cfg, node, path, found, keys_only=True)
    if found:
        raise SettingsError("\n".join(found))


def _walk(value, node, path: str, found: list[str], keys_only: bool = False) -> None:
    if node is None:
        return
    if isinstance(node, Each):
        if not isinstance(value, dict) or not value:
            if not keys_only:
                found.append(f"{path} must be a non-empty dict")
            return
        for key, v in value.items():
            _walk(v, node.node, f'{path}["{key}"]', found, keys_only)
        return
    if isinstance(node, Keys):
        if not isinstance(value, dict):
            if not keys_only:
                found.append(f"{path} must be a dict of settings, not {value!r}")
            return
        known = node.rules | node.extra
        for key in value:
            if key not in known:
                near = difflib.get_close_matches(str(key), list(known), n=1)
                why = ("; a fine-tune trains on its model's loaders: set it in TRAIN (QUANT's \"train\" for "
                       "quantization)" if key in _loader_keys() else "; no part of labutils reads it")
                found.append(f'{path}: unknown setting "{key}"' + (f' (did you mean "{near[0]}"?)' if near else "") + why)
        for key, rule in node.rules.items():
            if key in value:
                _walk(value[key], rule, f'{path}["{key}"]', found, keys_only)
            elif key not in node.optional and not keys_only:
                found.append(f'{path}: missing setting "{key}"')
        return
    # Keys only still checks True/False settings, at any depth: "yes" (or "False", a string) read as true.
    if (not keys_only or node is flag) and (why := node(value)) is not None:
        found.append(f"{path} = {value!r} {why}")


def _passed(table, key: str, node: Keys) -> bool:
    """Whether ``table[key]`` is there and passed its own rule: the cross-checks read no other value
    (a mistake there is named already; a list for a bit width crashed them, unhashable, and a string
    for a list of names gave one line per letter)."""
    return isinstance(table, dict) and key in table and node.rules[key](table[key]) is None


def _cross_checks(profile: dict, name: str, found: list[str], rules: Keys) -> None:
    """What no single value shows: quantization settings that must agree with each other, data
    counts that must fit their source."""
    quant = profile.get("quant") or {}
    quant_rules = rules.rules["quant"]
    at = f'QUANT["{name}"]'
    prune = quant.get("prune") if isinstance(quant.get("prune"), dict) else {}
    recipes = {f'{at}["train"]': quant.get("train"), f'{at}["qat"]': quant.get("qat"),
               f'{at}["prune"]["finetune"]': prune.get("finetune")}
    for path, recipe in recipes.items():
        if isinstance(recipe, dict) and not (recipe.get("steps") or recipe.get("epochs")):
            found.append(f'{path}: give "steps" or "epochs"')
        elif isinstance(recipe, dict) and recipe.get("steps") and recipe.get("epochs"):
            found.append(f'{path}: give "steps" or "epochs", not both (steps would win, epochs be ignored)')
    _counts_fit_the_source(profile, name, found, rules.rules["data"])
    _batches_fit_the_data(profile, name, found)
    _vit_shapes_fit(profile, name, found)
    prune_rules = quant_rules.rules["prune"]
    bits = {b for key in ("qat_bits", "cnn_qat_bits") if _passed(quant, key, quant_rules) for b in quant[key]}
    bits |= set(prune["bits"]) if _passed(prune, "bits", prune_rules) else set()
    qat = quant.get("qat") if isinstance(quant.get("qat"), dict) else {}
    for key, per_bits in qat.items():
        if key in ("steps", "epochs") and isinstance(per_bits, dict) and _passed(qat, key, quant_rules.rules["qat"]):
            missing = sorted(b for b in bits if isinstance(b, int) and str(b) not in per_bits)
            if missing:
                found.append(f'{at}["qat"]["{key}"] has no entry for {missing} bits')
    if isinstance(prune.get("variants"), dict) and _passed(prune, "qat_variants", prune_rules):
        for variant in prune["qat_variants"]:
            if variant not in prune["variants"]:
                found.append(f'{at}["prune"]["qat_variants"] names {variant!r}, which is not one of its '
                             f'variants {sorted(prune["variants"])}')


def _counts_fit_the_source(profile: dict, name: str, found: list[str], rules: Keys) -> None:
    """None, the whole split, is CIFAR-10's: synthetic data has none (notebook 01's TypeError on
    None). A count past CIFAR-10's split failed the run with advice to use the whole CIFAR-10, which
    it was."""
    from .course import CIFAR10_IMAGES

    data = profile.get("data")
    if not _passed(data, "source", rules):
        return  # named already
    for key, train in (("n_train", True), ("n_test", False)):
        if not _passed(data, key, rules):
            continue
        n, at, split = data[key], f'DATA["{name}"]["{key}"]', "training" if train else "test"
        if n is None and data["source"] == "synthetic":
            found.append(f"{at} = None: synthetic data needs a count (None, the whole split, is for cifar10 "
                         f"only); write how many {split} images to make, such as {1000 if train else 400}")
        elif n is not None and data["source"] == "cifar10" and n > CIFAR10_IMAGES[train]:
            found.append(f"{at} = {n} is more than the {CIFAR10_IMAGES[train]:,} images of CIFAR-10's {split} "
                         f"split: write at most {CIFAR10_IMAGES[train]} (or None, the whole split)")


def _vit_shapes_fit(profile: dict, name: str, found: list[str]) -> None:
    """A ViT's width must split into its heads (timm's bare AssertionError came in notebook 02,
    after the CNN had trained) and its image into patches (the patch convolution would silently
    drop the pixels past the last whole patch)."""
    from . import models

    table = profile.get("models")
    if not isinstance(table, dict):
        return  # named already: "must be a dict of settings"
    for model, builder, patch in (("vit_scratch", models.vit_scratch, None), ("vit", models.vit_tiny_patch16_224, 16)):
        overrides = table.get(model)
        if not isinstance(overrides, dict) or not overrides:
            continue
        shape = {p.name: p.default for p in inspect.signature(builder).parameters.values()} | overrides
        at = f'MODELS["{name}"]["{model}"]'
        dim, heads, size = shape.get("embed_dim"), shape.get("num_heads"), shape.get("img_size")
        patch = shape.get("patch_size", patch)
        if all(whole(1)(v) is None for v in (dim, heads)) and dim % heads:
            found.append(f"{at}: embed_dim {dim} does not split into num_heads {heads} (give a multiple of {heads})")
        if all(whole(1)(v) is None for v in (size, patch)) and size % patch:
            found.append(f"{at}: img_size {size} is not a whole number of {patch}-pixel patches (patch_size): the "
                         f"last {size % patch} pixels of each row and column would be dropped unseen")


def _batches_fit_the_data(profile: dict, name: str, found: list[str]) -> None:
    """A batch larger than the training images: the loaders drop a last partial batch, so an
    epoch would hold none (nothing trained, a loss of 0, or a division by zero much later)."""
    n_train = (profile.get("data") or {}).get("n_train")
    if whole(1)(n_train):
        return  # None, the whole split (50,000 images, more than any batch), or a mistake named already
    sections = {"train": profile.get("train"), "structured": profile.get("structured")}
    sizes = {f'{TABLES[section]}["{name}"]["{model}"]["batch_size"]': recipe.get("batch_size")
             for section, table in sections.items() if isinstance(table, dict)
             for model, recipe in table.items() if isinstance(recipe, dict)}
    quant_train = (profile.get("quant") or {}).get("train")
    if isinstance(quant_train, dict):
        sizes[f'QUANT["{name}"]["train"]["batch_size"]'] = quant_train.get("batch_size")
    for path, size in sizes.items():
        if isinstance(size, int) and size > n_train:
            found.append(f"{path} = {size} is more than the profile's {n_train:,} training images "
                         f'(DATA["{name}"]["n_train"]): an epoch would hold no whole batch')


def check_profile(profile: dict) -> dict:
    """``profile`` if it has no mistakes, else ProfileError listing them all."""
    found = problems(profile)
    if found:
        lines = "\n".join(f"  {p}" for p in found)
        raise ProfileError(f"the {profile.get('name', '?')} profile in labutils/profiles.py has "
                           f"{len(found)} mistake{'s' if len(found) > 1 else ''}:\n{lines}\n"
                           f"Fix it there (then restart the kernel in a notebook).")
    return profile
