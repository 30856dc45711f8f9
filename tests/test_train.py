import numpy as np
import pytest
import torch
from torch import nn

from labutils.data import DeviceLoader, load_cifar10
from labutils.models import build_model
from labutils.train import evaluate, fit, get_device, make_schedule, seed_everything


def _loaders(root):
    train = DeviceLoader(*load_cifar10(root, True, download=False), 50, True, seed=0)
    test = DeviceLoader(*load_cifar10(root, False, download=False), 100, False)
    return train, test


def test_training_learns_the_synthetic_task(synthetic_root):
    seed_everything(0)
    train, test = _loaders(synthetic_root)
    model = build_model("resnet18", width=8)
    before = evaluate(model, test)["accuracy"]
    # 8 epochs, not 4: 4 ended at exactly 30% under torch 2.14 (its kernels round differently), on the line
    history = fit(model, train, test, epochs=8, lr=0.05)
    assert len(history) == 8 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > max(0.3, before + 0.15)


def test_callback_runs_after_every_step_and_max_steps_stops(synthetic_root):
    train, _ = _loaders(synthetic_root)
    steps = []
    fit(build_model("resnet20", width=4), train, None, epochs=3, lr=0.01,
        callback=lambda m, opt, step: steps.append(step), max_steps=6)
    assert steps == [1, 2, 3, 4, 5, 6]


def test_seeded_training_is_deterministic(synthetic_root):
    results = []
    for _ in range(2):
        seed_everything(1)
        train, test = _loaders(synthetic_root)
        model = build_model("vit_scratch", embed_dim=24, depth=1, num_heads=3)
        results.append(fit(model, train, test, epochs=1, lr=1e-3, optimizer="adamw")[-1]["train_loss"])
    assert results[0] == pytest.approx(results[1], abs=1e-6)


def test_schedules_shape():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make_schedule(opt, "onecycle", 100, warmup=0.2)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 19
    # The peak is one step (it was held two); the last step is the smallest, yet not 0 (a step at 0 changed
    # nothing: a 2-step fine-tune made one update): one step of the 81-step decay before its end.
    assert lrs[20] < lrs[19] and lrs[-1] == pytest.approx(1 / 81) and min(lrs) == lrs[-1]
    cosine = make_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), "cosine", 4, warmup=0.1)
    used = [cosine.lr_lambdas[0](i) for i in range(4)]
    assert used == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-6)  # it used 1, 0.75, 0.25 and a last step at 0
    two = make_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), "onecycle", 2, warmup=0.1)
    assert [two.lr_lambdas[0](i) for i in range(2)] == pytest.approx([1.0, 0.5])  # two updates, not one
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):  # at once, not after the warm-up's 20 steps
        make_schedule(opt, "cosin", 200, warmup=0.1)


def test_device_selection_never_assumes_cuda():
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert get_device("auto").type in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            get_device("cuda")


def test_mix_batch_targets_are_soft_and_match_the_mix():
    import numpy as np

    from labutils.train import mix_batch

    x = torch.zeros(8, 3, 32, 32)
    x[:4] = 1.0  # half the batch white, half black: the mix is visible in the pixel means
    y = torch.tensor([0] * 4 + [1] * 4)
    for seed in range(6):
        np.random.seed(seed)
        torch.manual_seed(seed)
        mixed, target = mix_batch(x, y, 10, alpha=0.8, label_smoothing=0.0)
        assert mixed.shape == x.shape and target.shape == (8, 10)
        assert torch.allclose(target.sum(1), torch.ones(8))
        # Each image's share of white pixels equals its target weight on class 0.
        assert torch.allclose(mixed.mean((1, 2, 3)), target[:, 0], atol=1e-5)


def test_fit_with_mixup_and_clipping_mixes_and_clips_every_step(synthetic_root, monkeypatch):
    from labutils import train as T

    clipped, mixed = [], []
    real_clip, real_mix = nn.utils.clip_grad_norm_, T.mix_batch
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda params, max_norm: clipped.append(max_norm)
                        or real_clip(params, max_norm))
    monkeypatch.setattr(T, "mix_batch", lambda *a, **k: mixed.append(a[3]) or real_mix(*a, **k))
    train, test = _loaders(synthetic_root)
    history = fit(build_model("vit_scratch", embed_dim=24, depth=1, num_heads=3), train, test, epochs=1,
                  lr=1e-3, optimizer="adamw", mixup=0.8, grad_clip=1.0, max_steps=3)
    assert clipped == [1.0] * 3 and mixed == [0.8] * 3
    # Against mixed targets, accuracy on the unmixed labels means little: fit leaves it out.
    assert "train_accuracy" not in history[-1] and "test_accuracy" in history[-1]


