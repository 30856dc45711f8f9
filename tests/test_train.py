import pytest
import torch

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
    history = fit(model, train, test, epochs=4, lr=0.05)
    assert len(history) == 4 and history[-1]["train_loss"] < history[0]["train_loss"]
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
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 19 and lrs[-1] < 0.02
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule(opt, "step", 10).step()


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


def test_fit_with_mixup_and_clipping_runs(synthetic_root):
    train, test = _loaders(synthetic_root)
    history = fit(build_model("vit_scratch", embed_dim=24, depth=1, num_heads=3), train, test, epochs=1,
                  lr=1e-3, optimizer="adamw", mixup=0.8, grad_clip=1.0, max_steps=3)
    assert history[-1]["train_loss"] > 0 and "test_accuracy" in history[-1]


def test_fit_falls_back_to_eager_when_compile_fails(synthetic_root, monkeypatch):
    """Where torch.compile cannot work (no compiler, unsupported platform), training goes on."""
    def broken_compile(model, mode=None):
        def call(x):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    train, test = _loaders(synthetic_root)
    with pytest.warns(RuntimeWarning, match="torch.compile is not available here.*no C\\+\\+ compiler"):
        history = fit(build_model("resnet20", width=4), train, test, epochs=1, lr=0.05, compile=True, max_steps=3)
    assert history[-1]["images"] == 3 * 50 and "test_accuracy" in history[-1]


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


def test_ema_weights_are_what_is_scored_and_kept(synthetic_root):
    """With ema=0.5 over three steps the model ends as 1/4 w1 + 1/4 w2 + 1/2 w3 of the weights
    w1..w3 that plain training passes through, and that average is what the history scores."""
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
        assert torch.allclose(q, a / 4 + b / 4 + c / 2, atol=1e-6)
    assert any(not torch.equal(q, p) for q, p in zip(averaged.parameters(), plain.parameters()))
    _, test = _loaders(synthetic_root)
    assert history[-1]["test_accuracy"] == evaluate(averaged, test)["accuracy"]


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
