"""Fixed-point quantization: grids, STE, zeros of pruned weights, QAT steps, size accounting."""
import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from labutils.data import DeviceLoader
from labutils.models import build_model
from labutils.prune import apply_masks, magnitude_scores, masks_from_scores, prunable_parameters
from labutils.quant import (FakeQuantizer, QuantSpec, fake_quantize, model_size_bits, qparams, quantize_model_,
                            quantize_tensor, quantized_parameters, relative_index_entries, search_clip,
                            tensor_size_bits)
from labutils.train import fit

METHODS = [f"{s}/{g}/{c}" for s, g, c in itertools.product(("symmetric", "asymmetric"),
                                                            ("tensor", "channel"), ("minmax", "mse"))]


def weights(seed=0, shape=(6, 4, 3, 3)):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    w[0] *= 10  # one channel with a much wider range than the others
    w[1] = w[1].abs()  # one channel with no negative weights (asymmetric zero-point at the edge)
    return w


def distinct_levels(w: torch.Tensor, granularity: str = "tensor") -> int:
    """Most distinct values in the tensor (or in any one output channel)."""
    if granularity == "channel" and w.ndim > 1:
        return max(int(torch.unique(row).numel()) for row in w.detach().flatten(1))
    return int(torch.unique(w.detach()).numel())


def pruned(w, sparsity=0.7):
    mask = masks_from_scores({"w": w.abs()}, sparsity, "global")["w"]
    return w * mask, mask


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_at_most_2_to_the_bits_levels(method, bits):
    spec = QuantSpec.parse(method, bits)
    w = weights() if bits < 8 else torch.randn(64, 200)  # enough values to fill 256 levels
    q = quantize_tensor(w, spec)
    limit = 2 ** bits - (1 if spec.scheme == "symmetric" else 0)
    assert distinct_levels(q, "channel") <= limit
    if spec.granularity == "tensor":
        assert distinct_levels(q, "tensor") <= limit
    # Not trivially few levels: a wide tensor uses most of its grid.
    wide = torch.rand(4, 4000) * 2 - 1
    assert distinct_levels(quantize_tensor(wide, QuantSpec(bits, spec.scheme, "tensor", "minmax"))) >= limit - 1


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("bits", [2, 3, 5])
def test_symmetric_grid_is_symmetric_around_zero(granularity, bits):
    spec = QuantSpec(bits, "symmetric", granularity, "minmax")
    w = weights(1)
    q = quantize_tensor(w, spec)
    assert torch.equal(quantize_tensor(-w, spec), -q)
    scale, zero = qparams(w, spec)
    assert torch.all(zero == 0)
    codes = torch.round(q / scale)
    assert torch.allclose(codes * scale, q)  # every value is a code times the scale
    assert codes.abs().max() <= 2 ** (bits - 1) - 1  # codes within +-(2^(b-1) - 1)
    # The extreme weight of each group lands on +-qmax: the grid reaches both ends equally.
    assert codes.abs().max() == 2 ** (bits - 1) - 1


def test_ste_passes_gradient_inside_the_clipping_range_only():
    spec = QuantSpec(3, "asymmetric", "tensor", "minmax")
    w = torch.linspace(-2, 2, 41, requires_grad=True)
    scale, zero = qparams(w, spec, ratio=0.5)  # range [-1, 1]: the outer weights are clipped
    out = fake_quantize(w, scale, zero, spec)
    upstream = torch.arange(41.0)
    out.backward(upstream)
    # The grid after the zero-point nudge: codes 0..7 cover [(0 - zero) * scale, (7 - zero) * scale].
    low, high = (0 - zero - 0.5) * scale, (7 - zero + 0.5) * scale
    inside = (w.detach() >= low) & (w.detach() <= high)
    assert inside.sum() < 41 and inside.sum() > 10
    assert torch.equal(w.grad[inside], upstream[inside])  # identity inside
    assert torch.all(w.grad[~inside] == 0)  # blocked outside
    assert distinct_levels(out.detach()) <= 8


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bits", [2, 3, 6])
def test_zeros_stay_exactly_zero(method, bits):
    w, mask = pruned(weights(2) + 0.05)  # shifted: some channels' ranges barely include zero
    for m in (None, mask):
        q = quantize_tensor(w, QuantSpec.parse(method, bits), m)
        assert torch.all(q[w == 0] == 0)
        assert torch.all(q.view(-1)[~mask.view(-1)] == 0)


