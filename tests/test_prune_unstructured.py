"""Unstructured pruning by hand: masks that hold through fine-tuning, exact thresholds, schedules,
data-aware scores against a hand computation, compact checkpoints."""
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labutils.checkpoint import load_checkpoint, save_checkpoint
from labutils.models import build_model
from labutils.prune import (GradualPruner, MaskEnforcer, cubic_sparsity, fisher_scores, gradual_prune,
                            iterative_prune, nm_masks, one_shot_prune, prunable_parameters,
                            round_targets, sparsity_report, taylor_scores)
from labutils.prune.sensitivity import SensitivityScope
from labutils.train import fit
from tiny import tiny_cnn, tiny_loaders


def zeros_at(model, masks):
    params = dict(model.named_parameters())
    return {n: int((params[n][~m] != 0).sum()) for n, m in masks.items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_pruned_weights_stay_zero_through_finetuning(optimizer):
    model = tiny_cnn()
    params = prunable_parameters(model)
    assert list(params) == ["2.weight", "6.weight"]  # first conv and classifier stay dense
    masks = one_shot_prune(model, 0.7)
    before = params["2.weight"].detach().clone()
    train, _ = tiny_loaders()
    fit(model, train, epochs=2, lr=0.05, optimizer=optimizer, weight_decay=0.05, momentum=0.9,
        callback=MaskEnforcer(masks))
    assert zeros_at(model, masks) == {"2.weight": 0, "6.weight": 0}
    report = sparsity_report(model, params, masks)  # would raise on a revived weight
    assert report["pruning_percentage"] == pytest.approx(70.0, abs=100 / report["prunable_total"])
    # ...while the kept weights did train.
    kept = masks["2.weight"]
    assert not torch.equal(params["2.weight"].detach()[kept], before[kept])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_enforcer_clears_optimizer_state_of_pruned_weights(optimizer):
    model = tiny_cnn()
    masks = one_shot_prune(model, 0.5)
    opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1))
    enforcer, x, y = MaskEnforcer(masks), torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for step in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        enforcer(model, opt, step)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        state = opt.state[params[name]]
        buffers = [state["momentum_buffer"]] if optimizer == "sgd" else [state["exp_avg"], state["exp_avg_sq"]]
        for buf in buffers:
            assert int((buf[~mask] != 0).sum()) == 0
            assert int((buf[mask] != 0).sum()) > 0


@pytest.mark.parametrize("sparsity", [0.1, 0.333, 0.5, 0.77, 0.9, 0.99])
def test_global_threshold_exact_with_ties(sparsity):
    model = tiny_cnn()
    params = prunable_parameters(model)
    with torch.no_grad():  # only four distinct magnitudes: massive ties across layers
        for p in params.values():
            p.copy_(torch.randint(1, 5, p.shape).float() * torch.sign(torch.randn(p.shape)))
    one_shot_prune(model, sparsity, "global")
    report = sparsity_report(model, params)
    # At least the share asked (the course's minimums are "at least"), and not a weight more.
    assert 0 <= report["prunable_zeros"] - sparsity * report["prunable_total"] < 1


@pytest.mark.parametrize("n, sparsity", [(174_336, 0.7), (55_296, 0.7), (1000, 0.9), (10, 0.3)])
def test_a_share_is_never_a_weight_short(n, sparsity):
    """round() removed 122,035 of 174,336 weights for 70% (69.99989%): the verdict said the
    course's 70% was not met. Exact products (0.9 * 1000) take no weight more."""
    from labutils.course import removed_at_least
    from labutils.prune.masks import masks_from_scores

    keep = masks_from_scores({"w": torch.rand(n)}, sparsity)["w"]
    removed = int((~keep).sum())
    assert removed == math.ceil(round(sparsity * n, 6)) and removed_at_least(100 * removed / n, 100 * sparsity)


def test_layer_scope_prunes_each_layer_alike():
    model = tiny_cnn()
    one_shot_prune(model, 0.6, "layer")
    for layer in sparsity_report(model)["layers"].values():
        assert abs(layer["zeros"] - 0.6 * layer["total"]) <= 1


def test_iterative_schedule_reaches_target_with_nested_masks():
    assert round_targets(0.9, 3)[-1] == 0.9
    keep = [1 - t for t in [0.0] + round_targets(0.9, 3)]
    assert [keep[i + 1] / keep[i] for i in range(3)] == pytest.approx([0.1 ** (1 / 3)] * 3)
    model = tiny_cnn()
    params = prunable_parameters(model)
    train, test = tiny_loaders()
    masks, history = iterative_prune(model, train, test, 0.9, 3, 0.5, "global", lr=0.05, weight_decay=5e-4)
    measured = [h["measured_sparsity"] for h in history]
    assert measured == sorted(measured) and len(history) == 3
    total = sum(p.numel() for p in params.values())
    assert abs(measured[-1] * total - 0.9 * total) <= 1
    assert sum(zeros_at(model, masks).values()) == 0


def test_iterative_rounds_fine_tune_for_the_one_shot_budget_in_all(monkeypatch):
    """The study compares methods at one budget: rounding each round's share on its own gave
    iterative pruning more steps (at 10 steps an epoch, 0.5 epochs in 3 rounds: 2+2+2, not 5)."""
    from labutils.prune import schedules

    ran = []
    monkeypatch.setattr(schedules, "fit", lambda *a, max_steps, **k: ran.append(max_steps) or [])
    model = tiny_cnn()
    train, _ = tiny_loaders(n=160)  # 10 steps an epoch
    for rounds, per_round in ((3, 0.5 / 3), (4, 0.25), (7, 0.05)):
        ran.clear()
        schedules.iterative_prune(model, train, None, 0.5, rounds, per_round, "global", lr=0.05)
        assert sum(ran) == schedules.fit_budget(per_round * rounds, train)["max_steps"], (rounds, ran)


def test_iterative_pruning_gets_one_shots_steps_at_any_fractional_budget(monkeypatch):
    """The study passes epochs / rounds, and (e / 3) * 3 is not always e in floats: at 390 steps an
    epoch, 0.45 epochs gave one-shot 176 steps and iterative 175 (review, reproduced)."""
    from labutils.prune import schedules

    class Epoch:  # only its length matters here: magnitude scores read no data, fit is faked
        def __init__(self, steps):
            self.steps = steps

        def __len__(self):
            return self.steps

    ran = []
    monkeypatch.setattr(schedules, "fit", lambda *a, max_steps, **k: ran.append(max_steps) or [])
    model = tiny_cnn()
    for steps in (15, 390):
        for epochs in (0.45, 0.5, 1.55, 3.65, 1.2):
            ran.clear()
            schedules.iterative_prune(model, Epoch(steps), None, 0.5, 3, epochs / 3, "global", lr=0.05)
            assert sum(ran) == schedules.budget_steps(epochs, Epoch(steps)), (steps, epochs, ran)