def test_fit_falls_back_to_eager_when_compile_fails(synthetic_root, monkeypatch):
    """Where torch.compile cannot work (no compiler, unsupported platform), training goes on."""
    def broken_compile(model, mode=None):
        def call(x):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    train, test = _loaders(synthetic_root)
    with pytest.warns(RuntimeWarning, match="torch.compile failed on the first step .*no C\\+\\+ compiler.*"
                                            "training continues without it"):
        history = fit(build_model("resnet20", width=4), train, test, epochs=1, lr=0.05, compile=True, max_steps=3)
    assert history[-1]["images"] == 3 * 50 and "test_accuracy" in history[-1]
    # torch.compile itself refusing the platform (Python 3.15+, a free-threaded build) at the call,
    # before any compilation: fit stopped with its RuntimeError.
    def refusing_compile(model, mode=None):
        raise RuntimeError("torch.compile is not supported on Python 3.15+")

    monkeypatch.setattr(torch, "compile", refusing_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile is not available here.*Python 3.15"):
        history = fit(build_model("resnet20", width=4), train, test, epochs=1, lr=0.05, compile=True, max_steps=3)
    assert history[-1]["images"] == 3 * 50


def test_fit_scores_its_test_split_in_the_precision_it_trains_in(monkeypatch):
    """A recipe's precision covered the training steps only: fit(precision="fp32") on a bf16 GPU
    scored its history in bf16 (on a CPU, "bf16" training was scored in fp32)."""
    import labutils.train as T
    from tiny import tiny_cnn, tiny_loaders

    seen, real = [], T.autocast

    def logging_autocast(device, precision=None, cache=True):
        seen.append(precision)
        return real(device, precision, cache)

    monkeypatch.setattr(T, "autocast", logging_autocast)
    train, test = tiny_loaders(n=32, batch=16)
    fit(tiny_cnn(), train, test, epochs=1, lr=0.05, precision="bf16", device=torch.device("cpu"))
    assert seen == ["bf16"] * len(seen) and len(seen) == 3  # two steps, then the test split


def test_a_misspelt_compile_mode_is_refused_not_trained_eagerly(synthetic_root, monkeypatch):
    """compile="reduce_overhead" trained eagerly, warning that torch.compile "is not available here"
    (review): a mode torch.compile does not know is the caller's mistake."""
    from labutils.accel import CompiledForward

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: compiled.append(mode) or model)
    train, _ = _loaders(synthetic_root)
    with pytest.raises(ValueError, match="compile='reduce_overhead' is not a torch.compile mode: use True .*"
                                         "'reduce-overhead'"):
        fit(build_model("resnet20", width=4), train, None, epochs=1, lr=0.05, compile="reduce_overhead", max_steps=1)
    with pytest.raises(ValueError, match="'max-autotune-no-cudagraphs'"):
        CompiledForward(build_model("resnet20", width=4), "fast")
    documented = ["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
    for mode in documented:  # taken
        CompiledForward(build_model("resnet20", width=4), mode)
    assert compiled == documented


def test_a_model_that_fails_by_itself_is_not_reported_as_a_compile_failure(monkeypatch):
    """A wrong Linear width was first reported as 'torch.compile is not available here
    (TorchRuntimeError ...)', then as itself (review): the eager error alone is raised."""
    import warnings

    def failing_compile(model, mode=None):
        def call(x):
            raise RuntimeError("TorchRuntimeError: Dynamo failed to run FX node")
        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    model = nn.Sequential(nn.Flatten(), nn.Linear(7, 10))  # takes 7 features, gets 3 * 32 * 32
    with warnings.catch_warnings(record=True) as caught, pytest.raises(RuntimeError, match="cannot be multiplied"):
        warnings.simplefilter("always")
        fit(model, _tiny_train(), None, epochs=1, lr=0.05, compile=True, device=torch.device("cpu"))
    assert not [w for w in caught if "compile" in str(w.message)]


def _tiny_train():
    from tiny import tiny_loaders

    return tiny_loaders(n=32, batch=16)[0]


def test_compiled_forward_is_used_when_it_works(synthetic_root, monkeypatch):
    from labutils.accel import CompiledForward

    calls, modes = [], []

    def fake_compile(model, mode=None):
        modes.append(mode)

        def call(x):
            calls.append(x.shape[0])
            return model(x)
        return call

    monkeypatch.setattr(torch, "compile", fake_compile)
    train, _ = _loaders(synthetic_root)
    fit(build_model("resnet20", width=4), train, None, epochs=1, lr=0.05, compile=True, max_steps=2)
    fit(build_model("resnet20", width=4), train, None, epochs=1, lr=0.05, compile="reduce-overhead", max_steps=1)
    assert calls == [50, 50, 50] and modes == [None, "reduce-overhead"]
    model = build_model("resnet20", width=4)
    forward = CompiledForward(model)
    forward(torch.zeros(2, 3, 32, 32))
    assert forward.working is True


# -- mixed precision: one place decides (accel.precision_for) -------------------------------------
@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"),
                                                  ((6, 1), "fp16")])
def test_precision_follows_the_gpus_compute_capability(monkeypatch, capability, expected):
    from labutils import accel

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert accel.precision_for("cuda") == expected
    assert accel.precision_for("cpu") == "fp32"
    assert accel.grad_scaler("cuda").is_enabled() == (expected == "fp16")
    # pruning scores backpropagate without a scaler: fp32 rather than fp16 there
    assert accel.unscaled_precision("cuda") == ("fp32" if expected == "fp16" else expected)


def test_precision_is_fp32_without_a_gpu(monkeypatch):
    from labutils import accel

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert accel.precision_for("cuda") == "fp32" and accel.precision_for("cpu") == "fp32"
    assert accel.precision_for("mps") == "fp32"
    assert not accel.grad_scaler("cpu").is_enabled()
    with pytest.raises(ValueError, match="unknown precision"):
        accel.autocast("cpu", "fp8")


def test_full_float32_turns_tf32_off_inside_and_restores_it(monkeypatch):
    """Notebook 04's masked-vs-removed check shows float rounding (1e-7); under the TF32 that
    tune_backends allows on a GPU it showed 1.66e-03 (H100, commit 0593f01)."""
    from labutils import accel

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    with pytest.raises(RuntimeError), accel.full_float32():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        raise RuntimeError("restored even when the block fails")
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_run_metadata_and_latency_record_the_precision(tmp_path):
    from labutils.measure import measure_latency
    from labutils.session import Session

    assert Session("smoke", tmp_path, device="cpu").info["precision"] == "fp32"
    assert measure_latency(build_model("resnet20", width=4), 32, 2, "cpu", warmup=1, iters=1)["precision"] == "fp32"


