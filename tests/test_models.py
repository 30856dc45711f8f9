import hashlib

import pytest
import timm
import torch

from labutils import models as M


@pytest.mark.parametrize("arch, params, size", [
    ("resnet18", 11_173_962, 32),          # torchvision ResNet-18 with a 3x3 stem, 10 classes
    ("resnet20", 269_722, 32),             # the classic 0.27M CIFAR ResNet-20
    ("vit_scratch", 5_362_762, 32),        # ViT-Tiny, patch 4
    ("vit_tiny_patch16_224", 5_526_346, 224),
])
def test_parameter_counts_and_output_shapes(arch, params, size):
    model = M.build_model(arch).eval()
    assert M.count_parameters(model) == params
    assert M.input_size(model) == size
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)


def test_resnet18_has_the_cifar_stem():
    model = M.build_model("resnet18")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    # 32x32 in -> 4x4 before pooling: three stride-2 stages only.
    feats = torch.nn.Sequential(*list(model.children())[:-2])(torch.randn(1, 3, 32, 32))
    assert feats.shape == (1, 512, 4, 4)


def test_pruned_widths_rebuild():
    model = M.build_model("resnet18", stages=[32, 64, 96, 128], inner=[[8, 16], [24, 32], [40, 48], [56, 64]])
    assert model.layer2[0].conv1.out_channels == 24 and model.layer4[1].conv2.in_channels == 64
    assert model.fc.in_features == 128
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    vit = M.build_model("vit_scratch", depth=2, heads=[1, 2], mlp_hidden=[100, 7])
    assert vit.blocks[0].attn.qkv.out_features == 3 * 64 and vit.blocks[1].mlp.fc1.out_features == 7
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert vit.arch == {"name": "vit_scratch", "kwargs": {"depth": 2, "heads": [1, 2], "mlp_hidden": [100, 7]}}


@pytest.mark.parametrize("arch, kwargs, says", [
    ("resnet20", {"stages": [16, 32, 64, 128]}, "stages has 4 entries; resnet20 has 3 stages"),  # was IndexError
    ("resnet20", {"stages": [16, 32]}, "stages has 2 entries; resnet20 has 3 stages"),  # blamed inner, not given
    ("resnet18", {"stages": [8, 16, 32, 64, 128]}, "stages has 5 entries; resnet18 has 4 stages"),  # 5th dropped
    ("resnet18", {"stages": [8, 16, 32, 64], "inner": [[4, 4], [8], [16, 16], [32, 32]]},
     r"inner .* does not fit resnet18's \[2, 2, 2, 2\] blocks per stage"),
    ("resnet18", {"width": 0}, "width is 0: every width must be at least 1"),  # built a 10-parameter model
    ("resnet20", {"stages": [16, 0, 64]}, "stages is .*: every width must be at least 1"),
    ("resnet20", {"inner": [[16] * 3, [32, 0, 32], [64] * 3]}, "inner is .*: every width must be at least 1"),
    ("vit_scratch", {"depth": 2, "heads": [3]}, "heads has 1 entries; vit_scratch has 2 blocks"),  # was IndexError
    ("vit_scratch", {"depth": 2, "heads": [3, 3, 1]}, "heads has 3 entries; vit_scratch has 2 blocks"),  # 3rd ignored
    ("vit_scratch", {"depth": 2, "mlp_hidden": [10]}, "mlp_hidden has 1 entries; vit_scratch has 2 blocks"),
    ("vit_scratch", {"depth": 2, "heads": [0, 3]}, "heads is .*: every width must be at least 1"),
    ("vit_tiny_patch16_224", {"mlp_hidden": [768] * 11}, "mlp_hidden has 11 entries; vit_tiny_patch16_224 has 12"),
])
def test_width_lists_that_do_not_fit_the_architecture_are_refused_by_name(arch, kwargs, says):
    with pytest.raises(ValueError, match=says):
        M.build_model(arch, **kwargs)