def test_iterative_masks_stay_nested_when_scores_favour_pruned_weights(monkeypatch):
    """A weight pruned in an earlier round stays pruned even when a later score ranks it highest
    (Taylor or Fisher scores of dead units can); with magnitude scores zeros rank last anyway,
    which would hide a schedule that forgot its earlier masks."""
    from labutils.prune import schedules

    rounds = []
    real_one_shot = schedules.one_shot_prune
    monkeypatch.setattr(schedules, "compute_scores",  # zeros score highest
                        lambda criterion, model, params, *a, **k: {n: 1 / (p.detach().abs() + 1e-6) for n, p in params.items()})
    monkeypatch.setattr(schedules, "one_shot_prune", lambda *a, **k: rounds.append(real_one_shot(*a, **k)) or rounds[-1])
    model = tiny_cnn()
    train, _ = tiny_loaders()
    schedules.iterative_prune(model, train, None, 0.75, 3, 0.5, "global", criterion="taylor", lr=0.05)
    assert len(rounds) == 3
    for earlier, later in zip(rounds, rounds[1:]):
        assert all(not (later[n] & ~earlier[n]).any() for n in earlier)  # nothing revived


def test_previous_masks_stay_pruned_when_live_weights_score_exactly_zero():
    """A dead ReLU unit's weights get Taylor scores of exactly 0, as pruned weights do: the pruned
    ones must still go first, so a round never revives a weight an earlier round removed."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 2.0]]))  # hidden unit 0 never fires on x > 0
        model[2].weight.copy_(torch.tensor([[3.0, 0.0], [5.0, 6.0]]))
    params = prunable_parameters(model, include_first=True, include_classifier=True)
    previous = {"0.weight": torch.ones(2, 2, dtype=torch.bool),
                "2.weight": torch.tensor([[True, False], [True, True]])}  # an earlier round pruned 2.weight[0, 1]
    batch = (torch.rand(4, 2) + 0.1, torch.tensor([0, 1, 0, 1]))
    scores = taylor_scores(model, params, [batch], batches=1)
    assert int((scores["0.weight"] == 0).sum() + (scores["2.weight"] == 0).sum()) == 5  # 4 live, 1 pruned
    masks = one_shot_prune(model, 0.25, scores=scores, params=params, previous=previous)  # one weight more
    assert all(not (masks[n] & ~previous[n]).any() for n in params)  # nothing revived
    assert sum(int((~m).sum()) for m in masks.values()) == 2


def test_gradual_schedule_follows_cubic_ramp_to_target():
    assert cubic_sparsity(0, 0.9, 0, 10) == 0.0 and cubic_sparsity(10, 0.9, 0, 10) == 0.9
    ramp = [cubic_sparsity(t, 0.9, 2, 10) for t in range(12)]
    assert ramp == sorted(ramp) and ramp[5] - ramp[4] > ramp[9] - ramp[8]  # fast early, slow late
    model = tiny_cnn()
    train, _ = tiny_loaders()
    masks, history = gradual_prune(model, train, None, 0.8, 2, lr=0.05, momentum=0.9)
    params = prunable_parameters(model)
    total = sum(p.numel() for p in params.values())
    assert abs(history[0]["measured_sparsity"] * total - 0.8 * total) <= 1
    assert len(history[0]["events"]) > 2 and sum(zeros_at(model, masks).values()) == 0


@pytest.mark.parametrize("steps", [1, 2])
def test_gradual_pruning_reaches_its_target_within_a_tiny_budget(steps):
    """A budget of a step or two (smoke runs, reduced studies) still ends at the target sparsity:
    the ramp then begins and ends at the same step."""
    assert cubic_sparsity(1, 0.9, 1, 1) == 0.9
    model = tiny_cnn()
    train, _ = tiny_loaders()
    _, history = gradual_prune(model, train, None, 0.9, steps, epoch_steps=1, lr=0.05)
    assert history[0]["measured_sparsity"] == pytest.approx(0.9, abs=0.01)


def test_a_ramp_that_would_never_end_is_refused():
    """gradual_end 70 (for 0.7) put the ramp's last step beyond the budget: nothing was pruned and
    the 'pruned' model was saved dense."""
    model = tiny_cnn()
    train, _ = tiny_loaders()
    with pytest.raises(ValueError, match="need 0 <= begin < end <= 1, got begin=0.0, end=70"):
        gradual_prune(model, train, None, 0.9, 1, end=70, epoch_steps=1, lr=0.05)


def test_nm_pattern_keeps_two_of_every_four():
    model = tiny_cnn()
    one_shot_prune(model, None, "2:4")
    for p in prunable_parameters(model).values():
        rows = p.detach().permute(0, 2, 3, 1) if p.dim() == 4 else p.detach()
        groups = (rows.reshape(-1, 4) != 0).sum(1)
        assert bool((groups <= 2).all())
    scores = {"w": torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 6.0, 1.0]])}
    assert nm_masks(scores)["w"].tolist() == [[True, False, True, False, False, True, True, False]]


def test_nm_groups_a_conv_along_its_input_channels_at_each_kernel_position():
    """Sparse kernels reduce a conv over input channels (channels_last): the groups of M must lie
    there, not along the flattened (C, kh, kw) row, where a group would mix kernel positions."""
    scores = torch.rand(3, 8, 3, 3)
    mask = nm_masks({"c": scores})["c"]
    assert mask.shape == scores.shape
    groups = mask.permute(0, 2, 3, 1).reshape(-1, 4)
    assert (groups.sum(1) == 2).all()
    top = scores.permute(0, 2, 3, 1).reshape(-1, 4).topk(2, dim=1).indices
    assert groups.gather(1, top).all()
    assert nm_masks({"c": torch.rand(3, 6, 3, 3)})["c"].all()  # 6 input channels: no pattern, dense
    with pytest.raises(ValueError, match="2:4"):
        one_shot_prune(tiny_cnn(), 0.7, "2:4")


def test_a_bad_nm_pattern_says_what_a_pattern_is():
    for scope in ("a:b", "2:4:8"):
        with pytest.raises(ValueError, match=f"N:M scope '{scope}' is not a pattern: .* e.g. '2:4'"):
            one_shot_prune(tiny_cnn(), None, scope)


def test_sparsity_must_be_a_share_below_one_in_every_schedule():
    """A percentage (90) or 1.0 is refused up front, with the share to give, before any training."""
    train, _ = tiny_loaders()
    model = tiny_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"sparsity 90 is not a share: give 0.9 for 90%"):
        round_targets(90, 3)
    with pytest.raises(ValueError, match=r"sparsity 90 is not a share: give 0.9 for 90%"):
        iterative_prune(model, train, None, 90, 3, 0.0)
    with pytest.raises(ValueError, match=r"sparsity 90 is not a share"):
        gradual_prune(model, train, None, 90, 1, lr=0.05)
    with pytest.raises(ValueError, match=r"final sparsity 90 is not a share"):
        GradualPruner(prunable_parameters(model), 90, 0, 10)
    for prune in (lambda: one_shot_prune(model, 1.0), lambda: iterative_prune(model, train, None, 1.0, 2, 0.0),
                  lambda: gradual_prune(model, train, None, 1.0, 1, lr=0.05)):
        with pytest.raises(ValueError, match="sparsity 1.0 would remove every prunable weight"):
            prune()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing pruned or trained


def test_taylor_and_fisher_match_hand_computation():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 3, bias=False))
    w = model[0].weight
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]
    grads = []
    for x, y in batches:  # dL/dW for mean cross-entropy: (softmax - onehot)^T x / B
        p = torch.softmax(x @ w.detach().T, dim=1)
        grads.append((p - F.one_hot(y, 3).float()).T @ x / len(y))
    taylor = sum((w.detach() * g).abs() for g in grads) / 3
    fisher = 0.5 * (sum(g ** 2 for g in grads) / 3) * w.detach() ** 2
    params = {"0.weight": w}
    assert torch.allclose(taylor_scores(model, params, batches, batches=3)["0.weight"], taylor, atol=1e-6)
    assert torch.allclose(fisher_scores(model, params, batches, batches=3)["0.weight"], fisher, atol=1e-7)
    assert torch.allclose(taylor_scores(model, params, batches, batches=1)["0.weight"],
                          (w.detach() * grads[0]).abs(), atol=1e-6)
    assert w.grad is None  # scoring leaves .grad alone


def test_sensitivity_scope_spares_fragile_layers_and_hits_target():
    scan = {"sparsities": [0.3, 0.6, 0.9], "baseline": 0.9, "sizes": {"robust": 1000, "fragile": 1000},
            "layers": {"robust": [0.9, 0.9, 0.88], "fragile": [0.6, 0.3, 0.1]}}
    for target in (0.5, 0.8, 0.95):
        ratios = SensitivityScope(scan)(target)
        assert ratios["robust"] > ratios["fragile"]
        assert (ratios["robust"] + ratios["fragile"]) / 2 == pytest.approx(target)


def test_sensitivity_scope_hits_low_targets_when_robust_layers_fill_up():
    """Layers that lose nothing at the first levels take the whole of a low target; the rescaling
    that makes the total exact must not push one past keeping everything and overshoot (a 10%
    target removed 24% when the spill-over was spread only once)."""
    levels = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    scan = {"sparsities": levels, "baseline": 0.9, "sizes": {"a": 100, "b": 100, "c": 100},
            "layers": {"a": [0.9] * 9, "b": [0.9] * 5 + [0.85, 0.8, 0.7, 0.6],
                       "c": [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1]}}
    scope = SensitivityScope(scan)
    for target in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
        ratios = scope(target)
        assert sum(ratios.values()) / 3 == pytest.approx(target), target
        assert all(0.0 <= r <= 1.0 for r in ratios.values()) and ratios["a"] >= ratios["b"] >= ratios["c"]


def test_compact_checkpoint_round_trip_exact_and_smaller(tmp_path: Path):
    model = build_model("resnet18", width=8)
    one_shot_prune(model, 0.9, params=prunable_parameters(model, True, True))
    sparse = save_checkpoint(tmp_path / "sparse.pth", model, sparse=True)
    dense = save_checkpoint(tmp_path / "dense.pth", model)
    assert sparse.stat().st_size < 0.25 * dense.stat().st_size
    loaded, ckpt = load_checkpoint(sparse)
    assert ckpt["encoding"] == "sparse"
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())



# -- gradient masking: one multiply per step, still exact ------------------------------------------
OPTIMIZERS = {
    "sgd-momentum": lambda ps, **kw: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.05, **kw),
    "sgd-nesterov": lambda ps, **kw: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                     weight_decay=0.05, **kw),
    "adamw": lambda ps, **kw: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, **kw),
}


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}, {"fused": True}],
                         ids=["for-loop", "foreach", "fused"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_masked_gradients_keep_pruned_weights_and_state_exactly_zero(name, impl):
    """Masks re-applied to weights and state once (first step); afterwards only the gradients are
    masked, and over 40 steps no pruned weight or optimizer state entry leaves zero."""
    model = tiny_cnn()
    masks = one_shot_prune(model, 0.7)
    # Revive the pruned weights on purpose: the first step's full pass must clear them.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    opt, enforcer = OPTIMIZERS[name](model.parameters(), **impl), MaskEnforcer(masks)
    params, x, y = dict(model.named_parameters()), torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    for step in range(1, 41):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        enforcer.before_step(model, opt)
        opt.step()
        enforcer(model, opt, step)
        for n, mask in masks.items():
            assert int((params[n][~mask] != 0).sum()) == 0, (step, n)
            for value in opt.state[params[n]].values():
                if value.shape == mask.shape:
                    assert int((value[~mask] != 0).sum()) == 0, (step, n)
    assert enforcer.full_passes == 1
    kept = masks["2.weight"]
    assert int((params["2.weight"][kept] != 0).sum()) == int(kept.sum())  # the kept ones trained


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_masking_gradients_equals_masking_after_the_step(name):
    """The kept weights follow exactly the same path as with the older enforcement (weights and
    state re-masked after every step), without clipping."""
    runs = []
    for before in (True, False):
        model = tiny_cnn()
        masks = one_shot_prune(model, 0.7)
        opt, enforcer = OPTIMIZERS[name](model.parameters()), MaskEnforcer(masks)
        torch.manual_seed(1)
        for step in range(1, 16):
            x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if before:
                enforcer.before_step(model, opt)
            opt.step()
            enforcer(model, opt, step)
        assert enforcer.full_passes == (1 if before else 15)
        runs.append(model.state_dict())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def _stepper(model, masks):
    """(optimizer, enforcer, parameters, step(i)): one SGD step of a fixed batch, as fit takes it."""
    opt, enforcer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), MaskEnforcer(masks)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))

    def step(i):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        enforcer.before_step(model, opt)
        opt.step()
        enforcer(model, opt, i)
    return opt, enforcer, dict(model.named_parameters()), step


def test_enforcer_reuses_its_buffers_and_follows_mask_changes():
    model = tiny_cnn().to(memory_format=torch.channels_last)
    masks = one_shot_prune(model, 0.5)
    opt, enforcer, params, step = _stepper(model, masks)

    step(1)
    layout = enforcer.graph_version()
    # factors laid out like their weights (channels_last): the multi-tensor kernels' fast path
    assert enforcer._factors["2.weight"].stride() == params["2.weight"].stride()
    masks["2.weight"] = masks["2.weight"] & (torch.rand(masks["2.weight"].shape) < 0.5)  # a sparser mask
    step(2)
    assert enforcer.graph_version() == layout and enforcer.full_passes == 2  # same buffers, re-masked once
    assert int((params["2.weight"][~masks["2.weight"]] != 0).sum()) == 0
    del masks["6.weight"]
    step(3)
    assert enforcer.graph_version() != layout and list(enforcer._factors) == ["2.weight"]


# Ways a student prunes further by hand, editing the masks in place (same tensor objects).
IN_PLACE_EDITS = {
    "setitem": lambda m, new: m.__setitem__(..., False),
    "and": lambda m, new: m.__iand__(new),
    "copy_": lambda m, new: m.copy_(m & new),
    "fill_": lambda m, new: m.fill_(False),
    "zero_": lambda m, new: m.zero_(),
    # Not seen by the version counter: caught when the next fit's optimizer arrives (diff review).
    "data": lambda m, new: m.data.__setitem__(..., False),
    "numpy": lambda m, new: m.numpy().__setitem__(..., False),
}


@pytest.mark.parametrize("edit", list(IN_PLACE_EDITS))
def test_enforcer_follows_masks_edited_in_place_between_fits(edit):
    """The enforcer noticed only masks replaced by other tensors: after ``masks[n][...] = False``
    a second fit with the same enforcer kept the old factors and the newly pruned weights trained
    (review, reproduced: "107 of 144" nonzero where the mask was now False)."""
    model = tiny_cnn()
    params = prunable_parameters(model)
    masks = one_shot_prune(model, 0.5)
    enforcer, (train, _) = MaskEnforcer(masks), tiny_loaders()
    fit(model, train, epochs=1, lr=0.05, momentum=0.9, weight_decay=0.05, callback=enforcer)
    torch.manual_seed(1)
    IN_PLACE_EDITS[edit](masks["2.weight"], torch.rand(masks["2.weight"].shape) < 0.5)
    assert int((~masks["2.weight"]).sum()) > masks["2.weight"].numel() // 2  # sparser than before
    fit(model, train, epochs=1, lr=0.05, momentum=0.9, weight_decay=0.05, callback=enforcer)
    assert zeros_at(model, masks) == {"2.weight": 0, "6.weight": 0}
    sparsity_report(model, params, masks)  # raises on a revived weight


def test_enforcer_copies_an_in_place_edit_into_its_buffers_once():
    """An in-place edit is copied into the same factor buffers (what a captured CUDA graph reads)
    and re-masks weights and state once; an unchanged mask costs no re-masking."""
    model = tiny_cnn()
    masks = one_shot_prune(model, 0.5)
    opt, enforcer, params, step = _stepper(model, masks)

    step(1)
    step(2)
    assert enforcer.full_passes == 1  # unchanged masks: no re-masking after the first step
    layout, factor = enforcer.graph_version(), enforcer._factors["2.weight"]
    masks["2.weight"][0] = False  # a whole filter pruned by hand
    step(3)
    assert enforcer.full_passes == 2 and enforcer.graph_version() == layout
    assert enforcer._factors["2.weight"] is factor and not factor[0].any()  # same buffer, new values
    assert int((params["2.weight"][~masks["2.weight"]] != 0).sum()) == 0
    assert int((opt.state[params["2.weight"]]["momentum_buffer"][0] != 0).sum()) == 0
    step(4)
    assert enforcer.full_passes == 2  # the edit is copied once, not at every step


def test_gradual_pruner_masks_gradients_and_stays_exact():
    model = tiny_cnn()
    params = prunable_parameters(model)
    train, _ = tiny_loaders(n=128)
    masks, history = gradual_prune(model, train, None, sparsity=0.8, epochs=3, prunings=3, lr=0.05,
                                   momentum=0.9, weight_decay=0.05)
    report = sparsity_report(model, params, masks)  # raises on a revived weight
    assert report["pruning_percentage"] == pytest.approx(80.0, abs=0.5)
    assert len(history[0]["events"]) >= 3


def test_sensitivity_scan_prunes_each_layer_alone_and_restores_it(monkeypatch):
    """Each point is its layer alone pruned to that level: "accuracy" is replaced by the total |w| of
    the prunable weights, so every point can be recomputed by hand (a tiny untrained model's
    accuracy would not move at all)."""
    from labutils.prune import sensitivity as sensitivity_module

    torch.manual_seed(0)
    model = tiny_cnn().eval()
    params = prunable_parameters(model)
    before = {n: p.detach().clone() for n, p in params.items()}
    total = lambda: float(sum(p.detach().abs().sum() for p in params.values()))
    monkeypatch.setattr(sensitivity_module, "evaluate", lambda model, loader: {"accuracy": total()})
    levels = [0.5, 0.9]
    scan = sensitivity_module.sensitivity_scan(model, params, None, levels)
    assert all(torch.equal(p, before[n]) for n, p in params.items())  # every layer restored
    assert scan["baseline"] == pytest.approx(total())
    for name, w in before.items():
        smallest = w.abs().flatten().sort().values
        expected = [total() - float(smallest[:math.ceil(level * w.numel() - 1e-6)].sum()) for level in levels]
        assert scan["layers"][name] == pytest.approx(expected, rel=1e-6)


def test_gradual_pruning_with_a_weight_average_ends_on_its_masks():
    """fit ends by loading its average (ema), which began on the dense weights: the pruned ones came
    back as small values and the run failed on its last line (review, reproduced)."""
    model, (train, _) = tiny_cnn(), tiny_loaders()
    params = prunable_parameters(model)
    masks, history = gradual_prune(model, train, None, 0.9, 3, params=params, lr=0.05, ema=0.9)
    assert history[0]["measured_sparsity"] == pytest.approx(0.9, abs=0.01)
    assert all(bool((p[~masks[n]] == 0).all()) for n, p in params.items())


@pytest.mark.parametrize("method", ["iterative", "gradual"])
def test_an_nm_pattern_is_refused_by_the_schedules_whose_sparsity_grows(method):
    """Its first round asked 21% (iterative) or 0% (gradual, mid-fine-tune) of a 50% pattern."""
    model, (train, _) = tiny_cnn(), tiny_loaders()
    with pytest.raises(ValueError, match=rf"'2:4' is a fixed pattern \(50% sparse\).*not {method} pruning"):
        if method == "iterative":
            iterative_prune(model, train, None, 0.5, 2, 1, "2:4")
        else:
            gradual_prune(model, train, None, 0.5, 1, "2:4")


def test_pruned_weights_are_positive_zeros_so_a_sparse_checkpoint_reloads_bit_for_bit(tmp_path):
    """A multiply by the mask left negative weights at -0.0; the sparse checkpoint stores only the
    nonzeros and gave them back as +0.0, while the check (torch.equal, for which -0.0 == 0.0) and
    notebook 03 said "bit for bit"."""
    from labutils.labs.unstructured import _same_bits

    model = build_model("resnet18", width=8)
    params = prunable_parameters(model)
    one_shot_prune(model, 0.9, "global", params=params)
    assert not any(bool(((p == 0) & p.signbit()).any()) for p in params.values())
    reloaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pth", model, sparse=True))
    ref = model.state_dict()
    assert all(_same_bits(v, ref[k]) for k, v in reloaded.state_dict().items())
    assert not _same_bits(torch.tensor([-0.0]), torch.tensor([0.0])) and torch.equal(torch.tensor([-0.0]), torch.tensor([0.0]))


def test_sparsity_report_counts_every_parameter_for_the_whole_model_share():
    """The whole-model share is over every parameter (BatchNorm, first conv, classifier), not over
    the prunable weights again: counted that way it would hide the dense layers' own zeros."""
    model = build_model("resnet18", width=8)
    params = prunable_parameters(model)
    one_shot_prune(model, 0.5, params=params)
    report = sparsity_report(model, params)
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    assert report["all_zeros"] == zeros, (report["all_zeros"], zeros)
    assert report["all_zeros"] > report["prunable_zeros"]  # BatchNorm shifts start at zero
    assert report["all_total"] == sum(p.numel() for p in model.parameters())
    assert report["sparsity_all_parameters"] < report["pruning_percentage"]