def test_fp16_training_steps_through_the_gradient_scaler_and_keeps_masks_exact(synthetic_root, monkeypatch):
    """The fp16 path (a T4's) on the CPU: autocast to fp16, scaled backward, unscale before clipping."""
    import labutils.train as T
    from labutils.prune import MaskEnforcer, one_shot_prune

    scalers, unscaled = [], []

    def spy_scaler(device, precision):
        scaler = torch.amp.GradScaler("cpu", init_scale=256.0, enabled=precision == "fp16")
        real_unscale = scaler.unscale_
        scaler.unscale_ = lambda opt: (unscaled.append(1), real_unscale(opt))
        scalers.append(scaler)
        return scaler

    monkeypatch.setattr(T, "grad_scaler", spy_scaler)
    train, _ = _loaders(synthetic_root)
    model = build_model("resnet20", width=4)
    masks = one_shot_prune(model, 0.8)
    history = fit(model, train, None, epochs=1, lr=0.05, precision="fp16", grad_clip=1.0,
                  callback=MaskEnforcer(masks), max_steps=3)
    assert scalers[0].is_enabled() and len(unscaled) == 3
    assert history[-1]["train_loss"] > 0
    params = dict(model.named_parameters())
    assert all(int((params[n][~m] != 0).sum()) == 0 for n, m in masks.items())


# -- CUDA graphs: the captured step, its eager fallback, the device-tensor learning rate ----------
def _train_tiny(root, **kw):
    from labutils.prune import MaskEnforcer, one_shot_prune

    seed_everything(3)
    train, _ = _loaders(root)
    model = build_model("resnet20", width=4)
    masks = one_shot_prune(model, 0.9)
    history = fit(model, train, None, epochs=2, lr=0.05, callback=MaskEnforcer(masks), max_steps=6, **kw)
    return model, masks, history