def test_asymmetric_zero_is_on_the_grid_for_one_sided_ranges():
    # All weights positive: the range is [0, max]; a nudged zero-point keeps 0 representable
    # and weights close to zero may round to zero but never to a nonzero value below it.
    w = torch.tensor([[0.0, 0.3, 0.7, 1.0], [0.0, -0.2, -0.9, -0.1]])
    q = quantize_tensor(w, QuantSpec(2, "asymmetric", "channel", "minmax"))
    assert q[0, 0] == 0 and q[1, 0] == 0
    assert torch.all(q[0] >= 0) and torch.all(q[1] <= 0)


def test_quant_spec_rejects_bad_settings():
    with pytest.raises(ValueError, match="bits"):
        QuantSpec(1)
    with pytest.raises(ValueError, match="scheme"):
        QuantSpec(4, "logarithmic")
    with pytest.raises(ValueError, match="scheme/granularity/clip"):
        QuantSpec.parse("asymmetric", 4)


def test_mse_clipping_beats_minmax_at_low_bits():
    w = torch.randn(16, 300)
    w[:, 0] = 12.0  # an outlier per channel wastes most of a min/max grid
    err = {c: (quantize_tensor(w, QuantSpec(3, "asymmetric", "channel", c)) - w).pow(2).mean()
           for c in ("minmax", "mse")}
    assert err["mse"] < 0.75 * err["minmax"]