def test_sparsity_report_refuses_a_revived_weight():
    """With masks, one pruned weight that came back (here 1.0) is an error, not a silent count."""
    model = tiny_cnn()
    params = prunable_parameters(model)
    masks = one_shot_prune(model, 0.5, params=params)
    with torch.no_grad():
        params["2.weight"].view(-1)[int((~masks["2.weight"]).flatten().nonzero()[0])] = 1.0
    with pytest.raises(AssertionError, match="2.weight: 1 pruned weights are not zero"):
        sparsity_report(model, params, masks)


@pytest.mark.parametrize("scores", [taylor_scores, fisher_scores])
def test_data_aware_scores_leave_batchnorm_statistics_and_mode_alone(scores):
    """Scoring runs the model in eval mode: in training mode every scored batch would move the
    BatchNorm running statistics of the model about to be pruned."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 10)).train()
    bn = model[1]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    batches = [(torch.randn(8, 3, 8, 8) * 3 + 1, torch.randint(0, 10, (8,))) for _ in range(2)]
    scores(model, {"0.weight": model[0].weight}, batches, batches=2)
    assert model.training  # the mode it had is given back
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_budget_steps_rounds_fractional_epochs_to_the_nearest_step():
    """0.35 of a 10-batch epoch is 3.5 steps: 4, not the 3 that truncation gives."""
    from labutils.prune.schedules import budget_steps

    assert budget_steps(0.35, list(range(10))) == 4
    assert budget_steps(0.34, list(range(10))) == 3
    assert budget_steps(0.01, list(range(10))) == 1  # at least one step


def test_budget_steps_caps_an_epoch_at_the_loader_length():
    """``epoch_steps`` can only shorten an epoch: a cap above the loader's length is the loader."""
    from labutils.prune.schedules import budget_steps

    assert budget_steps(1, list(range(10)), epoch_steps=25) == 10
    assert budget_steps(2, list(range(10)), epoch_steps=4) == 8