def test_graphs_requested_without_cuda_fall_back_to_identical_eager_training(synthetic_root):
    eager, _, h_eager = _train_tiny(synthetic_root)
    with pytest.warns(RuntimeWarning, match="CUDA graphs not used .*CUDA device"):
        graphed, masks, h_graphs = _train_tiny(synthetic_root, graphs=True)
    assert [h["train_loss"] for h in h_graphs] == [h["train_loss"] for h in h_eager]
    for (name, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")  # no optimizer steps here
def test_device_tensor_learning_rate_follows_lambdalr():
    from labutils.train import make_optimizer

    model = build_model("resnet20", width=4)
    for schedule in ("onecycle", "cosine"):
        plain = make_schedule(make_optimizer(model, "sgd", lr=0.1), schedule, 50, 0.2)
        opt = make_optimizer(model, "adamw", lr=0.1, graphs=True)
        lr_tensors = [g["lr"] for g in opt.param_groups]
        assert all(torch.is_tensor(t) for t in lr_tensors)
        tensor = make_schedule(opt, schedule, 50, 0.2)
        for _ in range(50):
            # the very tensors a captured step reads are overwritten in place
            assert all(g["lr"] is t for g, t in zip(opt.param_groups, lr_tensors))
            assert float(lr_tensors[0]) == pytest.approx(plain.get_last_lr()[0], rel=1e-6, abs=1e-9)
            assert float(lr_tensors[1]) == float(lr_tensors[0])
            plain.step()
            tensor.step()


class _FakeGraph:
    """Stands in for a CUDA graph on the CPU: 'capture' runs the step once on the static inputs
    (as the capture's own step), each later replay reruns it and writes into the same outputs."""

    def __init__(self, fn, static):
        self.fn, self.static, self.replays = fn, static, -1
        self.out = fn(*static)

    def replay(self):
        self.replays += 1
        if self.replays:
            for o, new in zip(self.out, self.fn(*self.static)):
                o.copy_(new)


def test_graphed_step_plumbing_keeps_masks_exact_and_matches_eager(synthetic_root, monkeypatch):
    """fit(graphs=True) with the capture faked: warm-up steps, one capture per input shape, later
    steps copied into static buffers and replayed, masks exact, same numbers as eager training."""
    from labutils import accel

    graphs = []

    def fake_capture(fn, *static):
        graphs.append(_FakeGraph(fn, static))
        return graphs[-1], graphs[-1].out

    import labutils.train as T

    for module in (accel, T):
        monkeypatch.setattr(module, "graphs_unavailable", lambda device: None)
    monkeypatch.setattr(accel, "_SideStream", lambda: (lambda fn, *args: fn(*args)))
    monkeypatch.setattr(accel, "_capture", fake_capture)
    graphed, masks, h_graphs = _train_tiny(synthetic_root, graphs=True)
    # The same optimizer eagerly (learning rates in tensors: fp32 rounding alone moves a 90%-pruned
    # ResNet's weights by 1e-4 within 6 steps, so the comparison needs the same arithmetic).
    real_optimizer = T.make_optimizer
    monkeypatch.setattr(T, "make_optimizer", lambda *a, graphs=False, **k: real_optimizer(*a, graphs=True, **k))
    eager, _, h_eager = _train_tiny(synthetic_root)
    # step 1 lays out the mask buffers (a new graph_version: warm-up starts again), steps 2-4 warm
    # up, step 5 is the capture's own, step 6 a replay
    assert len(graphs) == 1 and graphs[0].replays == 1
    params = dict(graphed.named_parameters())
    assert all(int((params[n][~m] != 0).sum()) == 0 for n, m in masks.items())
    assert [h["train_loss"] for h in h_graphs] == [h["train_loss"] for h in h_eager]
    for (name, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        assert torch.equal(a, b), name


def test_graphed_step_recaptures_when_the_version_changes_and_falls_back_when_capture_fails(monkeypatch):
    from labutils import accel

    monkeypatch.setattr(accel, "graphs_unavailable", lambda device: None)
    monkeypatch.setattr(accel, "_SideStream", lambda: (lambda fn, *args: fn(*args)))
    captures = []

    def fake_capture(fn, *static):
        captures.append(_FakeGraph(fn, static))
        return captures[-1], captures[-1].out

    monkeypatch.setattr(accel, "_capture", fake_capture)
    version = [0]
    step = accel.GraphedStep(lambda x: (x * 2,), "cuda", warmup=2, version=lambda: version[0])
    for _ in range(4):
        (out,) = step(torch.ones(3))
    assert len(captures) == 1 and torch.equal(out, torch.full((3,), 2.0))
    version[0] = 1  # e.g. new mask buffers: capture again after a new warm-up
    for _ in range(3):
        step(torch.ones(3))
    assert len(captures) == 2

    def failing(fn, *static):  # as torch.cuda.graph fails: the body's error, then its end's on top
        try:
            raise RuntimeError("operation not permitted when stream is capturing")
        finally:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    monkeypatch.setattr(accel, "_capture", failing)
    broken = accel.GraphedStep(lambda x: (x + 1,), "cuda", warmup=1)
    broken(torch.zeros(2))
    with pytest.warns(RuntimeWarning, match="capture failed: RuntimeError"):
        (out,) = broken(torch.zeros(2))
    assert torch.equal(out, torch.ones(2))
    assert broken.reason == "capture failed: RuntimeError: operation not permitted when stream is capturing"

def test_ema_weights_are_what_is_scored_and_kept(synthetic_root):
    """With ema=0.5 over three steps, warmed up (decays 2/11 then 3/12), the model ends as
    (2/11 w1 + 9/11 w2) 1/4 + 3/4 w3 of the weights w1..w3 that plain training passes through,
    and that average is what the history scores."""
    trajectory = []

    def run(**kw):
        seed_everything(0)
        train, test = _loaders(synthetic_root)
        model = build_model("resnet20", width=4)
        return model, fit(model, train, test, epochs=1, lr=0.05, max_steps=3, **kw)

    plain, _ = run(callback=lambda m, opt, step: trajectory.append([p.detach().clone() for p in m.parameters()]))
    averaged, history = run(ema=0.5)
    w1, w2, w3 = trajectory
    for a, b, c, q, p in zip(w1, w2, w3, averaged.parameters(), plain.parameters()):
        assert torch.allclose(q, (a * 2 / 11 + b * 9 / 11) / 4 + c * 3 / 4, atol=1e-6)
    assert any(not torch.equal(q, p) for q, p in zip(averaged.parameters(), plain.parameters()))
    _, test = _loaders(synthetic_root)
    assert history[-1]["test_accuracy"] == evaluate(averaged, test)["accuracy"]


def test_weight_average_copies_integer_buffers_and_refuses_a_bad_decay():
    from labutils.train import WeightAverage

    model = build_model("resnet20", width=4)
    average = WeightAverage(model, 0.9)
    for steps in (3, 5):  # BatchNorm's batch counts follow the model, they are not averaged
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.num_batches_tracked.fill_(steps)
        average.update_parameters(model)
    counts = {int(m.num_batches_tracked) for m in average.module.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert counts == {5}
    with pytest.raises(ValueError, match="ema must lie between 0 and 1"):
        WeightAverage(model, 1.5)


def test_a_short_run_with_ema_keeps_the_trained_weights_not_the_first_steps():
    """With ema=0.999 and no warm-up, 20 steps kept 98% of the first step's weights, and fit copied
    that into the model (review: a 150-step run scored 10%, chance, against 20% without ema)."""
    from tiny import tiny_cnn, tiny_loaders

    from labutils.train import WeightAverage

    trajectory = []
    train, test = tiny_loaders()  # 4 steps an epoch
    model = tiny_cnn()
    fit(model, train, test, epochs=5, lr=0.05, ema=0.999, device=torch.device("cpu"),
        callback=lambda m, opt, step: trajectory.append([p.detach().clone() for p in m.parameters()]))
    first, last = trajectory[0], trajectory[-1]
    kept = [p.detach() for p in model.parameters()]
    far = sum(float((p - a).norm()) for p, a in zip(kept, first))
    near = sum(float((p - b).norm()) for p, b in zip(kept, last))
    assert near < far / 2  # nearer the trained weights than the first step's
    average = WeightAverage(model, 0.999)
    assert [round(average.decay_at(t), 3) for t in (1, 8, 80)] == [0.182, 0.5, 0.9]
    assert average.decay_at(10**6) == 0.999


class _Mirrored(torch.nn.Module):
    """The mean of a model's logits on the images and on their mirror images."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x).float() + self.model(x.flip(-1)).float()) / 2


def test_flip_tta_averages_the_mirrored_logits(synthetic_root):
    _, test = _loaders(synthetic_root)
    seed_everything(0)
    model = build_model("resnet20", width=4).eval()
    with_tta = evaluate(model, test, tta_flip=True)
    assert with_tta == evaluate(_Mirrored(model), test)
    assert with_tta["loss"] != evaluate(model, test)["loss"]


def test_compile_modes_that_capture_cuda_graphs_themselves_are_known(monkeypatch):
    """max-autotune captures CUDA graphs too (inductor's triton.cudagraphs), not only
    reduce-overhead: fit must not wrap either in a graph of its own."""
    import labutils.train as T
    from labutils.accel import compile_uses_cudagraphs

    modes = (None, False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    assert [compile_uses_cudagraphs(m) for m in modes] == [False, False, False, False, True, True, False]
    monkeypatch.setattr(T, "graphs_unavailable", lambda device: None)  # as on a GPU
    assert (T._graphs_obstacle(torch.device("cuda"), "bf16", None, "max-autotune")
            == "compile='max-autotune' already uses CUDA graphs for the forward and backward")


def test_each_epoch_logs_the_rate_its_last_step_used():
    """The record gave the next step's rate: the last epoch said 0.0 whatever its steps used."""
    from tiny import tiny_cnn, tiny_loaders

    train, _ = tiny_loaders()  # 4 steps an epoch
    history = fit(tiny_cnn(), train, None, epochs=2, lr=0.1, schedule="onecycle", warmup=0.25, device=torch.device("cpu"))
    factor = make_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "onecycle", 8, 0.25).lr_lambdas[0]
    assert [h["lr"] for h in history] == pytest.approx([0.1 * factor(3), 0.1 * factor(7)])  # steps 4 and 8
    assert history[-1]["lr"] == pytest.approx(0.1 / 7) and history[0]["lr"] == pytest.approx(0.1 * 5 / 7)  # 6 decay steps


def test_a_loader_without_a_whole_batch_is_refused_not_trained_on():
    """A batch size above the training images: the loader drops its partial batch, so fit ran no
    step and reported a loss of 0 (try_recipe said 'after 1 epoch'), and notebook 06 divided by zero."""
    from tiny import tiny_cnn, tiny_loaders

    train, _ = tiny_loaders(n=32, batch=64)
    assert len(train) == 0
    with pytest.raises(ValueError, match="the training loader holds no whole batch: batch_size 64 is more than its "
                                         "images; use a smaller batch_size"):
        fit(tiny_cnn(), train, None, epochs=1, lr=0.1)


def test_evaluate_in_fp32_scores_without_tf32(monkeypatch):
    """fit allows TF32 on GPUs for the whole process; evaluate(precision="fp32") promised the weights
    scored exactly as they are, and ran its matmuls in TF32 (errors of 1e-3) after any fit."""
    from tiny import tiny_loaders

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.seen = nn.Linear(3 * 32 * 32, 10), []

        def forward(self, x):
            self.seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return self.fc(x.flatten(1))

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    _, test = tiny_loaders(n=32, batch=16)
    model = Probe()
    evaluate(model, test, precision="fp32")
    assert model.seen == [(False, False)] * len(model.seen) and model.seen
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored after
    model.seen.clear()
    evaluate(model, test)  # the device's autocast: TF32 as training has it
    assert model.seen[0] == (True, True)


def test_seed_everything_takes_a_torch_dataloader_without_a_generator():
    """data.get_loaders' DataLoaders have generator=None: seed_everything(seed, loader) was an
    AttributeError. Their shuffle draws from torch's global generator, which it seeds."""
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.arange(20)), batch_size=5, shuffle=True)
    assert loader.generator is None
    orders = []
    for _ in range(2):
        seed_everything(4, loader)
        torch.rand(3)  # draws between the seed and the shuffle: the same each time
        orders.append([int(i) for (batch,) in loader for i in batch])
    assert orders[0] == orders[1] and orders[0] != list(range(20))
    seeded = DataLoader(TensorDataset(torch.arange(20)), batch_size=5, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    first = [int(i) for (batch,) in seeded for i in batch]
    seed_everything(1, seeded)  # a loader's own generator is still reset
    assert [int(i) for (batch,) in seeded for i in batch] == first


def _refused_before_training(settings: dict, said: str) -> None:
    """fit with ``settings`` raises ValueError matching ``said`` before any step."""
    from tiny import tiny_cnn

    steps = []
    with pytest.raises(ValueError, match=said):
        fit(tiny_cnn(), _tiny_train(), None, **{"epochs": 1, "lr": 0.1, **settings}, device=torch.device("cpu"),
            callback=lambda m, opt, step: steps.append(step))
    assert steps == []  # before any training


@pytest.mark.parametrize("lengths, said", [
    ({"epochs": 0}, r"epochs=0 must be a whole number >= 1; for part of an epoch give max_steps too \(prune.schedules.fit_budget"),
    ({"epochs": 1.5}, "epochs=1.5 must be a whole number >= 1"),
    ({"epochs": True}, "epochs=True must be a whole number"),
    ({"max_steps": 0}, r"max_steps=0 must be a whole number >= 1 \(optimizer steps\), or None for no limit"),
    ({"max_steps": 2.5}, "max_steps=2.5 must be"),
    ({"eval_every": 0}, r"eval_every=0 must be a whole number >= 1 .*pass test_loader=None"),
    ({"eval_every": None}, "eval_every=None must be"),
])
def test_fit_refuses_lengths_it_cannot_run(lengths, said):
    """epochs=0 returned [] (callers then failed at history[-1]), 1.5 was a TypeError, max_steps=0
    trained a step and printed 'epoch 1/0', eval_every=0 divided by zero after a whole epoch."""
    _refused_before_training(lengths, said)


def test_evaluate_restores_training_mode_when_interrupted_and_leaves_batchnorm_alone():
    """An interrupt mid-evaluation left a training model in eval mode (review)."""
    from tiny import tiny_loaders

    _, test = tiny_loaders(n=128, batch=16)  # 4 test batches
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, test)
    assert model.training
    for name, value in model.state_dict().items():  # running stats and num_batches_tracked untouched
        assert torch.equal(value, before[name]), name
    calls = []

    def interrupt_on_the_second_batch(module, inputs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    model.register_forward_pre_hook(interrupt_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, test)
    assert model.training and all(m.training for m in model.modules())
    assert len(calls) == 2


@pytest.mark.parametrize("settings, said", [
    ({"weight_decay": -0.5}, r"weight_decay=-0.5 must be a number >= 0"),
    ({"momentum": 1.5}, r"momentum=1.5 must be a number from 0 up to, not including, 1"),
    ({"momentum": 1}, r"momentum=1 must be"),
    ({"warmup": 20}, r"warmup 20 is not a share: give 0.2 for 20%"),
    ({"warmup": 100}, r"warmup 100 is not a share: give 1 for 100%"),  # 1 is allowed here
    ({"warmup": -0.1}, r"warmup -0.1 is not a share"),
    ({"mixup": -1}, r"mixup=-1 must be a number >= 0"),
    ({"label_smoothing": 10, "mixup": 0.2}, r"label_smoothing 10 is not a share: give 0.1 for 10%"),
    ({"lr": "0.1"}, r"lr='0.1' must be a positive number"),
    ({"lr": 0}, r"lr=0 must be a positive number"),
])
def test_fit_refuses_settings_that_would_train_wrongly(settings, said):
    """grad_clip=-1 reversed the gradients, weight_decay=-0.5, momentum=1.5, warmup=20 (for 20%)
    and label_smoothing=10 under mixup trained without a word; mixup=-1 and lr="0.1" failed at the
    first step in numpy's or torch's words (review)."""
    _refused_before_training(settings, said)


def test_a_negative_grad_clip_is_refused_and_zero_or_none_means_no_clipping():
    """clip_grad_norm_ with max -1 reversed the gradients: the loss climbed (review)."""
    from tiny import tiny_cnn

    with pytest.raises(ValueError, match=r"grad_clip=-1.0 must be a number > 0 .*or None or 0 for no clipping"):
        fit(tiny_cnn(), _tiny_train(), None, epochs=1, lr=0.1, grad_clip=-1.0, device=torch.device("cpu"))
    losses = [fit(tiny_cnn(), _tiny_train(), None, epochs=1, lr=0.1, max_steps=2, grad_clip=clip,
                  device=torch.device("cpu"))[-1]["train_loss"] for clip in (None, 0, 0.0)]
    assert losses[0] == losses[1] == losses[2]


def test_warmup_is_a_share_and_its_steps_are_rounded_not_cut_by_float_error():
    """0.29 * 100 = 28.999...: int() warmed up for 28 steps; warmup=20 (for 20%) went unchecked."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    for warmup, steps in ((0.29, 29), (0.57, 57), (0.2, 20)):
        factor = make_schedule(opt, "onecycle", 100, warmup).lr_lambdas[0]
        assert factor(steps - 1) == 1.0 and factor(steps - 2) < 1.0 and factor(steps) < 1.0, warmup
    with pytest.raises(ValueError, match="warmup 20 is not a share: give 0.2 for 20%"):
        make_schedule(opt, "onecycle", 100, warmup=20)
    with pytest.raises(ValueError, match="warmup -0.5 is not a share"):
        make_schedule(opt, "cosine", 100, warmup=-0.5)
    assert make_schedule(opt, "onecycle", 100, warmup=1).lr_lambdas[0](99) == 1.0  # all warm-up: allowed


def test_ema_keeps_weights_pruned_during_the_fit_at_zero():
    """With a GradualPruner and ema, the average began on the dense weights: every pruned weight came
    back nonzero in the model fit kept and scored (review: 564 of 564)."""
    from tiny import tiny_cnn, tiny_loaders

    from labutils.prune import GradualPruner, prunable_parameters

    model = tiny_cnn()
    train, test = tiny_loaders()  # 4 steps an epoch
    pruner = GradualPruner(prunable_parameters(model), 0.5, begin=2, end=6)
    history = fit(model, train, test, epochs=2, lr=0.05, callback=pruner, ema=0.9, device=torch.device("cpu"))
    params = dict(model.named_parameters())
    pruned = sum(int((~m).sum()) for m in pruner.masks.values())
    assert pruned > 0 and len(pruner.events) > 1  # the masks grew during the fit
    for name, mask in pruner.masks.items():
        assert not params[name][~mask].any(), name
    assert history[-1]["test_accuracy"] == evaluate(model, test)["accuracy"]  # the masked average was scored


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_on_a_missing_gpu_says_so_in_words():
    """torch said "Found no NVIDIA driver" (or that it was not compiled with CUDA)."""
    from tiny import tiny_cnn

    with pytest.raises(RuntimeError, match=r"^DEVICE \(--device\) 'cuda', but no CUDA GPU is visible: use auto or cpu$"):
        fit(tiny_cnn(), _tiny_train(), None, epochs=1, lr=0.1, device="cuda")


def test_evaluate_refuses_a_loader_without_images():
    """evaluate(model, []) returned accuracy 0.0 for n=0, which reads as a broken model."""
    from tiny import tiny_cnn

    with pytest.raises(ValueError, match="no images to score: the loader gave no batches"):
        evaluate(tiny_cnn(), [])


def test_fit_refuses_an_empty_test_loader_before_training_and_takes_a_tensor_lr():
    """An empty test loader failed at the first scoring, after eval_every epochs of training; a
    one-element tensor lr (as graphs=True keeps it) worked before the settings were checked."""
    from tiny import tiny_cnn

    empty = DeviceLoader(np.zeros((0, 3, 32, 32), np.uint8), np.zeros(0, np.int64), 32, False)
    steps = []
    with pytest.raises(ValueError, match="the test loader gives no batch"):
        fit(tiny_cnn(), _tiny_train(), empty, epochs=1, lr=0.05, callback=lambda *args: steps.append(1))
    assert not steps
    fit(tiny_cnn(), _tiny_train(), None, epochs=1, lr=torch.tensor(0.05), max_steps=1)


def _diverged_cnn() -> nn.Module:
    """tiny_cnn with a NaN weight: its loss is NaN from the first step."""
    from tiny import tiny_cnn

    model = tiny_cnn()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    return model


def test_a_diverged_fit_warns_once_and_stops_only_when_asked():
    """A NaN loss trained on for every remaining epoch without a word (the model then scores at
    chance); the baseline failed only at its save, after the whole run. By default fit goes on (a
    sweep of notebook 06 must continue past a diverged run), warning once."""
    import warnings

    from tiny import tiny_cnn, tiny_loaders

    train, test = tiny_loaders(n=32, batch=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(_diverged_cnn(), train, test, epochs=3, lr=0.1, device=torch.device("cpu"), desc="tiny")
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(history) == 3 and all(np.isnan(h["train_loss"]) for h in history)
    assert len(said) == 1 and said[0].startswith("tiny: training diverged at epoch 1 of 3 (training loss nan; "
                                                 "lower lr, or set grad_clip); training on")
    steps = []
    with pytest.raises(FloatingPointError, match=r"^tiny: training diverged at epoch 1 of 3 \(training loss nan; "
                       r"lower lr, or set grad_clip\); stopped$"):
        fit(_diverged_cnn(), train, test, epochs=3, lr=0.1, device=torch.device("cpu"), desc="tiny",
            stop_if_diverged=True, callback=lambda m, opt, step: steps.append(step))
    assert steps == [1, 2]  # the first epoch's two steps: not the other epochs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy run says nothing
        fit(tiny_cnn(), train, None, epochs=1, lr=0.05, device=torch.device("cpu"), stop_if_diverged=True)


def test_an_interrupted_training_closes_its_progress_bar(monkeypatch):
    """Closed only at the end: a cell interrupted or failed inside fit kept a live widget, shown as
    "Error displaying widget" in the saved notebook, never its static copy."""
    from labutils import train as T
    from tiny import tiny_cnn, tiny_loaders

    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.closed = False
            bars.append(self)

        def update(self, n=1):
            pass

        def set_postfix_str(self, *args, **kwargs):
            pass

        def write(self, *args, **kwargs):
            pass

        def close(self):
            self.closed = True

    def interrupt(model, opt, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "progress", Bar)
    train, _ = tiny_loaders(n=32, batch=16)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_cnn(), train, None, epochs=2, lr=0.05, device=torch.device("cpu"), callback=interrupt)
    assert len(bars) == 1 and bars[0].closed
    # A study's own bar, the one shown while its fits run without theirs (review): iterative pruning's.
    from labutils.prune import schedules

    def interrupted_fit(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(schedules, "progress", Bar)
    monkeypatch.setattr(schedules, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        schedules.iterative_prune(tiny_cnn(), train, None, 0.5, rounds=2, epochs_per_round=1)
    assert len(bars) == 2 and bars[1].closed


@pytest.mark.parametrize("settings, said", [
    ({"label_smoothing": 1.0}, r"label_smoothing=1.0 must be a number in \[0, 1\)"),
    ({"label_smoothing": 1, "mixup": 0.2}, r"label_smoothing=1 must be a number in \[0, 1\)"),
    ({"ema": "0.99"}, r"ema='0.99' must be a number in \[0, 1\)"),
    ({"ema": 1}, r"ema=1 must be a number in \[0, 1\)"),
    ({"ema": -0.5}, r"ema=-0.5 must be"),
    ({"ema": True}, r"ema=True must be"),
])
def test_fit_refuses_a_label_smoothing_or_ema_the_profiles_refuse(settings, said):
    """label_smoothing=1.0 (every target uniform) trained on, though a profile refuses it; ema='0.99'
    failed inside with "'<' not supported"."""
    _refused_before_training(settings, said)


def test_the_baseline_stops_a_diverged_run_and_try_recipe_shows_it(tmp_path, monkeypatch, capsys):
    """The baseline trained on to the end and failed at the save; a tried recipe that diverges is
    shown (its history, said diverged), not stopped (diff review)."""
    from labutils.labs import baseline as B
    from labutils.profile_check import recipe_problems
    from labutils.session import Session

    from labutils.errors import TrainingDiverged

    s = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit_scratch"])
    with pytest.warns(RuntimeWarning, match="training diverged"):
        history = B.try_recipe(s, "cnn", model=_diverged_cnn(), epochs=2)
    assert len(history) == 2 and "(diverged: its training loss is not a number)" in capsys.readouterr().out
    monkeypatch.setattr(s, "new_model", lambda name, weights=None: _diverged_cnn())
    # Notebook 02's loop skipped the models after it without a word, under a traceback through fit.
    with pytest.raises(TrainingDiverged, match=r"^cnn: training diverged at epoch 1 of .*; stopped: nothing saved "
                                               r"for cnn; vit_scratch, after it in MODELS, not trained yet$") as info:
        B.train_baseline(s, "cnn")
    assert isinstance(info.value, FloatingPointError) and info.value._render_traceback_()[0].startswith(
        "TrainingDiverged: cnn: training diverged")  # what IPython shows in place of the traceback
    assert s.metrics("cnn", "before_pruning") is None  # nothing written
    assert "stop_if_diverged" not in B.RECIPE_KEYS  # the baseline's choice, not a recipe's
    with pytest.raises(ValueError, match="try_recipe cannot change stop_if_diverged"):
        B.try_recipe(s, "cnn", stop_if_diverged=False)
    assert recipe_problems({"stop_if_diverged": False}) == []  # not a rule: not a recipe key


def test_try_recipe_with_a_model_given_draws_the_same_whatever_ran_before(tmp_path, capsys):
    """new_model reseeds, the model= path did not: TrivialAugment's draws hung on what ran before
    (losses 2.31083 vs 2.31055 for the same call twice)."""
    import copy

    from labutils.labs import baseline as B
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.profile["train"]["cnn"].update(max_steps=3)
    base = s.new_model("cnn")
    losses = []
    for _ in range(2):
        torch.rand(7), np.random.rand(3)  # whatever ran before
        history = B.try_recipe(s, "cnn", model=copy.deepcopy(base), epochs=1, augment="trivialaugment")
        losses.append(history[-1]["train_loss"])
    assert losses[0] == losses[1]


def test_the_baselines_train_seconds_are_its_training_time_and_seconds_its_wall_time(tmp_path, capsys):
    """train_seconds was the wall time (the per-epoch test scoring included), printed beside images/s
    computed from the history's train_seconds, which leave the scoring out."""
    from labutils.labs import baseline as B
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.profile["train"]["cnn"].update(max_steps=2)
    record = B.train_baseline(s, "cnn")
    history = record["history"]
    assert record["train_seconds"] == sum(h["train_seconds"] for h in history) < record["seconds"]
    assert record["images_per_second"] == sum(h["images"] for h in history) / record["train_seconds"]
    capsys.readouterr()
    B.print_results({"cnn": record})
    out = capsys.readouterr().out
    assert (f"trained in {record['train_seconds']:.0f}s ({record['images_per_second']:,.0f} training images/s; "
            f"{record['seconds']:.0f}s with the test split's scoring)") in out


def test_the_baselines_record_and_printout_name_the_settings_taken_from_fits_defaults(tmp_path, capsys):
    """Label smoothing 0.1, warm-up 0.2 and momentum 0.9 came from fit's defaults: neither printed nor
    in the metrics' train_config, which held the profile's six keys alone (review, notebook 02)."""
    from labutils.labs import baseline as B
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.profile["train"]["cnn"].update(max_steps=2, warmup=0.5)
    config = B.train_baseline(s, "cnn")["train_config"]
    assert config == s.train_config("cnn") | config  # the profile's recipe, as it sets it
    assert (config["warmup"], config["label_smoothing"], config["momentum"], config["ema"]) == (0.5, 0.1, 0.9, 0.0)
    assert not {"callback", "device", "desc", "grad_clip", "precision"} & set(config)  # plain settings only
    capsys.readouterr()
    B.print_recipes(s, ["cnn"])
    recipe, defaults = capsys.readouterr().out.split("fit's defaults: ")
    assert "warmup=0.5" in recipe and "warmup" not in defaults
    assert defaults.startswith("momentum=0.9, label_smoothing=0.1, mixup=0.0")
    assert "momentum" not in B.fit_defaults({"optimizer": "adamw"})  # AdamW has none to take


def _broken_compile(model, mode=None):
    def call(x):
        raise RuntimeError("no C++ compiler found")
    return call


def test_fits_history_records_the_speed_modes_that_ran_not_those_asked(monkeypatch):
    """compile and graphs fell back to eager with a warning alone: nothing kept what ran, and the
    metrics recorded the modes asked with eager speeds (review). The last epoch's "ran" says."""
    from labutils import accel
    import labutils.train as T

    train = _tiny_train()  # 2 steps an epoch
    run = dict(epochs=3, lr=0.05, max_steps=6)
    assert fit(build_model("resnet20", width=4), train, None, **run)[-1]["ran"] == {"compile": False, "graphs": False}
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)  # compiles, and works
    assert fit(build_model("resnet20", width=4), train, None, compile=True, **run)[-1]["ran"] == {
        "compile": True, "graphs": False}
    monkeypatch.setattr(torch, "compile", _broken_compile)
    with pytest.warns(RuntimeWarning):
        ran = fit(build_model("resnet20", width=4), train, None, compile=True, graphs=True, **run)[-1]["ran"]
    assert ran["compile"] is False and ran["graphs"] is False
    assert ran["why"] == ("compile: torch.compile failed on the first step (RuntimeError: no C++ compiler found); "
                          "graphs: CUDA graphs need a CUDA device, this is cpu")
    monkeypatch.undo()
    # As on a GPU (the capture faked): used after 3 warm-up steps, or not at all in a shorter run.
    for module in (accel, T):
        monkeypatch.setattr(module, "graphs_unavailable", lambda device: None)
    monkeypatch.setattr(accel, "_SideStream", lambda: (lambda fn, *args: fn(*args)))
    def fake_capture(fn, *static):
        graph = _FakeGraph(fn, static)
        return graph, graph.out

    monkeypatch.setattr(accel, "_capture", fake_capture)
    assert fit(build_model("resnet20", width=4), train, None, graphs=True, **run)[-1]["ran"] == {
        "compile": False, "graphs": True}
    short = fit(build_model("resnet20", width=4), train, None, graphs=True, **dict(run, max_steps=3))[-1]["ran"]
    assert short == {"compile": False, "graphs": False, "why": "graphs: the run ended before a step was captured "
                                                               "(each batch shape first runs 3 eager warm-up steps)"}


def test_the_baseline_records_the_speed_modes_that_ran_beside_those_asked(tmp_path, monkeypatch):
    """A smoke baseline with compile=True, graphs=True where torch.compile fails and there is no
    CUDA recorded train_config compile/graphs True True, and images/s as if they ran (review)."""
    from labutils.labs import baseline as B
    from labutils.session import Session

    monkeypatch.setattr(torch, "compile", _broken_compile)
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.profile["train"]["cnn"].update(max_steps=2, compile=True, graphs=True)
    with pytest.warns(RuntimeWarning):
        record = B.train_baseline(s, "cnn")
    assert record["train_config"]["compile"] is True and record["train_config"]["graphs"] is True  # asked
    assert record["ran"]["compile"] is False and record["ran"]["graphs"] is False  # ran
    assert "torch.compile failed" in record["ran"]["why"] and "CUDA graphs need a CUDA device" in record["ran"]["why"]
    assert s.metrics("cnn", "before_pruning")["ran"] == record["ran"]  # saved with the metrics