def _loader(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return DeviceLoader(rng.integers(0, 255, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n), 16, True)


def _pruned_resnet(sparsity=0.8):
    torch.manual_seed(0)
    model = build_model("resnet20", width=4)
    params = prunable_parameters(model)
    masks = masks_from_scores(magnitude_scores(params), sparsity, "global")
    apply_masks(model, masks)
    return model, masks


def test_qat_keeps_zeros_updates_weights_and_bakes_a_grid():
    model, masks = _pruned_resnet()
    keys = set(model.state_dict())
    before = {n: p.detach().clone() for n, p in quantized_parameters(model).items()}
    spec = QuantSpec(3, "asymmetric", "channel", "mse")
    fq = FakeQuantizer(model, spec, masks, refresh_every=2)

    seen = []

    def check(m, opt, step):
        fq(m, opt, step)
        params = dict(m.named_parameters())
        seen.append(all(bool((params[n][~k] == 0).all()) for n, k in masks.items()))

    fit(model, _loader(), epochs=1, lr=0.05, max_steps=3, callback=check, warmup=0.0)
    assert seen == [True, True, True]  # shadow weights: pruned entries zero after every step
    fq.finish()
    assert set(model.state_dict()) == keys  # names unchanged: masks and checkpoints still fit
    assert "forward" not in vars(model.conv1)  # the layer's own forward is back
    params = quantized_parameters(model)
    for name, p in params.items():
        assert distinct_levels(p, "channel") <= 2 ** 3
        if name in masks:
            assert torch.all(p[~masks[name]] == 0)
    moved = sum(float((params[n].detach() - before[n]).abs().sum()) for n in params)
    assert moved > 0
    # Baking again is a no-op: the weights are already on their grids.
    again = {n: p.detach().clone() for n, p in params.items()}
    quantize_model_(model, spec, masks)
    assert all(torch.allclose(again[n], p, atol=1e-6) for n, p in params.items())


def test_fake_quantized_forward_matches_the_baked_model():
    model, masks = _pruned_resnet(0.5)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    spec = QuantSpec(4, "symmetric", "channel", "mse")
    fq = FakeQuantizer(model, spec, masks)
    with torch.no_grad():
        fake = model(x)
    fq.finish()
    with torch.no_grad():
        baked = model(x)
    assert torch.allclose(fake, baked, atol=1e-5)


def test_the_training_quantizer_rounds_a_tie_as_the_baked_grid_does():
    """QAT's forward rounded w/scale + zero, the baked grid round(w/scale) + zero: with an odd
    zero-point a tie (x.5, rounded to even) landed on neighbouring levels (review, reproduced)."""
    from labutils.quant import _levels, _STEQuantize

    w, scale, zero = torch.tensor([-1.5, 0.5, 1.5]), torch.tensor([1.0]), torch.tensor([1.0])
    trained = _STEQuantize.apply(w, scale, zero, 0, 3)
    assert torch.equal(trained, (_levels(w, scale, zero, 0, 3) - zero) * scale)
    assert trained.tolist() == [-1.0, 0.0, 2.0]


def test_notebook_06_scores_in_fp32_where_the_device_would_autocast(monkeypatch):
    """On a GPU every evaluation ran under bf16 autocast, which moves a grid's weights (review)."""
    from labutils import accel
    from labutils.labs import quantization as lab
    from labutils.train import evaluate
    from tiny import tiny_cnn, tiny_loaders

    model, (_, test) = tiny_cnn(), tiny_loaders()
    exact = evaluate(model, test)  # on the CPU: fp32
    monkeypatch.setattr(accel, "precision_for", lambda device: "bf16")  # as on an H100
    assert evaluate(model, test)["loss"] != exact["loss"]  # the device's autocast reaches evaluate
    assert evaluate(model, test, precision="fp32") == exact and lab._acc(model, test) == exact["accuracy"]


def test_relative_index_and_size_on_a_hand_example():
    w = torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    pos = torch.tensor([1, 6])
    # gaps 1 and 4: with 1-bit gaps the 4 needs 2 fillers, with 2-bit gaps 1, with 3 bits none.
    assert [relative_index_entries(pos, k) for k in (1, 2, 3)] == [4, 3, 2]
    size = tensor_size_bits(w, 4)
    # dense 8*4 = 32; bitmask 2*4 + 8 = 16; relative: k=1 4*5 = 20, k=2 3*6 = 18, k=3 2*7 = 14.
    assert (size["encoding"], size["weight_bits"], size["nonzeros"]) == ("relative3", 14, 2)
    assert tensor_size_bits(torch.ones(8), 4)["encoding"] == "dense"
    alternating = torch.tensor([1.0, 0.0] * 32)  # gaps of 1: one-bit gap codes, 32 x (2 + 1)
    assert tensor_size_bits(alternating, 2)["encoding"] == "relative1"
    assert tensor_size_bits(alternating, 2)["weight_bits"] == 96
    # Dense runs with gaps of 3: bitmask 20 x 8 + 32 = 192 beats 2-bit gaps (20 x 10 = 200).
    runs = torch.tensor([1.0] * 5 + [0.0] * 3).repeat(4)
    assert tensor_size_bits(runs, 8, qparam_bits=32) == {
        "numel": 32, "nonzeros": 20, "bits": 8, "encoding": "bitmask", "weight_bits": 192,
        "qparam_bits": 32, "total_bits": 224}


def test_model_size_counts_values_scales_and_floats():
    model = nn.Sequential(nn.Linear(4, 3, bias=True), nn.BatchNorm1d(3))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 13.0).view(3, 4))
    fp32 = model_size_bits(model)
    # 12 weights + 3 bias + 3+3 BN affine + 3+3 running stats, all 32-bit.
    assert fp32["total_bits"] == (12 + 3 + 12) * 32
    size = model_size_bits(model, QuantSpec(4, "asymmetric", "channel", "mse"))
    # 12 weights x 4 bits + 3 channels x (32-bit scale + 4-bit zero-point) + 15 floats.
    assert size["quantized_weight_bits"] == 12 * 4 + 3 * 36
    assert size["total_bits"] == 12 * 4 + 3 * 36 + 15 * 32
    sym = model_size_bits(model, QuantSpec(4, "symmetric", "tensor", "minmax"))
    assert sym["quantized_weight_bits"] == 12 * 4 + 32


@pytest.mark.parametrize("scheme, granularity, qparam_bits", [
    ("symmetric", "tensor", 2 * 32),          # 2 layers x a 32-bit scale
    ("symmetric", "channel", (3 + 2) * 32),   # 5 output channels x a 32-bit scale
    ("asymmetric", "tensor", 2 * (32 + 4)),   # + a 4-bit zero-point each
    ("asymmetric", "channel", (3 + 2) * (32 + 4))])