def test_sensitivity_scope_does_not_trust_a_lucky_point_after_a_drop():
    """A layer that lost 0.3 at 60% and (by noise) nothing at 90% must not be pruned past 60%:
    its drops are made non-decreasing before the tolerance is applied."""
    scan = {"sparsities": [0.3, 0.6, 0.9], "baseline": 0.9, "sizes": {"bumpy": 1000, "steady": 1000},
            "layers": {"bumpy": [0.9, 0.6, 0.9], "steady": [0.88, 0.86, 0.84]}}
    scope = SensitivityScope(scan)
    assert scope.drops[0].tolist() == pytest.approx([0.0, 0.0, 0.3, 0.3])
    ratios = scope(0.5)
    assert (ratios["bumpy"] + ratios["steady"]) / 2 == pytest.approx(0.5)
    assert ratios["bumpy"] <= 0.6 and ratios["bumpy"] < ratios["steady"], ratios


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_no_prunable_weights_is_said_in_words_after_the_share(scope):
    """An empty dict failed in torch.cat's words (global) or gave {} without a word (layer); the
    share is checked first, so 95 (for 0.95) still gets its hint."""
    from labutils.prune.masks import masks_from_scores

    with pytest.raises(ValueError, match="sparsity 95 is not a share: give 0.95 for 95%"):
        masks_from_scores({}, 95, scope)
    with pytest.raises(ValueError, match="no prunable weights: the first conv and the classifier stay dense "
                                         "unless include_first / include_classifier"):
        masks_from_scores({}, 0.5, scope)
    with pytest.raises(ValueError, match="no prunable weights"):
        one_shot_prune(tiny_cnn(), None, "2:4", params={})