def test_pretrained_vit_from_a_local_file(tmp_path):
    reference = timm.create_model("vit_tiny_patch16_224")
    path = tmp_path / "vit_tiny.pth"
    torch.save(reference.state_dict(), path)
    model = M.course_model("vit", pretrained_weights=str(path))
    assert torch.equal(model.blocks[3].mlp.fc1.weight, reference.blocks[3].mlp.fc1.weight)
    assert model.head.out_features == 10
    assert "weights_path" not in model.arch["kwargs"] and "pretrained" not in model.arch["kwargs"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    # The baseline records it, and that these weights were never trained (timm's initialisation).
    assert model.initial_weights == f"the file vit_tiny.pth, sha256 {digest}: {M.UNTRAINED_NOTE}"
    assert not hasattr(M.course_model("vit_scratch"), "initial_weights")
    trained = reference.state_dict()
    trained["cls_token"] = torch.full_like(trained["cls_token"], 0.3)  # as any training leaves it
    torch.save(trained, path)
    assert M.check_vit_weights(path) is None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert M.course_model("vit", pretrained_weights=str(path)).initial_weights == f"the file vit_tiny.pth, sha256 {digest}"
    # Saved from a DataParallel/DDP model: timm loads it, and the check refused it, every tensor "missing".
    torch.save({f"module.{k}": v for k, v in trained.items()}, path)
    assert M.check_vit_weights(path) is None
    assert torch.equal(M.course_model("vit", pretrained_weights=str(path)).cls_token, trained["cls_token"])


def test_pretrained_vit_unavailable_names_both_options(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "_cached_hub_file", lambda name: None)
    monkeypatch.setattr(M, "_hub_reachable", lambda: False)
    with pytest.raises(M.PretrainedWeightsUnavailable, match="VIT_WEIGHTS") as err:
        M.course_model("vit")
    assert "hub" in str(err.value)
    with pytest.raises(M.PretrainedWeightsUnavailable, match="names '.*missing.pth', which does not exist: check the path"):
        M.course_model("vit", pretrained_weights=str(tmp_path / "missing.pth"))
    (tmp_path / "notes.txt").write_text("not a state dict")
    with pytest.raises(M.PretrainedWeightsUnavailable, match=r"notes.txt' \([^)]") as err:
        M.course_model("vit", pretrained_weights=str(tmp_path / "notes.txt"))
    assert "notes.txt' (not a file of tensors that loads safely" in str(err.value)
    assert "weights_only` set to `False" not in str(err.value)  # torch's advice would run the file's code


def test_a_file_of_other_weights_is_not_taken_for_the_pretrained_vit(tmp_path):
    """timm loads a file loosely: another model's weights left the ViT at its random init,
    recorded as pretrained. The file is checked tensor by tensor first."""
    torch.save(M.build_model("resnet18").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(M.PretrainedWeightsUnavailable, match=r"not vit_tiny_patch16_224 weights: 150 of its 150 tensors missing"):
        M.course_model("vit", pretrained_weights=str(tmp_path / "resnet.pth"))
    wider = timm.create_model("vit_tiny_patch16_224", mlp_ratio=2.0).state_dict()
    torch.save({"state_dict": wider}, tmp_path / "wrapped.pth")  # a wrapped checkpoint is unwrapped
    with pytest.raises(M.PretrainedWeightsUnavailable, match=r"36 of another shape \(such as blocks.0.mlp.fc1.weight\)"):
        M.course_model("vit", pretrained_weights=str(tmp_path / "wrapped.pth"))


def test_unknown_names_are_explained():
    with pytest.raises(ValueError, match="choose one of"):
        M.build_model("resnet50")
    with pytest.raises(ValueError, match="choose from"):
        M.course_model("mlp")


def test_an_untrained_weights_file_is_named_as_such_where_the_run_starts(tmp_path, capsys):
    """A stand-in saved from timm's random initialisation read as a pretrained ViT in every figure
    and table of a run (student's review of an executed run)."""
    from labutils.cli import main

    path = tmp_path / "stand_in.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), path)
    # The data folder (here a file) is checked after the weights: the run stops there, having said it.
    assert main(["run", "--profile", "cpu", "--vit-weights", str(path), "--data-root", str(path),
                 "--out", str(tmp_path / "out")]) == 2
    assert "warning: --vit-weights NOT pretrained: these are timm's random initialisation" in capsys.readouterr().err


def test_the_pretrained_vit_sees_the_inputs_it_was_trained_on(tmp_path):
    """Its weights learnt from pixels normalised to [-1, 1] (mean = std = 0.5); the loaders give
    CIFAR-10's normalisation, about twice as wide (review). The patch embedding takes it in."""
    from labutils.data import CIFAR10_MEAN, CIFAR10_STD

    path = tmp_path / "vit_tiny.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), path)
    ours = M.course_model("vit", pretrained_weights=str(path), img_size=32).eval()
    theirs = timm.create_model("vit_tiny_patch16_224", pretrained=True, num_classes=10, img_size=32,
                               pretrained_cfg_overlay={"file": str(path)}).eval()
    theirs.head.load_state_dict(ours.head.state_dict())  # the new classifier, drawn apart
    assert theirs.pretrained_cfg["mean"] == theirs.pretrained_cfg["std"] == (0.5, 0.5, 0.5)
    pixels = torch.rand(4, 3, 32, 32)
    as_loaders = (pixels - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(ours(as_loaders), theirs((pixels - 0.5) / 0.5), atol=1e-4)
        assert not torch.allclose(theirs(as_loaders), theirs((pixels - 0.5) / 0.5), atol=1e-2)  # unfolded: off


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def dialled(monkeypatch) -> list:
    """The addresses the hub pre-check dials (each refused), with no proxy set."""
    import socket

    calls = []

    def refuse(address, timeout=None):
        calls.append(address)
        raise OSError("refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_the_hub_pre_check_leaves_a_proxied_connection_to_timm(monkeypatch, dialled, variable):
    """Behind a proxy the direct connection to huggingface.co:443 failed, and the workbook said the
    hub could not be reached though timm (through the proxy) would have downloaded (review)."""
    assert M._hub_reachable() is False and dialled  # no proxy: the direct check decides
    dialled.clear()
    monkeypatch.setenv(variable, "http://proxy.invalid:3128")
    assert M._hub_reachable() is True and dialled == []


def test_the_hub_pre_check_dials_the_mirror_hf_endpoint_names(monkeypatch, dialled):
    """HF_ENDPOINT (a mirror), which huggingface_hub reads at import: the check dialled huggingface.co."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.invalid:8443")
    assert M._hub_reachable() is False and dialled == [("hf-mirror.invalid", 8443)]
    monkeypatch.setattr(constants, "ENDPOINT", "http://hf-mirror.invalid")
    assert M._hub_reachable() is False and dialled[-1] == ("hf-mirror.invalid", 80)
    monkeypatch.setattr(M, "_cached_hub_file", lambda name: None)
    with pytest.raises(M.PretrainedWeightsUnavailable, match="hf-mirror.invalid cannot be reached"):
        M.course_model("vit")


def test_a_checkpoint_of_this_workbook_is_not_taken_for_timms_weights(tmp_path):
    """models_saved/vit_before_pruning.pth has the right keys and shapes, but it was trained with
    the CIFAR-10 normalisation folded into its patch embedding: loading folded it a second time
    (weights scaled twice, bias shifted twice), silently."""
    from labutils.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "vit_before_pruning.pth", M.build_model("vit_tiny_patch16_224"))
    with pytest.raises(M.PretrainedWeightsUnavailable, match="a checkpoint of this workbook, already trained on "
                       r"CIFAR-10 .*folds it twice\): pass timm's ImageNet weights"):
        M.course_model("vit", pretrained_weights=str(path))
    with pytest.raises(M.PretrainedWeightsUnavailable, match="a checkpoint of this workbook"):
        M.check_vit_weights(path)


def test_vit_weights_naming_a_folder_says_so(tmp_path):
    """It said the folder "does not exist"."""
    (tmp_path / "weights").mkdir()
    with pytest.raises(M.PretrainedWeightsUnavailable, match=r"names '.*weights', which is a folder: name the "
                       r"weights file in it"):
        M.course_model("vit", pretrained_weights=str(tmp_path / "weights"))


def test_a_weights_file_without_pretrained_is_refused(tmp_path):
    """The file was silently ignored: a random ViT, built as if from it."""
    path = tmp_path / "vit_tiny.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), path)
    with pytest.raises(ValueError, match="weights_path '.*vit_tiny.pth' needs pretrained=True"):
        M.build_model("vit_tiny_patch16_224", weights_path=str(path))
    assert M.build_model("vit_tiny_patch16_224", weights_path=None).arch["name"] == "vit_tiny_patch16_224"
