"""The course's models, each rebuildable from (architecture name, arguments).

* ``resnet18``  - torchvision's ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool).
* ``resnet20``  - the classic 0.27M-parameter CIFAR ResNet (He et al., option-A shortcuts).
* ``vit_tiny_patch16_224`` - timm's ViT-Tiny, pretrained weights from timm's hub or a local file.
* ``vit_scratch`` - ViT-Tiny (width 192, depth 12, 3 heads) with 4x4 patches for 32x32 input.

Every builder takes explicit widths (stream and inner channels for the ResNets, heads and MLP
neurons per block for the ViTs), so a structurally pruned model is rebuilt from its checkpoint
without the original. ``build_model`` records ``model.arch = {"name", "kwargs"}`` for that.
"""
from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet, conv1x1, conv3x3

from .artifacts import file_sha256
from .errors import Explained


class PretrainedWeightsUnavailable(Explained, RuntimeError):
    """Neither timm's hub nor a local file could provide the pretrained ViT-Tiny weights."""


# ----------------------------------------------------------------------------------------
# ResNets
# ----------------------------------------------------------------------------------------
def _block(in_ch: int, inner: int, out_ch: int, stride: int, shortcut: str) -> BasicBlock:
    """torchvision's BasicBlock with an inner width of its own (pruned blocks differ)."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = (nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
                      if shortcut == "conv" else PadShortcut(in_ch, out_ch, stride))
    block = BasicBlock(in_ch, out_ch, stride, downsample)
    block.conv1, block.bn1 = conv3x3(in_ch, inner, stride), nn.BatchNorm2d(inner)
    block.conv2 = conv3x3(inner, out_ch)
    return block


class PadShortcut(nn.Module):
    """Option-A shortcut of the classic CIFAR ResNets: subsample and pad channels with zeros."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.out_ch - self.in_ch))


def _check_widths(name: str, value) -> None:
    """ValueError for a width below 1 in ``value`` (a width, a list of them, or a list of lists):
    it builds a layer that passes nothing on."""
    flat = [w for v in (value if isinstance(value, (list, tuple)) else [value])
            for w in (v if isinstance(v, (list, tuple)) else [v])]
    if any(w < 1 for w in flat):
        raise ValueError(f"{name} is {value!r}: every width must be at least 1")


def _check_resnet_widths(arch: str, blocks_per_stage: list[int], stages: list[int],
                         inner: list[list[int]] | None) -> None:
    """ValueError before building: a list of another length than the stages (or blocks) indexed
    past its end, or dropped a stage that ``model.arch`` still recorded."""
    if len(stages) != len(blocks_per_stage):
        raise ValueError(f"stages has {len(stages)} entries; {arch} has {len(blocks_per_stage)} stages: "
                         f"give one width per stage")
    _check_widths("stages", stages)
    if inner is None:
        return
    if [len(i) if isinstance(i, (list, tuple)) else None for i in inner] != list(blocks_per_stage):
        raise ValueError(f"inner {inner} does not fit {arch}'s {blocks_per_stage} blocks per stage: give one "
                         f"list per stage, one width per block")
    _check_widths("inner", inner)