def test_shares_and_rounds_are_refused_with_a_hint_that_works():
    """100 was told "give 1 for 100%", and 1 is refused; True passed as 1 (False as 0); rounds=2.5
    failed in range()'s words."""
    from labutils.prune.masks import check_share

    with pytest.raises(ValueError, match=r"sparsity 100 would remove every prunable weight: give a number "
                                         r"from 0 up to, not including, 1 \(0.9 for 90%\)"):
        check_share(100)
    for flag in (True, False):
        with pytest.raises(ValueError, match=f"sparsity {flag} is not a share"):
            check_share(flag)
    with pytest.raises(ValueError, match=r"rounds=2.5 must be a whole number >= 1"):
        round_targets(0.5, 2.5)
    train, _ = tiny_loaders()
    for rounds in (2.5, 0, True):
        with pytest.raises(ValueError, match=rf"rounds={rounds!r} must be a whole number >= 1"):
            iterative_prune(tiny_cnn(), train, None, 0.5, rounds, 0.0)
    assert round_targets(0.5, 2)[-1] == 0.5


def test_a_share_may_be_a_0d_tensor_or_array_and_a_non_number_is_named_by_its_type(monkeypatch):
    """check_share refused torch.linspace's levels and select(scores, torch.tensor(0.5)), which worked
    before, as "tensor(0.1000) is not a share: give a number from 0 up to ... 1" (review, reproduced)."""
    import json

    import numpy as np

    from labutils.prune import sensitivity as sensitivity_module
    from labutils.prune import structured
    from labutils.prune.masks import check_share

    for share in (torch.tensor(0.5), np.array(0.5), np.float32(0.5), torch.tensor(0.5, dtype=torch.float64)):
        assert check_share(share) == 0.5 and type(check_share(share)) is float
    assert len(structured.select({"g": torch.rand(16)}, torch.tensor(0.5))["g"]) == 8
    monkeypatch.setattr(sensitivity_module, "evaluate", lambda model, loader: {"accuracy": 0.5})
    model = tiny_cnn()
    scan = sensitivity_module.sensitivity_scan(model, prunable_parameters(model), None, torch.linspace(0.1, 0.5, 3))
    assert scan["sparsities"] == pytest.approx([0.1, 0.3, 0.5]) and json.dumps(scan)  # plain numbers
    with pytest.raises(ValueError, match=r"sparsity 95.0 is not a share: give 0.95 for 95%"):
        check_share(torch.tensor(95.0))  # the value, not its tensor, as for a float
    for bad, kind in (("0.5", "str"), ([0.5], "list"), (torch.ones(3), "Tensor"), (None, "NoneType")):
        with pytest.raises(ValueError, match=rf"^sparsity .* is a {kind}: give a number such as 0.5$"):
            check_share(bad)
    with pytest.raises(ValueError, match=r"^share '0.5' is a str: give a number such as 0.5$"):
        structured.select({"g": torch.rand(16)}, "0.5")