def test_model_size_adds_a_zero_point_only_to_asymmetric_grids(scheme, granularity, qparam_bits):
    """Each channel (or tensor) pays a 32-bit scale, plus a bits-bit zero-point when asymmetric."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        for layer in model:
            layer.weight.fill_(0.5)  # no zeros: dense storage, 4 bits a weight
    size = model_size_bits(model, QuantSpec(4, scheme, granularity, "minmax"))
    assert size["quantized_weight_bits"] == (12 + 6) * 4 + qparam_bits
    assert sum(layer["qparam_bits"] for layer in size["layers"].values()) == qparam_bits


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_ste_gradient_reaches_weights_the_clamp_leaves_alone(scheme):
    """Identity up to half a step beyond the end levels (those weights round onto the grid
    unclamped), zero further out (the clamp moved them), for either scheme."""
    spec = QuantSpec(3, scheme, "tensor", "minmax")
    qmin, qmax = spec.qrange
    scale, zero = torch.tensor(0.5), torch.tensor(2.0 if scheme == "asymmetric" else 0.0)
    codes = torch.tensor([qmin - 0.55, qmin - 0.45, qmin, qmin + 1, qmax, qmax + 0.45, qmax + 0.55])
    w = ((codes - zero) * scale).requires_grad_()
    fake_quantize(w, scale, zero, spec).backward(torch.arange(1.0, 8.0))
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


def _save_pruned_cnn(s):
    """Notebook 03's pruned ResNet-18, as it saves it (80% of the weights zero)."""
    model = s.new_model("cnn")
    masks = masks_from_scores(magnitude_scores(prunable_parameters(model)), 0.8, "global")
    apply_masks(model, masks)
    s.save(model, "cnn", "after_unstructured_pruning", {"accuracy": 0.1})


def test_pruned_cnn_study_quantizes_the_pruned_resnet18(tmp_path):
    from labutils import Session
    from labutils.labs import quantization as quant_lab

    s = Session("smoke", tmp_path, device="cpu")
    s.profile["quant"].update(ptq_methods=["asymmetric/channel/mse"], ptq_bits=[3], cnn_qat_bits=[2],
                              qat={"steps": 1, "lr": 0.01, "warmup": 0.0})
    assert quant_lab.pruned_cnn_study(s)["skipped"]
    _save_pruned_cnn(s)
    out = quant_lab.pruned_cnn_study(s)
    assert not out.get("skipped")
    assert out["zeros"] >= 0.7 * out["weights"]
    assert set(out["ptq"]) == {"asymmetric/channel/mse"} and set(out["ptq"]["asymmetric/channel/mse"]["accuracy"]) == {"3"}
    assert out["qat"]["zeros_kept"] is True
    assert 0.0 <= out["qat"]["accuracy"]["2"] <= 1.0


@pytest.mark.parametrize("bits", [2, 3, 8])
def test_every_level_of_the_grid_is_used_on_a_wide_tensor(bits):
    """Exactly 2^b levels (2^b - 1 mirrored for symmetric): a grid one level short halves 2-bit
    weights' resolution unseen by an at-most check."""
    assert QuantSpec(bits, "asymmetric").qrange == (0, 2 ** bits - 1)
    assert QuantSpec(bits, "symmetric").qrange == (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    # Ranges the grid spans exactly (a zero-point nudged half a level may leave an end level unused).
    for scheme, lo, levels in (("asymmetric", 0.0, 2 ** bits), ("symmetric", -1.0, 2 ** bits - 1)):
        wide = torch.linspace(lo, 1, 4001).view(1, -1)
        assert distinct_levels(quantize_tensor(wide, QuantSpec(bits, scheme, "tensor", "minmax"))) == levels


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("w", [torch.zeros(3, 4), torch.full((3, 4), 0.7), torch.full((3, 4), -0.7),
                               torch.tensor([[0.3]]), torch.full((5,), 0.7)],
                         ids=["zeros", "constant", "negative", "one-element", "1-d"])
def test_degenerate_tensors_quantize_exactly(method, w):
    """No range (all zeros), one value, one element, one dimension: each lies on its own grid."""
    assert torch.allclose(quantize_tensor(w, QuantSpec.parse(method, 2)), w, atol=1e-6)


def test_non_finite_weights_are_refused():
    """A NaN range fell back to scale 1, every other weight rounded to a whole number (0.7 -> 1),
    and an inf made the whole tensor NaN: a diverged model scored at chance, unexplained."""
    w = torch.tensor([[0.1, float("nan"), -0.3, 0.7]])
    with pytest.raises(ValueError, match="holds NaN or inf"):
        quantize_tensor(w, QuantSpec(4, "symmetric", "tensor", "minmax"))
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="0.weight holds NaN or inf"):
        quantize_model_(model, QuantSpec(4))