def _cifar_resnet(arch: str, blocks_per_stage: list[int], stages: list[int], inner: list[list[int]] | None,
                  num_classes: int, shortcut: str) -> ResNet:
    _check_resnet_widths(arch, blocks_per_stage, stages, inner)
    inner = inner if inner is not None else [[w] * n for w, n in zip(stages, blocks_per_stage)]
    # torchvision's ResNet for its forward only: every layer below is replaced, and initialised here.
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, stages[0], 3, 1, 1, bias=False)
    model.bn1 = nn.BatchNorm2d(stages[0])
    model.maxpool = nn.Identity()
    in_ch = stages[0]
    for s in range(4):
        if s >= len(stages):
            setattr(model, f"layer{s + 1}", nn.Identity())
            continue
        layer = []
        for b in range(blocks_per_stage[s]):
            stride = 2 if (s > 0 and b == 0) else 1
            layer.append(_block(in_ch, inner[s][b], stages[s], stride, shortcut))
            in_ch = stages[s]
        setattr(model, f"layer{s + 1}", nn.Sequential(*layer))
    model.fc = nn.Linear(in_ch, num_classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
    return model


def resnet18(num_classes: int = 10, width: int = 64, stages: list[int] | None = None,
             inner: list[list[int]] | None = None) -> ResNet:
    """ResNet-18 for 32x32 input. ``width`` scales the default stages (64, 128, 256, 512);
    ``stages`` (residual-stream widths) and ``inner`` (each block's conv1 width) override it."""
    _check_widths("width", width)
    stages = stages if stages is not None else [width, 2 * width, 4 * width, 8 * width]
    return _cifar_resnet("resnet18", [2, 2, 2, 2], stages, inner, num_classes, shortcut="conv")


def resnet20(num_classes: int = 10, width: int = 16, stages: list[int] | None = None,
             inner: list[list[int]] | None = None) -> ResNet:
    """The classic CIFAR ResNet-20 (3 stages of 3 blocks, 16/32/64 channels, ~0.27M params)."""
    _check_widths("width", width)
    stages = stages if stages is not None else [width, 2 * width, 4 * width]
    return _cifar_resnet("resnet20", [3, 3, 3], stages, inner, num_classes, shortcut="pad")


# ----------------------------------------------------------------------------------------
# ViT-Tiny (timm)
# ----------------------------------------------------------------------------------------
# timm's vit_tiny_patch16_224: 12 transformer blocks.
VIT_TINY_DEPTH = 12


def _check_vit_widths(arch: str, depth: int, heads: list[int] | None, mlp_hidden: list[int] | None) -> None:
    """ValueError before building: a list longer than the blocks was partly ignored (yet recorded
    in ``model.arch``), a shorter one indexed past its end."""
    for name, widths in (("heads", heads), ("mlp_hidden", mlp_hidden)):
        if widths is None:
            continue
        if len(widths) != depth:
            raise ValueError(f"{name} has {len(widths)} entries; {arch} has {depth} blocks (its depth): give one width per block")
        _check_widths(name, widths)


def set_vit_widths(model: nn.Module, heads: list[int] | None = None,
                   mlp_hidden: list[int] | None = None) -> nn.Module:
    """Give each transformer block its own head count and MLP width (fresh weights)."""
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        dim = attn.qkv.in_features
        if heads is not None and heads[i] != attn.num_heads:
            if not hasattr(attn, "attn_dim"):
                import timm
                raise RuntimeError(f"timm {timm.__version__} reshapes attention output to the embedding "
                                   "width, so pruned head counts cannot run; upgrade it: pip install -U timm")
            width = heads[i] * attn.head_dim
            attn.qkv = nn.Linear(dim, 3 * width, bias=attn.qkv.bias is not None)
            attn.proj = nn.Linear(width, dim, bias=attn.proj.bias is not None)
            attn.num_heads, attn.attn_dim = heads[i], width
        if mlp_hidden is not None and mlp_hidden[i] != mlp.fc1.out_features:
            mlp.fc1 = nn.Linear(dim, mlp_hidden[i], bias=mlp.fc1.bias is not None)
            mlp.fc2 = nn.Linear(mlp_hidden[i], dim, bias=mlp.fc2.bias is not None)
    return model


def vit_tiny_patch16_224(num_classes: int = 10, img_size: int = 224, pretrained: bool = False,
                         weights_path: str | None = None, heads: list[int] | None = None,
                         mlp_hidden: list[int] | None = None, drop_path_rate: float = 0.0):
    """timm's ``vit_tiny_patch16_224``. With ``pretrained``, ImageNet weights come from a local
    file (``weights_path``) or else timm's hub; the classifier is new (``num_classes``)."""
    import timm

    _check_vit_widths("vit_tiny_patch16_224", VIT_TINY_DEPTH, heads, mlp_hidden)
    if weights_path and not pretrained:  # timm would build a random ViT and never read the file
        raise ValueError(f"weights_path {str(weights_path)!r} needs pretrained=True (without it the file is not read)")
    kwargs = dict(num_classes=num_classes, img_size=img_size, drop_path_rate=drop_path_rate)
    named = bool(weights_path)
    if pretrained:
        weights_path = os.path.expanduser(weights_path) if weights_path else _cached_hub_file("vit_tiny_patch16_224")
        if weights_path:
            untrained = check_vit_weights(weights_path)
            kwargs["pretrained_cfg_overlay"] = dict(file=str(weights_path))
        elif not _hub_reachable():
            # Fail in a second instead of after a minute of retries against an unreachable hub.
            host = _hub_endpoint()[1] or "the Hugging Face hub"
            raise PretrainedWeightsUnavailable(_no_weights_message(
                "timm's hub", f"{host} cannot be reached and the weights are not in the local cache"))
    try:
        model = timm.create_model("vit_tiny_patch16_224", pretrained=pretrained, **kwargs)
    except Exception as err:
        if not pretrained:
            raise
        where = f"the local file {str(weights_path)!r}" if weights_path else "timm's hub"
        raise PretrainedWeightsUnavailable(_no_weights_message(where, str(err) or type(err).__name__)) from err
    if pretrained:  # recorded with the baseline: a reader can tell which weights it started from
        fold_input_normalisation(model)
        where = f"the file {os.path.basename(weights_path)}" if named else "timm's pretrained weights (its hub)"
        model.initial_weights = where + (f", sha256 {file_sha256(weights_path)[:16]}" if weights_path else "")
        if weights_path and untrained:
            model.initial_weights += f": {untrained}"
    return set_vit_widths(model, heads, mlp_hidden)


def fold_input_normalisation(model: nn.Module) -> None:
    """Fit pretrained weights to the workbook's inputs. They were trained on pixels normalised with
    the pretraining's mean and std (timm's ``pretrained_cfg``: 0.5 and 0.5 for this ViT, so [-1, 1]);
    the loaders normalise with CIFAR-10's, about twice as wide. Per channel the pretraining's input
    is ``scale * x + shift`` of the loader's ``x``, so the patch embedding's conv (no padding: exact)
    takes it in once: its weights times ``scale``, its bias plus its weights times ``shift``, summed."""
    from .data import CIFAR10_MEAN, CIFAR10_STD

    conv, cfg = model.patch_embed.proj, model.pretrained_cfg
    assert conv.padding in ((0, 0), 0, "valid"), conv  # a padded border would see the shift differently
    mean, std = (torch.tensor(cfg[k], dtype=torch.float64).view(1, -1, 1, 1) for k in ("mean", "std"))
    ours_mean, ours_std = (torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    scale, shift = ours_std / std, (ours_mean - mean) / std  # x_pretraining = scale * x_ours + shift
    with torch.no_grad():
        weight = conv.weight.double()
        conv.bias.add_((weight * shift).sum((1, 2, 3)).to(conv.bias.dtype))
        conv.weight.copy_(weight * scale)


# timm draws a ViT's class token at a standard deviation of 1e-6; any training moves it far above.
UNTRAINED_CLS_TOKEN = 1e-4
UNTRAINED_NOTE = ("NOT pretrained: these are timm's random initialisation (the class token is still at the "
                  "1e-6 scale timm draws it at), so this 'vit' learns CIFAR-10 from scratch and its "
                  "numbers are not a pretrained ViT's")


def check_vit_weights(path: str | os.PathLike) -> str | None:
    """PretrainedWeightsUnavailable unless ``path`` holds vit_tiny_patch16_224's weights: every
    tensor of the model but the classifier, each with its shape. timm loads a file loosely (it only
    prints the keys it did not expect), so another model's weights would leave a ViT at its random
    initialisation, called pretrained. Reads ``.safetensors``, else ``torch.load(weights_only=True)``.

    Returns ``UNTRAINED_NOTE`` when the file holds weights that were never trained (a stand-in saved
    from ``timm.create_model(...)`` without ``pretrained=True``), else None: such a file is allowed,
    for tests and machines without the weights, but every record of the run says what it is."""
    import timm

    path = Path(path).expanduser()
    where = f"the local file {str(path)!r}"
    if path.is_dir():
        raise PretrainedWeightsUnavailable(f"VIT_WEIGHTS (--vit-weights) names {str(path)!r}, which is a folder: "
                                           f"name the weights file in it")
    if not path.is_file():  # timm's own error for this has no text
        raise PretrainedWeightsUnavailable(f"VIT_WEIGHTS (--vit-weights) names {str(path)!r}, which does not "
                                           f"exist: check the path")
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False, which would run the file's code
        raise PretrainedWeightsUnavailable(_no_weights_message(
            where, "not a file of tensors that loads safely: torch.load(weights_only=True) refused it")) from None
    except Exception as err:  # not a tensor file at all
        raise PretrainedWeightsUnavailable(_no_weights_message(
            where, f"not a weights file: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}")) from None
    from .checkpoint import FORMAT  # here: labutils.checkpoint imports this module

    # Its keys and shapes pass, but its patch embedding already takes the CIFAR-10 normalisation in.
    if isinstance(state, dict) and state.get("format") == FORMAT:
        raise PretrainedWeightsUnavailable(_no_weights_message(
            where, "a checkpoint of this workbook, already trained on CIFAR-10 with its input normalisation "
                   "folded in (loading it folds it twice): pass timm's ImageNet weights"))
    for wrapper in ("state_dict", "model"):  # the usual training-checkpoint wrappings, as timm accepts
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise PretrainedWeightsUnavailable(_no_weights_message(where, f"it holds a {type(state).__name__}, not a state dict"))
    # Saved from a DataParallel/DDP model: timm strips the prefix as it loads (clean_state_dict), and
    # this check refused the file, every tensor "missing".
    state = {k.removeprefix("module.") if isinstance(k, str) else k: v for k, v in state.items()}
    expected = {k: v.shape for k, v in timm.create_model("vit_tiny_patch16_224").state_dict().items()
                if not k.startswith("head.")}  # the classifier is replaced anyway
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and getattr(state[k], "shape", None) != expected[k]]
    if missing or wrong:
        found = [f"{len(missing)} of its {len(expected)} tensors missing (such as {missing[0]})" if missing else "",
                 f"{len(wrong)} of another shape (such as {wrong[0]})" if wrong else ""]
        raise PretrainedWeightsUnavailable(_no_weights_message(
            where, "not vit_tiny_patch16_224 weights: " + ", ".join(f for f in found if f)))
    return UNTRAINED_NOTE if float(state["cls_token"].abs().max()) < UNTRAINED_CLS_TOKEN else None


def _no_weights_message(where: str, why) -> str:
    return (f"could not load pretrained vit_tiny_patch16_224 weights from {where} ({why}).\n"
            "Two ways to provide them: (1) run where the Hugging Face hub is reachable, so timm "
            "downloads them; or (2) save them once on such a machine with "
            "`torch.save(timm.create_model('vit_tiny_patch16_224', pretrained=True).state_dict(), "
            "'vit_tiny_patch16_224.pth')` and pass that file as VIT_WEIGHTS (notebook parameter) "
            "or --vit-weights (CLI).")


def _cached_hub_file(name: str) -> str | None:
    """The weights file of timm model ``name`` if the Hugging Face cache already holds it."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        repo = timm.models.get_pretrained_cfg(name).hf_hub_id
        for filename in ("model.safetensors", "pytorch_model.bin"):
            path = try_to_load_from_cache(repo, filename)
            if isinstance(path, str):
                return path
    except Exception:  # no huggingface_hub, unknown cfg: fall back to timm's own download
        pass
    return None


def _hub_endpoint() -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of the URL huggingface_hub (so timm) downloads from: its ENDPOINT, a
    mirror where HF_ENDPOINT names one (read when huggingface_hub is imported), else
    huggingface.co. Host or port None where the URL does not name one that can be dialled."""
    from urllib.parse import urlsplit

    try:
        from huggingface_hub import constants
        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    url = urlsplit(endpoint)
    try:
        port = url.port or (80 if url.scheme == "http" else 443)
    except ValueError:  # a port that is not a number
        port = None
    return url.scheme or "https", url.hostname, port


def _hub_reachable(timeout: float = 3.0) -> bool:
    """False only when a direct connection to the hub's host fails. Behind a proxy (HTTPS_PROXY,
    ALL_PROXY, ...), which huggingface_hub goes through, a direct connection proves nothing: True,
    timm tries, and its own failure is reported (so too for an endpoint naming no host)."""
    import socket
    from urllib.request import getproxies

    scheme, host, port = _hub_endpoint()
    proxies = getproxies()  # the *_proxy variables, read as huggingface_hub's HTTP client reads them
    if proxies.get(scheme) or proxies.get("all") or not host or not port:
        return True
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def vit_scratch(num_classes: int = 10, img_size: int = 32, patch_size: int = 4,
                embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                drop_path_rate: float = 0.1, heads: list[int] | None = None,
                mlp_hidden: list[int] | None = None):
    """ViT-Tiny (width 192, depth 12, 3 heads) for 32x32 CIFAR images, random init."""
    from timm.models.vision_transformer import VisionTransformer

    _check_vit_widths("vit_scratch", depth, heads, mlp_hidden)
    model = VisionTransformer(img_size=img_size, patch_size=patch_size, num_classes=num_classes,
                              embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                              mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate)
    return set_vit_widths(model, heads, mlp_hidden)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet20": resnet20,
    "vit_tiny_patch16_224": vit_tiny_patch16_224,
    "vit_scratch": vit_scratch,
}
# Arguments that say where initial weights come from, not what the architecture is.
_INIT_ONLY = ("pretrained", "weights_path")