def test_a_misspelt_scope_is_refused_before_any_fine_tuning(monkeypatch):
    """scope="Global" failed only when the ramp began, deep into fine-tuning."""
    from labutils.prune import schedules

    fits = []
    monkeypatch.setattr(schedules, "fit", lambda *a, **k: fits.append(1) or [])
    model, (train, _) = tiny_cnn(), tiny_loaders()
    params = prunable_parameters(model)
    kinds = r"use 'global', 'layer', an N:M pattern such as '2:4', or a callable"
    with pytest.raises(ValueError, match=rf"unknown scope 'Global': {kinds}"):
        GradualPruner(params, 0.5, 0, 10, scope="Global")
    with pytest.raises(ValueError, match="N:M scope '2:x' is not a pattern"):
        GradualPruner(params, 0.5, 0, 10, scope="2:x")
    with pytest.raises(ValueError, match=rf"unknown scope 'Global': {kinds}"):
        gradual_prune(model, train, None, 0.5, 1, "Global", lr=0.05)
    with pytest.raises(ValueError, match=rf"unknown scope 'Global': {kinds}"):
        iterative_prune(model, train, None, 0.5, 2, 1, "Global", lr=0.05)
    assert not fits
    for scope in ("global", "layer", "2:4", lambda target: {n: target for n in params}):
        GradualPruner(params, 0.5, 0, 10, scope=scope)  # the four kinds are accepted


@pytest.mark.parametrize("scope", ["global", "layer", "2:4"])
def test_previous_masks_stay_pruned_under_negative_scores_and_patterns(scope):
    """Pruned entries scored -1.0, below which negative custom scores ranked the live weights, so
    the pruned ones were kept (4 revived); an N:M pattern ignored the previous masks (18 revived).
    The sparsity reached may then exceed the target: it is counted from the zeros."""
    torch.manual_seed(0)
    model = tiny_cnn()
    params = prunable_parameters(model)
    previous = {n: torch.rand(p.shape) < 0.4 for n, p in params.items()}  # 60% pruned, no pattern
    scores = {n: -1.5 - p.detach().abs() for n, p in params.items()}  # all below -1, small |w| highest
    target = None if scope == "2:4" else 0.7  # the pattern is 50% sparse, below the 60% already pruned
    masks = one_shot_prune(model, target, scope, scores=scores, previous=previous)
    assert all(not (masks[n] & ~previous[n]).any() for n in params)  # nothing revived
    assert sum(zeros_at(model, masks).values()) == 0
    report = sparsity_report(model, params, masks)
    assert report["prunable_zeros"] == sum(int((~m).sum()) for m in masks.values())
    if target:  # the share asked, not every weight (-1.0 kept within the old masks pruned them all)
        assert 70 <= report["pruning_percentage"] < 71
    else:  # at least the pattern's 50%, and the 60% pruned before
        assert report["pruning_percentage"] > 55


def test_gradual_pruner_never_revives_when_a_layer_share_falls():
    """A callable scope may give a layer less than at the previous event: the weights it had
    pruned stay pruned."""
    model = tiny_cnn()
    params = prunable_parameters(model)
    shares = iter([{"2.weight": 0.8, "6.weight": 0.2}, {"2.weight": 0.3, "6.weight": 0.6}])
    # Events at steps 1 and 2: the ramp's start (step 0, the schedule's 0) is no event.
    pruner = GradualPruner(params, 0.5, 0, 2, scope=lambda target: next(shares))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner(model, opt, 1)
    first = {n: m.clone() for n, m in pruner.masks.items()}
    pruner(model, opt, 2)
    assert all(not (pruner.masks[n] & ~first[n]).any() for n in params)
    assert int((~pruner.masks["2.weight"]).sum()) == int((~first["2.weight"]).sum())


@pytest.mark.parametrize("n, sparsity, removed", [(10, 0.7 + 1e-8, 8), (10, 0.7, 7), (1000, 0.9, 900),
                                                  (55_296, 55 / 55_296, 55), (10 ** 6, 16_001 / 10 ** 6, 16_001)])
def test_the_rounding_tolerance_absorbs_float_error_only(n, sparsity, removed):
    """A fixed 1e-6 took 7 of 10 weights for 0.7 + 1e-8 (ceil is 8: a weight short); float error in
    share * n (55 / 55296 * 55296 = 55.00000000000001) still takes no weight more."""
    from labutils.prune.masks import masks_from_scores

    keep = masks_from_scores({"w": torch.rand(n)}, sparsity)["w"]
    assert int((~keep).sum()) == removed


def test_a_fine_tuning_length_must_be_a_finite_number_of_epochs(monkeypatch):
    """finetune_masked(epochs=-2) and iterative_prune(epochs_per_round=-1) skipped the fine-tuning
    without a word; gradual_prune(epochs=0 or -3) trained a step anyway (budget_steps' "at least one").
    0 still means no fine-tuning where a schedule can prune without it (review, reproduced)."""
    from labutils.prune import schedules

    fits = []
    monkeypatch.setattr(schedules, "fit", lambda *a, max_steps, **k: fits.append(max_steps) or [])
    model, (train, _) = tiny_cnn(), tiny_loaders()  # 4 steps an epoch
    masks = one_shot_prune(model, 0.5)
    for bad in (-2, -0.5, float("nan"), float("inf"), True, "1"):
        shown = re.escape(repr(bad))
        with pytest.raises(ValueError, match=rf"^epochs={shown} is not a fine-tuning length: give a number of "
                                             rf"epochs >= 0 \(fractions allowed, e.g. 0.5; 0 skips the fine-tuning\)"):
            schedules.finetune_masked(model, train, bad, masks, "fine-tune")
        with pytest.raises(ValueError, match=rf"^epochs_per_round={shown} is not a fine-tuning length"):
            iterative_prune(tiny_cnn(), train, None, 0.5, 2, bad)
    for bad in (0, 0.0, -3, float("nan"), True):
        with pytest.raises(ValueError, match=rf"^epochs={re.escape(repr(bad))}: gradual pruning prunes while it "
                                             rf"fine-tunes: give it more than 0 epochs"):
            gradual_prune(tiny_cnn(), train, None, 0.5, bad)
    assert not fits
    # 0: prune without fine-tuning, in one go or in rounds.
    assert schedules.finetune_masked(model, train, 0, masks, "fine-tune") == []
    _, history = iterative_prune(tiny_cnn(), train, None, 0.5, 2, 0)
    assert not fits and history[-1]["measured_sparsity"] == pytest.approx(0.5, abs=0.01)
    schedules.finetune_masked(model, train, 0.5, masks, "fine-tune")
    assert fits == [2]  # a fraction still fine-tunes: half of 4 steps