def test_a_qat_run_that_diverges_is_not_stopped_mid_training():
    """Its sweep goes on: the diverged width is baked and scored (at chance), the others still run
    (a review of the refusal above: it stopped notebook 06 inside fit)."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    fq = FakeQuantizer(model, QuantSpec(2), refresh_every=1)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    model(torch.randn(3, 4))  # the forward's clip search
    fq(model, None, 1)
    model(torch.randn(3, 4))
    fq.finish()
    assert torch.isnan(model[0].weight).any()


def test_bits_may_be_numpy_integers_and_a_method_must_be_a_string():
    assert QuantSpec(np.int64(4)).bits == 4 and type(QuantSpec(np.int64(4)).bits) is int
    with pytest.raises(ValueError, match="bits must be an integer"):
        QuantSpec(True)
    with pytest.raises(TypeError, match="a method is one string such as 'asymmetric/channel/mse' .*got 4"):
        QuantSpec.parse(4, "asymmetric/channel/mse")  # arguments swapped


def test_a_refresh_on_the_last_step_bakes_the_ratios_that_step_trained_with():
    """The clip ratios were searched again right after the optimizer step: a refresh on the last
    step baked ratios no forward had used (and BatchNorm had never seen). Now a refresh is a
    search at the next forward, and finish() keeps the last forward's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4, bias=False))
    spec = QuantSpec(3, "asymmetric", "tensor", "mse")
    fq = FakeQuantizer(model, spec, refresh_every=5)
    model(torch.randn(2, 8))  # a training forward: its ratio searched
    quantizer = model[0]._labutils_fq
    trained = quantizer.ratio.clone()
    with torch.no_grad():
        model[0].weight[0, 0] = 40.0  # the step moves a weight far out: a new search clips harder
    assert not torch.equal(trained, search_clip(model[0].weight, spec))
    weight = model[0].weight.detach().clone()
    fq(model, None, 5)  # the refresh falls on the run's last step
    fq.finish()
    assert torch.equal(model[0].weight.detach(), quantize_tensor(weight, spec, ratio=trained))


def test_a_refresh_searches_the_ratios_again_at_the_next_forward():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4, bias=False))
    spec = QuantSpec(3, "asymmetric", "channel", "mse")
    fq = FakeQuantizer(model, spec, refresh_every=2)
    model(torch.randn(2, 8))
    with torch.no_grad():
        model[0].weight[:, 0] = 40.0
    fq(model, None, 1)  # not a refresh step: the old ratios stay
    model(torch.randn(2, 8))
    assert not torch.equal(model[0]._labutils_fq.ratio, search_clip(model[0].weight, spec))
    fq(model, None, 2)
    model(torch.randn(2, 8))
    assert torch.equal(model[0]._labutils_fq.ratio, search_clip(model[0].weight, spec))
    fq.finish()


def test_qat_sweep_reports_pruned_weights_that_came_back(monkeypatch):
    """zeros_kept is the sweep's check that QAT kept the pruning: it must be able to say False."""
    from labutils.labs import quantization as lab

    model, masks = _pruned_resnet()

    def revived(model, train, test, spec, recipe, masks):
        q = quantize_model_(copy.deepcopy(model), spec, masks)
        name = next(iter(masks))
        with torch.no_grad():
            quantized_parameters(q)[name][~masks[name]] = 0.5  # one step of QAT without its masks
        return q, 0.5

    monkeypatch.setattr(lab, "qat", revived)
    out = lab.qat_sweep(model, None, None, "asymmetric/channel/minmax", [4], {"steps": 1}, masks)
    assert out["zeros_kept"] is False


def test_a_qat_recipe_says_what_its_length_lacks():
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    assert lab.at_bits({"steps": {5: 10, 2: 40}, "lr": 0.01}, 5)["steps"] == 10  # int keys as well as "5"
    with pytest.raises(SettingsError, match="no entry for 3 bits"):
        lab.at_bits({"epochs": {"5": 1}}, 3)
    with pytest.raises(SettingsError, match="steps is a whole number of at least 1: got 0"):
        lab._steps({"steps": 0, "lr": 0.01}, [None] * 4)
    with pytest.raises(SettingsError, match="needs its length, 'steps' or 'epochs'"):
        lab._steps({"lr": 0.01}, [None] * 4)
    assert lab._steps({"epochs": 1.5}, [None] * 4) == 6


@pytest.mark.parametrize("recipe, match", [
    ({"steps": 2.7}, "steps is a whole number of at least 1: got 2.7"),  # was 2 steps
    ({"steps": True}, "steps is a whole number of at least 1: got True"),  # was 1 step
    ({"epochs": 0.01}, r"epochs=0.01 is 0 optimizer steps at 4 batches an epoch"),  # failed later, in fit
    ({"epochs": -1}, r"epochs=-1 is -4 optimizer steps"),  # was -4 steps
    ({"epochs": float("nan")}, "epochs is a number of epochs"),
])
def test_a_recipe_length_is_refused_rather_than_altered(recipe, match):
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    with pytest.raises(SettingsError, match=match):
        lab._steps(dict(recipe, lr=0.01), [None] * 4, "the QAT recipe")
    with pytest.raises(SettingsError, match="^the QAT recipe: "):  # named as the caller knows it
        lab._steps(recipe, [None] * 4, "the QAT recipe")