# The course's three models: checkpoint prefix -> architecture and input size.
COURSE_MODELS = {
    "cnn": {"arch": "resnet18", "input_size": 32, "title": "ResNet-18"},
    "vit": {"arch": "vit_tiny_patch16_224", "input_size": 224, "pretrained": True,
            "title": "ViT-Tiny (pretrained, fine-tuned)"},
    "vit_scratch": {"arch": "vit_scratch", "input_size": 32, "title": "ViT-Tiny (from scratch)"},
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build ``arch`` and remember how (``model.arch``), so a checkpoint can rebuild it."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](**kwargs)
    model.arch = {"name": arch,
                  "kwargs": {k: copy.deepcopy(v) for k, v in kwargs.items() if k not in _INIT_ONLY}}
    return model


def course_model(name: str, pretrained_weights: str | None = None, **overrides) -> nn.Module:
    """One of the course's models ("cnn", "vit", "vit_scratch"); ``overrides`` are arch kwargs
    (a profile's reduced widths, for example)."""
    if name not in COURSE_MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(COURSE_MODELS)}")
    spec = COURSE_MODELS[name]
    kwargs = dict(overrides)
    if spec.get("pretrained"):
        kwargs.update(pretrained=True, weights_path=pretrained_weights or None)
        kwargs.setdefault("img_size", spec["input_size"])
    return build_model(spec["arch"], **kwargs)


def input_size(model: nn.Module) -> int:
    """Side of the square images the model expects (32 for the ResNets)."""
    embed = getattr(model, "patch_embed", None)
    return int(embed.img_size[0]) if embed is not None else 32


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