def test_per_layer_shares_must_name_the_scored_layers():
    """A misspelt layer in a dict of per-layer shares was ignored, and a layer it left out failed as
    a bare KeyError 'b' (review, reproduced)."""
    from labutils.prune.masks import masks_from_scores

    scores = {"a": torch.rand(10), "b": torch.rand(10)}
    with pytest.raises(ValueError, match=r"per-layer sparsities must give one share for each scored layer: "
                                         r"no share for \['b'\]; \['bb'\] is not a scored layer\. "
                                         r"Name the layers as the scores do: \['a', 'b'\]"):
        masks_from_scores(scores, {"a": 0.5, "bb": 0.5}, "layer")
    with pytest.raises(ValueError, match=r"share for each scored layer: \['c'\] is not a scored layer\."):
        masks_from_scores(scores, {"a": 0.5, "b": 0.5, "c": 0.9}, "layer")
    with pytest.raises(ValueError, match=r"share for each scored layer: no share for \['b'\]\."):
        masks_from_scores(scores, {"a": 0.5}, "layer")
    model = tiny_cnn()  # a callable scope's shares are held to the same
    with pytest.raises(ValueError, match=r"\['6.weigth'\] is not a scored layer"):
        one_shot_prune(model, 0.5, lambda target: {"2.weight": target, "6.weight": target, "6.weigth": 0.9})
    keep = masks_from_scores(scores, {"b": 0.7, "a": 0.3}, "layer")  # any order
    assert [int((~keep[n]).sum()) for n in "ab"] == [3, 7]


@pytest.mark.parametrize("steps, events", [(50, 17), (200, 20), (10, 6)])
def test_gradual_pruning_prunes_at_most_prunings_times_and_ends_at_its_target(monkeypatch, steps, events):
    """prunings=20 gave 35 events at 50 steps and 25 at 200 (the frequency was rounded down), the
    first at the ramp's start, where the cubic schedule is 0 and nothing is pruned (review,
    reproduced). Now: every ceil(ramp / prunings) steps after the start, and at the ramp's end."""
    from labutils.prune import schedules

    class Epoch:  # only its length matters: the faked fit reads no data
        def __len__(self):
            return steps

    def walk(model, loader, test, *, callback, max_steps, **kwargs):  # fit's steps, without training
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        for step in range(1, max_steps + 1):
            callback(model, opt, step)
        return []

    monkeypatch.setattr(schedules, "fit", walk)
    model = tiny_cnn()
    _, history = schedules.gradual_prune(model, Epoch(), None, 0.8, 1, prunings=20)
    ran, last = history[0]["events"], int(0.7 * steps)
    assert len(ran) == events <= 20
    assert ran[0]["step"] > 1 and ran[0]["sparsity"] > 0  # none at the start, at sparsity 0
    assert ran[-1] == {"step": last, "sparsity": 0.8}  # the last reaches the target
    assert [e["sparsity"] for e in ran] == [cubic_sparsity(e["step"], 0.8, 1, last) for e in ran]
    assert len({b["step"] - a["step"] for a, b in zip(ran[:-2], ran[1:-1])}) <= 1  # evenly spaced
    assert history[0]["measured_sparsity"] == pytest.approx(0.8, abs=0.01)
    params = prunable_parameters(tiny_cnn())
    assert not GradualPruner(params, 0.5, 2, 6).due(2)  # the schedule is 0 there
    assert GradualPruner(params, 0.5, 2, 6, initial=0.2).due(2)  # an initial sparsity is pruned to at once


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_hand_made_zero_one_masks_prune_report_and_nest_like_bool_masks(dtype):
    """A student's (w.abs() > t).float() or .long() mask pruned and fine-tuned, then failed at the
    report: ~ on a float is a TypeError, on a long a bitwise NOT (indices -1 and -2: a false
    "pruned weights are not zero"); previous= failed in masked_fill_ (review, reproduced)."""
    from labutils.prune.masks import apply_masks

    model = tiny_cnn()
    params = prunable_parameters(model)
    masks = {n: (p.detach().abs() > p.detach().abs().median()).to(dtype) for n, p in params.items()}
    apply_masks(model, masks)
    report = sparsity_report(model, params, masks)
    assert report["prunable_zeros"] == sum(int((m == 0).sum()) for m in masks.values())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in params.values():
        p.grad = torch.ones_like(p)
    enforcer = MaskEnforcer(masks)
    enforcer.before_step(model, opt)
    opt.step()
    assert zeros_at(model, {n: m.bool() for n, m in masks.items()}) == {n: 0 for n in params}
    deeper = one_shot_prune(model, 0.8, params=params, previous=masks)
    assert all(not (deeper[n] & (masks[n] == 0)).any() for n in params)  # nested in the hand-made masks