def test_a_recipe_with_both_steps_and_epochs_is_refused_where_it_is_used(no_work):
    """cfg["qat"] | {"epochs": 3} on a profile that counts steps ran the profile's 2 steps, and the
    results file recorded epochs 3 for them."""
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab
    from labutils.profiles import get_profile

    cfg = get_profile("smoke")["quant"]
    longer = cfg["qat"] | {"epochs": 3}
    both = r"gives both steps and epochs \(steps would win, epochs be ignored\): keep one, e\.g\. "
    with pytest.raises(SettingsError, match="^cfg\\['qat'\\] " + both):
        lab._steps(longer, [None] * 4, "cfg['qat']")
    model, _ = _pruned_resnet()
    # The recipe as the student wrote it, before a per-bit-width value is read (the full profile's
    # epochs per bit width: the message showed epochs=2 for the 3-bit entry of the dict).
    with pytest.raises(SettingsError, match="^qat_sweep's recipe " + both) as info:
        lab.qat_sweep(model, _loader(), None, cfg["qat_method"], [4, 2], longer)
    assert str(info.value).endswith(f"got {longer!r}")
    full = get_profile("full")["quant"]["qat"] | {"steps": 20}
    with pytest.raises(SettingsError, match="^qat_sweep's recipe " + both) as info:
        lab.qat_sweep(model, _loader(), None, cfg["qat_method"], [3], full)
    assert "'epochs': {" in str(info.value) and "{'steps': 100} for steps" in str(info.value)
    with pytest.raises(SettingsError, match="^float_control's recipe " + both):
        lab.float_control(model, _loader(), None, [4, 2], longer)
    with pytest.raises(SettingsError, match="^a fine-tuning recipe " + both):
        lab.qat(model, _loader(), None, QuantSpec.parse(cfg["qat_method"], 4), longer)
    cfg["prune"]["finetune"] |= {"epochs": 3}
    with pytest.raises(SettingsError, match=r"^cfg\['prune'\]\['finetune'\] " + both):
        lab.pruning_study(None, _loader(), None, cfg)
    assert no_work == []
    # The way the message gives: the recipe counts epochs alone.
    assert lab._steps({k: v for k, v in cfg["qat"].items() if k != "steps"} | {"epochs": 3}, [None] * 4) == 12


def test_prune_refuses_zero_rounds_before_dividing_by_them():
    from labutils.labs import quantization as lab

    model, _ = _pruned_resnet(0.0)
    with pytest.raises(ValueError, match="rounds=0 must be a whole number >= 1"):  # was ZeroDivisionError
        lab.prune(model, _loader(), 0.8, "layer", 0, {"steps": 2})


@pytest.fixture
def no_work(monkeypatch):
    """Every evaluation and fine-tune of notebook 06's lab, recorded instead of run."""
    from labutils.labs import quantization as lab

    work = []
    monkeypatch.setattr(lab, "_acc", lambda *a: work.append("evaluate") or 0.5)
    monkeypatch.setattr(lab, "_train", lambda *a, **kw: work.append("train"))
    monkeypatch.setattr(lab, "prune", lambda *a, **kw: work.append("prune"))
    return work