def test_masks_holding_other_values_than_zero_and_one_are_refused_everywhere():
    """0.5 was read as True by apply_masks and as a factor of one half by MaskEnforcer."""
    from labutils.prune.masks import apply_masks

    model = tiny_cnn()
    params = prunable_parameters(model)
    masks = {n: torch.full_like(p, 0.5) for n, p in params.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for call in (lambda: apply_masks(model, masks), lambda: sparsity_report(model, params, masks),
                 lambda: MaskEnforcer(masks)(model, opt, 0),
                 lambda: one_shot_prune(model, 0.5, params=params, previous=masks)):
        with pytest.raises(ValueError, match=r"masks must be bool tensors \(True = keep\): 2.weight"):
            call()


def test_an_interrupted_sensitivity_scan_restores_the_layer_it_was_pruning(monkeypatch):
    """A KeyboardInterrupt in the evaluation left that layer pruned in the caller's model."""
    from labutils.prune import sensitivity as sensitivity_module

    model = tiny_cnn()
    params = prunable_parameters(model)
    before = {n: p.detach().clone() for n, p in params.items()}
    calls = []

    def evaluate(model, loader):
        calls.append(1)
        if len(calls) == 3:  # the baseline, the first level, then interrupted at the second
            raise KeyboardInterrupt
        return {"accuracy": 0.5}

    monkeypatch.setattr(sensitivity_module, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        sensitivity_module.sensitivity_scan(model, params, None, [0.5, 0.9])
    assert all(torch.equal(p, before[n]) for n, p in params.items())


def test_sensitivity_levels_must_increase_and_a_scope_reads_any_order_alike(monkeypatch):
    """Levels in descending order gave other, wrong shares ({'a': 0.583, 'b': 0.417} for
    {'a': 0.9, 'b': 0.1}): the drops were accumulated in the scan's order (review, reproduced)."""
    from labutils.prune import sensitivity as sensitivity_module

    monkeypatch.setattr(sensitivity_module, "evaluate", lambda model, loader: {"accuracy": 0.5})
    model = tiny_cnn()
    for levels in ([0.9, 0.5], [0.5, 0.5]):
        with pytest.raises(ValueError, match="must increase from one entry to the next"):
            sensitivity_module.sensitivity_scan(model, prunable_parameters(model), None, levels)
    ascending = {"sparsities": [0.3, 0.6, 0.9], "baseline": 0.9, "sizes": {"a": 1000, "b": 1000},
                 "layers": {"a": [0.9, 0.9, 0.88], "b": [0.6, 0.3, 0.1]}}
    descending = dict(ascending, sparsities=[0.9, 0.6, 0.3],
                      layers={n: accs[::-1] for n, accs in ascending["layers"].items()})
    assert SensitivityScope(descending)(0.5) == pytest.approx(SensitivityScope(ascending)(0.5))


@pytest.mark.parametrize("scope", ["global", "layer", "2:4"])
def test_nan_scores_are_refused_naming_the_layer(scope):
    """NaN sorts last, so its weights were kept as the most important ([nan, 1, 2, 3] at 50% kept
    the NaN); the structured select already refused it."""
    from labutils.prune.schedules import scope_masks

    scores = {"ok": torch.rand(8, 4), "bad": torch.tensor([[float("nan"), 1.0, 2.0, 3.0]] * 8)}
    with pytest.raises(ValueError, match=r"bad: scores contain NaN/inf \(a diverged model\?\)"):
        scope_masks(scores, 0.5, scope)


@pytest.mark.parametrize("scope, message", [("global", "sparsity 0.95 would remove all 10 prunable weights"),
                                            ("layer", "sparsity 0.95 would remove all 4 weights of layer small")])
def test_a_share_just_below_one_that_would_remove_every_weight_is_refused(scope, message):
    """check_share refuses 1, but ceil(s * n) is n for any s above 1 - 1/n: 0.999999 of 174,336
    weights removed all 174,336 without a word (review, reproduced)."""
    from labutils.prune.masks import masks_from_scores

    scores = {"small": torch.rand(4), "big": torch.rand(6)}
    with pytest.raises(ValueError, match=message + r": give a lower share"):
        masks_from_scores(scores, 0.95, scope)
    keep = masks_from_scores(scores, 0.9, "global")  # 9 of 10: one weight stays
    assert sum(int(m.sum()) for m in keep.values()) == 1


def test_a_loop_that_only_calls_the_enforcer_back_copies_the_masks_once(monkeypatch):
    """Copying every mask afresh for a new optimizer took each step of a loop that never calls
    before_step for a new one, and copied every mask at every step (4x slower; diff review)."""
    from labutils.prune import masks as M

    model = tiny_cnn()
    masks = one_shot_prune(model, 0.5)
    copied, real = [], M._as_bool_mask
    monkeypatch.setattr(M, "_as_bool_mask", lambda mask, name: copied.append(name) or real(mask, name))
    opt, enforcer = torch.optim.SGD(model.parameters(), lr=0.1), MaskEnforcer(masks)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for i in range(5):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        enforcer(model, opt, i)  # re-masks every step, as documented, but copies the masks once
    assert sorted(copied) == sorted(masks) and enforcer.full_passes == 5
    assert zeros_at(model, masks) == dict.fromkeys(masks, 0)


def test_a_mask_or_score_not_shaped_like_its_weight_is_refused_naming_the_layer():
    """A per-row (6,) mask on a square (6, 6) weight was broadcast across its columns: half the
    inputs zeroed, no error, then sparsity_report blamed revived weights; a per-filter (8, 1, 1, 1)
    score competed, summed, with per-weight scores; a misspelt name was a bare KeyError (review,
    reproduced)."""
    from labutils.prune.masks import apply_masks, masks_from_scores

    torch.manual_seed(0)
    square = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2))
    w = square[1].weight
    before = w.detach().clone()
    row = masks_from_scores({"1.weight": w.detach().abs().sum(1)}, 0.5, "layer")
    shape = r"1\.weight: mask shape \(6,\) but the weight is \(6, 6\); a mask \(or score\) needs one entry per weight"
    with pytest.raises(ValueError, match=shape + r".*\.reshape\(6, 1\)\.expand_as\(weight\)"):
        apply_masks(square, row)
    with pytest.raises(ValueError, match=shape):
        sparsity_report(square, {"1.weight": w}, row)
    with pytest.raises(ValueError, match=shape):
        MaskEnforcer(row)(square, torch.optim.SGD(square.parameters(), lr=0.1), 1)
    assert torch.equal(w, before)  # refused before anything was zeroed
    # The hint's way: whole rows go.
    apply_masks(square, masks_from_scores({"1.weight": w.detach().abs().sum(1).reshape(6, 1).expand_as(w)}, 0.5, "layer"))
    assert int((w == 0).all(1).sum()) == 3 and int((w == 0).sum()) == 18

    model = tiny_cnn()
    params = prunable_parameters(model)
    conv = params["2.weight"].detach().clone()
    with pytest.raises(ValueError, match=r"2\.weight: score shape \(8, 1, 1, 1\) but the weight is \(8, 8, 3, 3\)"):
        one_shot_prune(model, 0.5, scores={"2.weight": conv.abs().sum((1, 2, 3), keepdim=True),
                                           "6.weight": params["6.weight"].detach().abs()})
    assert torch.equal(params["2.weight"], conv)
    with pytest.raises(ValueError, match=r"mask for '2\.weigth': the model has no such parameter "
                                         r"\(did you mean '2\.weight'\?\).*'0\.weight', '2\.weight'"):
        MaskEnforcer({"2.weigth": torch.ones(8, 8, 3, 3, dtype=torch.bool)})(model, None, 1)


def test_sensitivity_levels_are_checked_before_anything_is_evaluated(monkeypatch):
    """levels [0.5, 1.0] scored the baseline and a whole layer before failing on 1.0 (review)."""
    from labutils.prune import sensitivity as sensitivity_module

    calls = []
    monkeypatch.setattr(sensitivity_module, "evaluate", lambda model, loader: calls.append(1) or {"accuracy": 0.5})
    model = tiny_cnn()
    for levels, message in (([0.5, 1.0], "sensitivity level 1.0 would remove every prunable weight"),
                            ([0.5, 90], "sensitivity level 90 is not a share: give 0.9 for 90%")):
        with pytest.raises(ValueError, match=message):
            sensitivity_module.sensitivity_scan(model, prunable_parameters(model), None, levels)
    assert calls == []