def test_sweeps_check_every_point_before_the_first_one_runs(no_work, tmp_path):
    """A bad last method, bit width or per-bits length failed after the points before it had been
    evaluated or trained (review: PTQ 5/6 done, then "bits must be an integer from 2 to 8"); the
    pruned ResNet-18's QAT settings were checked only after its whole PTQ sweep had run."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    model, masks = _pruned_resnet()
    with pytest.raises(ValueError, match="unknown scheme 'asymetric'"):
        lab.ptq_sweep(model, None, ["asymmetric/channel/mse", "asymetric/channel/mse"], [4])
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 8, got 1"):
        lab.ptq_sweep(model, None, ["asymmetric/channel/mse"], [6, 5, 1])
    recipe = {"steps": {"4": 1}, "lr": 0.01}
    with pytest.raises(SettingsError, match="no entry for 2 bits"):
        lab.qat_sweep(model, _loader(), None, "asymmetric/channel/mse", [4, 2], recipe)
    with pytest.raises(ValueError, match="got 9"):
        lab.qat_sweep(model, _loader(), None, "asymmetric/channel/mse", [4, 9], {"steps": 1})
    with pytest.raises(SettingsError, match="no entry for 2 bits"):
        lab.float_control(model, _loader(), None, [4, 2], recipe)
    with pytest.raises(SettingsError, match=r"float_control's recipe at 2 bits: epochs=0.001"):
        lab.float_control(model, _loader(), None, [4, 2], {"epochs": {"4": 1, "2": 0.001}})
    s = Session("smoke", tmp_path, device="cpu")
    _save_pruned_cnn(s)
    for change, match in [
            ({"cnn_qat_bits": [4, 1]}, "got 1"),
            ({"cnn_qat_bits": 4}, r"cfg's cnn_qat_bits is a list of bit widths, such as \[4, 2\]: got 4"),
            ({"qat_method": ["asymmetric/channel/mse"]}, r"cfg's qat_method takes one method"),
            ({"qat_method": "asymetric/channel/mse"}, "unknown scheme 'asymetric'"),
            ({"qat": {"lr": 0.01}}, r"cfg\['qat'\] \(the pruned ResNet-18's QAT\) at 4 bits needs its length"),
            ({"qat": {"steps": {"4": 1}, "lr": 0.01}}, "no entry for 2 bits"),
            ({"ptq_bits": [6, 1]}, "got 1"),
            ({"ptq_bits": []}, "cfg's ptq_bits is empty"),  # the cfg's names, not ptq_sweep's arguments
            ({"ptq_methods": []}, "cfg's ptq_methods is empty: give at least one method")]:
        with pytest.raises(ValueError, match=match):  # SettingsError is a ValueError too
            lab.pruned_cnn_study(s, lab.config(s) | change)
    assert no_work == []


def test_empty_bit_widths_methods_and_variants_are_refused(no_work):
    """bits=[] or methods=[] returned empty results without a word, and a pruning study with no
    variants an empty dict on which the accuracy-vs-bits figure failed with a bare StopIteration."""
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    model, _ = _pruned_resnet()
    with pytest.raises(SettingsError, match=r"ptq_sweep's bits is empty: give at least one bit width"):
        lab.ptq_sweep(model, None, ["asymmetric/channel/mse"], [])
    with pytest.raises(SettingsError, match=r"ptq_sweep's methods is empty: give at least one method"):
        lab.ptq_sweep(model, None, [], [4])
    with pytest.raises(SettingsError, match=r"qat_sweep's bits is empty"):
        lab.qat_sweep(model, _loader(), None, "asymmetric/channel/mse", np.arange(0), {"steps": 1})
    with pytest.raises(SettingsError, match=r"float_control's bits is empty"):
        lab.float_control(model, _loader(), None, (), {"steps": 1})
    assert no_work == []


def test_sweeps_take_a_numpy_array_of_bit_widths_as_quantspec_does(no_work):
    """np.arange(2, 7) was refused as "not a list of bit widths", though QuantSpec takes its integers."""
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    model, _ = _pruned_resnet()
    out = lab.ptq_sweep(model, None, ["asymmetric/channel/mse"], np.arange(3, 5))
    assert list(out["asymmetric/channel/mse"]["accuracy"]) == ["3", "4"]
    assert [type(b) for b in lab._bit_widths(np.arange(2, 4), "ptq_sweep")] == [int, int]
    for bad in ("42", 4, np.int64(4), np.array(4), np.array([[4, 2]]), [[4, 2]], np.array([4.0])):
        with pytest.raises(SettingsError, match="ptq_sweep's bits is a list of bit widths"):
            lab._bit_widths(bad, "ptq_sweep")


@pytest.mark.parametrize("change, match", [
    (lambda p: p["variants"]["global_iterative"].update(rounds=0),
     r"cfg\['prune'\]\['variants'\]\['global_iterative'\]: rounds=0 must be a whole number"),
    (lambda p: p["variants"]["global_iterative"].update(scope="Global"), "unknown scope 'Global'"),
    (lambda p: p["variants"]["global_iterative"].update(scope="2:4"), "a fixed pattern"),
    (lambda p: p["variants"]["global_iterative"].pop("rounds"), "a dict with 'scope' and 'rounds'"),
    (lambda p: p.update(qat_variants=["global_iterativ"]), r"names \['global_iterativ'\], not among the variants"),
    (lambda p: p.update(bits=[4, 1]), "got 1"),
    (lambda p: p.update(bits=[]), r"cfg\['prune'\]'s bits is empty"),
    (lambda p: p.update(variants={}, qat_variants=[]),
     r"cfg\['prune'\]\['variants'\] is a dict of at least one pruning variant, such as .*: got \{\}"),
    (lambda p: p["finetune"].update(steps=0), r"cfg\['prune'\]\['finetune'\]: steps"),
])
def test_the_pruning_study_checks_every_variant_before_the_first_prunes(no_work, change, match):
    from labutils.labs import quantization as lab
    from labutils.profiles import get_profile

    cfg = get_profile("smoke")["quant"]
    change(cfg["prune"])
    with pytest.raises(ValueError, match=match):  # SettingsError is a ValueError too
        lab.pruning_study(None, _loader(), None, cfg)
    assert no_work == []


def test_cfg_edited_by_hand_is_checked_before_any_work(no_work, tmp_path):
    """cfg["eval_image"] = 100 was silently ignored by loaders, cfg["qat"]["refresh_evry"] failed in fit
    after the whole pruning study had run, refresh_every=0 passed, and qat_variants="global_iterative"
    gave "names ['g', 'l', 'o', ...] not among the variants" (review)."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    did_you_mean = r'unknown setting "{}" \(did you mean "{}"\?\)'
    cfg = lab.config(s) | {"eval_image": 100}
    for call in (lambda: lab.loaders(s, cfg), lambda: lab.resnet20_baseline(s, cfg),
                 lambda: lab.pruned_cnn_study(s, cfg), lambda: lab.write_results(s, {}, {}, cfg)):
        with pytest.raises(SettingsError, match="^cfg: " + did_you_mean.format("eval_image", "eval_images")):
            call()
    cfg = lab.config(s)
    cfg["qat"]["refresh_evry"] = 1
    with pytest.raises(SettingsError, match=r'^cfg\["qat"\]: ' + did_you_mean.format("refresh_evry", "refresh_every")):
        lab.pruning_study(None, _loader(), None, cfg)
    for every in (0, -3, 2.5):
        cfg = lab.config(s)
        cfg["qat"]["refresh_every"] = every
        with pytest.raises(SettingsError, match=rf"^cfg\['qat'\]: refresh_every is a whole number .*: got {every}$"):
            lab.pruning_study(None, _loader(), None, cfg)
    cfg = lab.config(s)
    cfg["prune"]["qat_variants"] = "global_iterative"
    with pytest.raises(SettingsError, match=r"^cfg\['prune'\]\['qat_variants'\] is a list of variant names, "
                                            r"e\.g\. \['global_iterative'\]: got 'global_iterative'$"):
        lab.pruning_study(None, _loader(), None, cfg)
    # A recipe passed alone: by the QAT recipe's rules.
    model, _ = _pruned_resnet()
    typo, zero = {"steps": 1, "refresh_evry": 1}, {"steps": 1, "refresh_every": 0}
    refresh_typo = did_you_mean.format("refresh_evry", "refresh_every")
    with pytest.raises(SettingsError, match="^qat_sweep's recipe: " + refresh_typo):
        lab.qat_sweep(model, _loader(), None, "asymmetric/channel/mse", [4], typo)
    with pytest.raises(SettingsError, match="^float_control's recipe: " + refresh_typo):
        lab.float_control(model, _loader(), None, [4], typo)
    with pytest.raises(SettingsError, match="^qat_sweep's recipe: refresh_every is a whole number"):
        lab.qat_sweep(model, _loader(), None, "asymmetric/channel/mse", [4], zero)
    assert no_work == []
    # numpy's whole numbers work in the code, and an exercise may pass them (review).
    cfg = lab.config(s) | {"eval_images": np.int64(100)}
    cfg["qat"]["refresh_every"] = np.int64(5)
    assert lab.check_config(cfg) is cfg


def test_the_lab_says_which_of_its_numbers_are_percents():
    """pruning.<variant>.sparsity_all_parameters (78.1) sat beside config.prune.sparsity (0.8) in
    quantization.json under a docstring that read as "every number is a fraction" (review). The
    key is the course's (report_details.json, notebooks 03-04: a percent), so it is kept and named."""
    from labutils.labs import quantization as lab

    doc = " ".join(lab.__doc__.split())
    assert "``pruning_percentage`` and ``sparsity_all_parameters`` are percents" in doc
    assert "percents" in lab.pruning_study.__doc__
