"""CIFAR-10 (and CINIC-10) for the workbook.

Two ways to feed a model:

* ``get_loaders(batch_size)`` - the course's standard torch DataLoaders with torchvision
  transforms (random crop with padding 4, horizontal flip, normalisation).
* ``DeviceLoader`` - the fast path the training loops use: a whole split lives on the device
  as one uint8 tensor and each batch is cropped, flipped, normalised (and resized for the
  pretrained ViT) there, so no CPU worker ever touches a pixel during training. Stronger
  augmentation for the recipes that need it (``AUGMENTATION``: Cutout, TrivialAugment /
  RandAugment / AutoAugment, repeated augmentation) runs there too.

Both read the official "python version" batches from ``DATA_ROOT/cifar-10-batches-py``.
"""
from __future__ import annotations

import errno
import hashlib
import numbers
import os
import pickle
import shlex
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .accel import memory_format
from .artifacts import atomic_write_bytes
from .errors import Explained

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
# The repository's (git-ignored) data/ folder unless LABUTILS_DATA says otherwise (a relative one
# is read from the working folder of the process that imports labutils).
REPOSITORY_DATA_ROOT = Path(__file__).resolve().parents[1] / "data"
DEFAULT_DATA_ROOT = Path(os.environ.get("LABUTILS_DATA") or REPOSITORY_DATA_ROOT).expanduser().resolve()


class DataNotFoundError(Explained, FileNotFoundError):
    """The CIFAR-10 batches are missing, and downloading them failed or was not allowed (shown
    without the three screens of urllib internals above the instructions)."""


class DataError(Explained, ValueError):
    """A data file that is not a valid CIFAR-10 batch (the message names it and what to do)."""


def _origin(root: str | os.PathLike, origin: str | None) -> str:
    """Where ``root`` came from, for messages: ``origin`` as given ("" for a folder an option or argument named);
    None (not known): "$LABUTILS_DATA" for the default folder where that variable is set, else ""."""
    if origin is not None:
        return origin
    from_env = os.environ.get("LABUTILS_DATA") and Path(root).resolve() == Path(DEFAULT_DATA_ROOT).resolve()
    return "$LABUTILS_DATA" if from_env else ""


def _writable(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (access(2): False on a read-only mount, even for root)."""
    return os.access(folder, os.W_OK)


def _manual_instructions(root: Path, reason: str = "", files=TRAIN_FILES + TEST_FILES,
                         origin: str | None = None) -> str:
    # No reason: no download was tried (a checkpoint's test images are never downloaded).
    folder = root / BATCH_DIR
    present = [f for f in TRAIN_FILES + TEST_FILES if (folder / f).is_file()]
    missing = ", ".join(f for f in files if f not in present)
    what = f"{folder} lacks {missing} (it holds {', '.join(present)})" if present else f"CIFAR-10 is not in {folder}"
    return (f"{what}{f' and could not be downloaded ({reason})' if reason else ''}.\n"
            f"Put it there by hand: download {CIFAR10_URL} on a machine with internet and "
            f"unpack it into {root} (it creates {BATCH_DIR}/: mkdir -p {shlex.quote(str(root))} && tar -xzf "
            f"cifar-10-python.tar.gz -C {shlex.quote(str(root))}), or write a copy you already have "
            f"with labutils.data.write_cifar10(root, train_images, train_labels, test_images, "
            f"test_labels), then run again (or pass the folder as DATA_ROOT / --data-root"
            f"{f', or fix {origin}' if (origin := _origin(root, origin)) else ''}).")


def _why_download_failed(err: BaseException, timeout: float) -> str:
    """One line: a server that never answers, or the error's own first line."""
    cause = getattr(err, "reason", err)  # urllib wraps the socket's error
    if isinstance(cause, TimeoutError):
        return f"download failed: no answer within {timeout:g} s"
    text = str(cause).strip().splitlines()
    return f"download failed: {type(err).__name__}: {text[0] if text else ''}"


def download_cifar10(root: str | os.PathLike, timeout: float | None = None, origin: str | None = None) -> Path:
    """Fetch and unpack the official archive (MD5 checked by torchvision's utility). A server that
    stops answering for ``timeout`` seconds ($LABUTILS_DOWNLOAD_TIMEOUT, default 60) ends it.
    ``origin``: where ``root`` came from, for the messages (see ``check_data_folder``)."""
    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(root)
    made = next((p for p in reversed([root, *root.parents]) if not p.exists()), None)  # topmost folder the download makes
    timeout = timeout or float(os.environ.get("LABUTILS_DOWNLOAD_TIMEOUT", 60))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torchvision's urllib calls take no timeout of their own
    try:
        download_and_extract_archive(CIFAR10_URL, str(root), md5=CIFAR10_MD5)
    except Exception as err:  # no network, proxy, silent server, checksum mismatch ...
        origin = _origin(root, origin)
        named = f"{root} (from {origin})" if origin else str(root)
        reason = _why_download_failed(err, timeout)
        message = _manual_instructions(root, reason, origin=origin)
        denied = isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        target = root if made is None else made.parent  # the folder the download writes in, or makes its own in
        # Offline, the network error comes before any write: the folder is asked whatever the error.
        if denied or not _writable(target):  # the instructions' mkdir and tar would fail the same way
            detail = f" ({err.filename or root}: {err.strerror or err})" if denied else ""
            result = ("CIFAR-10 could not be downloaded into it" if target == root
                      else f"{root} could not be made there for CIFAR-10")
            result += "" if denied else f" even online ({reason})"
            message = (f"{named if target == root else target} is not writable{detail}, so {result}: set DATA_ROOT "
                       f"(--data-root) to a folder you can write to{f', or fix {origin}' if origin else ''}, or "
                       f"have the batches placed in {root / BATCH_DIR}")
        if made is not None:  # a mistyped folder: say so, and leave no empty folder behind it
            shutil.rmtree(made, ignore_errors=True)  # a partial archive too
            if root.resolve() != REPOSITORY_DATA_ROOT.resolve():  # not a fresh clone's data/
                message = f"{named} does not exist: check the path if you meant a folder you have. " + message
        raise DataNotFoundError(message) from None
    finally:
        socket.setdefaulttimeout(previous)
    return root / BATCH_DIR


def check_data_folder(root: str | os.PathLike, origin: str | None = None) -> None:
    """DataNotFoundError (or DataError) for a data folder that is certainly wrong, found without
    reading or downloading anything: a file (as the folder or as its batches' folder), the
    batches' own folder, batches one folder too deep, a batch that is a folder, a folder one or two levels too
    high (a folder below holds the batches).
    A missing or empty folder passes (the batches are downloaded into it). ``origin``: where the
    folder came from when no option named it ("$LABUTILS_DATA"), said in the message; None: the
    default folder is taken to come from $LABUTILS_DATA where that is set (a notebook's DATA_ROOT "")."""
    root = Path(root)
    folder = root / BATCH_DIR
    if folder.exists() and not folder.is_dir():  # else "CIFAR-10 is not in" it, as if it were an empty folder
        raise DataNotFoundError(f"{folder} is a file, not the folder of the CIFAR-10 batches: move or delete it "
                                f"(the batches are then downloaded there), or set DATA_ROOT (--data-root) to "
                                f"another folder")
    for f in TRAIN_FILES + TEST_FILES:
        if (folder / f).exists() and not (folder / f).is_file():
            raise _invalid(folder / f, "it is a folder, not a file")
    if all((folder / f).is_file() for f in TRAIN_FILES + TEST_FILES):
        return
    origin = _origin(root, origin)
    named = f"{root} (from {origin})" if origin else str(root)
    if root.is_file():
        raise DataNotFoundError(f"the data folder {named} is a file: set DATA_ROOT (--data-root) to the folder "
                                f"that holds, or is to hold, {BATCH_DIR}/")
    if (root / TRAIN_FILES[0]).is_file():  # the batches' own folder, given instead of the one holding it
        where = (f"set DATA_ROOT (--data-root) to the folder above it, {root.parent}" if root.name == BATCH_DIR
                 else f"move them into {folder}/")
        raise DataNotFoundError(f"{named} holds the CIFAR-10 batches themselves, not a {BATCH_DIR}/ folder: {where}")
    nested = folder / BATCH_DIR
    if any((nested / f).is_file() for f in TRAIN_FILES + TEST_FILES):
        # The archive unpacked into a folder already named for it (tar -xzf ... -C data/cifar-10-batches-py):
        # this said "CIFAR-10 is not in" the folder holding it, or downloaded 163 MB again.
        raise DataNotFoundError(f"the CIFAR-10 batches are one folder too deep, in {nested}/: move them up into "
                                f"{folder}/ (mv {shlex.quote(str(nested))}/* {shlex.quote(str(folder))}/ && rmdir "
                                f"{shlex.quote(str(nested))}), then run again")
    if root.is_dir() and not any((folder / f).is_file() for f in TRAIN_FILES + TEST_FILES):
        # A folder one or two levels too high (the repository instead of its data/): this downloaded a second
        # copy. One level is looked at first, two only then.
        below = next((sub for pattern in (f"*/{BATCH_DIR}", f"*/*/{BATCH_DIR}") for sub in sorted(root.glob(pattern))
                      if any((sub / f).is_file() for f in TRAIN_FILES + TEST_FILES)), None)
        if below is not None:
            raise DataNotFoundError(f"{named} holds no {BATCH_DIR}/, but the CIFAR-10 batches are in {below}/: set "
                                    f"DATA_ROOT (--data-root) to {below.parent}")


def cifar10_dir(root: str | os.PathLike = DEFAULT_DATA_ROOT, download: bool = True,
                files: tuple[str, ...] = TRAIN_FILES + TEST_FILES, origin: str | None = None) -> Path:
    """Folder with the official batches (``files``: those needed, default all six); downloads them
    when one is absent and that is allowed. ``origin``: where ``root`` came from, for the messages
    (see ``check_data_folder``: "" for a folder the caller was given)."""
    root = Path(root)
    check_data_folder(root, origin)
    missing = [f for f in files if not (root / BATCH_DIR / f).is_file()]
    if not missing:
        return root / BATCH_DIR
    if not download:
        raise DataNotFoundError(_manual_instructions(root, files=files, origin=origin))
    if any((root / BATCH_DIR / f).is_file() for f in TRAIN_FILES + TEST_FILES):  # say why it downloads
        print(f"{root / BATCH_DIR} lacks {', '.join(missing)}: downloading CIFAR-10 again")
    return download_cifar10(root, origin=origin)


class _BatchUnpickler(pickle.Unpickler):
    """Reads only what a CIFAR-10 pickle holds: dicts, lists, strings, numbers and numpy arrays.
    Any other global a file names (os.system, eval, ...) is refused before it can run."""

    ALLOWED = ({("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
               | {(f"numpy.{core}.multiarray", f) for core in ("core", "_core") for f in ("_reconstruct", "scalar")}
               | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
               | {(b, t) for b in ("builtins", "__builtin__")
                  for t in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which no CIFAR-10 file holds "
                                         f"(refused: loading it could run code)")
        return super().find_class(module, name)


def load_pickle(path: str | os.PathLike):
    """A CIFAR-10 pickle (batch or ``batches.meta``), read with the restricted unpickler."""
    with open(path, "rb") as f:
        return _BatchUnpickler(f, encoding="latin1").load()


_EXPECTED = {"batch": "A batch is a dict with 'data', uint8 [N, 3072] (N 32x32 RGB images), and N 'labels' in 0-9",
             "batches.meta": "batches.meta is a dict whose 'label_names' are the 10 class names"}


def _invalid(path: Path, found: str, kind: str = "batch") -> DataError:
    # That file alone: deleting the folder lost the good ones too, for good on a machine offline.
    after = "CIFAR-10's own class names are used without it" if kind == "batches.meta" else "it is downloaded again"
    return DataError(f"{path} is not a valid CIFAR-10 {kind}: {found}. {_EXPECTED[kind]}. Fetch the data again "
                     f"(delete {path} alone and run again: {after}), or rewrite your copy with "
                     f"labutils.data.write_cifar10")


SYNTHETIC = "synthetic CIFAR-shaped data"
OFFICIAL = "CIFAR-10"  # what a download brings


def describe_data(root: str | os.PathLike) -> str:
    """Name the data honestly: the official CIFAR-10, the offline JPEG-q75 copy, or synthetic."""
    path = Path(root) / BATCH_DIR / "test_batch"
    try:
        first = load_pickle(path)["filenames"][0]
    except (OSError, KeyError, IndexError, TypeError, EOFError, pickle.UnpicklingError):
        return "unknown"
    if first.startswith("synthetic"):
        return SYNTHETIC
    if first.startswith("cifar10_q75_"):
        return "CIFAR-10 (offline JPEG-q75 copy)"
    copy = re.fullmatch(r"(.+)_\d{5}\.png", first)  # a copy written by data.write_cifar10
    return f"CIFAR-10 (copy: {copy.group(1)})" if copy else OFFICIAL


def describe_prepared(root: str | os.PathLike) -> str | None:
    """``describe_data`` once the batches are there (``test_batch`` names them), None before."""
    return describe_data(root) if (Path(root) / BATCH_DIR / "test_batch").is_file() else None


def describe_to_come(source: str) -> str:
    """What a data folder without batches will hold once prepared: synthetic batches are written,
    CIFAR-10 is downloaded (the official copy)."""
    return SYNTHETIC if source == "synthetic" else OFFICIAL


def run_data_root(source: str, out_root: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """The data folder a run reads: for ``source`` "synthetic" (the smoke profile) always the
    synthetic batches in the run's own folder, whatever ``data_root`` says (a smoke run is
    synthetic by definition, and its records must say so); else ``data_root`` when given, or
    ``DEFAULT_DATA_ROOT``."""
    if source == "synthetic":
        return (Path(out_root) / "data-synthetic").resolve()
    return Path(data_root or DEFAULT_DATA_ROOT).expanduser().resolve()


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file, validated: a clear DataError names the file and what is wrong with it."""
    if not path.is_file():
        raise _invalid(path, "it is a folder, not a file" if path.is_dir() else "it is missing")
    if path.stat().st_size == 0:
        raise _invalid(path, "the file is empty")
    try:
        batch = load_pickle(path)
    except Exception as err:
        raise _invalid(path, f"it cannot be read ({type(err).__name__}: {err})") from None
    labels = batch.get("labels", batch.get("fine_labels")) if isinstance(batch, dict) else None
    if labels is None or "data" not in batch:
        raise _invalid(path, f"it holds a {type(batch).__name__} without 'data' and 'labels'")
    data, labels = batch["data"], np.asarray(labels)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = list(data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        raise _invalid(path, f"its 'data' is {shape} {getattr(data, 'dtype', '')}".rstrip())
    if len(data) == 0:
        raise _invalid(path, "it holds no images")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise _invalid(path, f"it holds {labels.size:,} labels ({labels.dtype}) for {len(data):,} images")
    wrong = np.unique(labels[(labels < 0) | (labels > 9)])
    if len(wrong):
        raise _invalid(path, f"labels outside 0-9: {', '.join(map(str, wrong[:5]))}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(root: str | os.PathLike = DEFAULT_DATA_ROOT, train: bool = True, download: bool = True,
                 origin: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split as (images uint8 [N, 3, 32, 32], labels int64 [N]) in the official order (``origin``:
    see ``cifar10_dir``)."""
    files = TRAIN_FILES if train else TEST_FILES
    folder = cifar10_dir(root, download, files, origin)  # the split's own batches: a test split needs no training data
    parts = [_read_batch(folder / f) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def class_names(root: str | os.PathLike = DEFAULT_DATA_ROOT) -> list[str]:
    """The 10 class names from ``batches.meta`` (CIFAR-10's own names when there is no such file),
    validated like the batches: a broken file is named, with what to do."""
    path = Path(root) / BATCH_DIR / "batches.meta"
    if not path.is_file():
        return list(CIFAR10_CLASSES)
    try:
        meta = load_pickle(path)
    except Exception as err:
        raise _invalid(path, f"it cannot be read ({type(err).__name__}: {err})", "batches.meta") from None
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != 10 or not all(isinstance(n, str) for n in names):
        found = "it holds no 'label_names'" if names is None else f"its 'label_names' are {str(names)[:80]}"
        raise _invalid(path, found, "batches.meta")
    return list(names)


# ----------------------------------------------------------------------------------------
# Writing the official layout: from any copy of the images, or synthetic data for tests.
# ----------------------------------------------------------------------------------------
def write_cifar10(root: str | os.PathLike, train_images: np.ndarray, train_labels, test_images: np.ndarray,
                  test_labels, classes=CIFAR10_CLASSES, name: str = "cifar10") -> Path:
    """Write ``root/cifar-10-batches-py`` in the official "python version" layout (five train
    batches, one test batch, ``batches.meta``) from uint8 images [N, 3, 32, 32] or [N, 32, 32, 3].

    For a copy of CIFAR-10 that is not the official archive (another format, another machine):
    the workbook then reads it like the real thing. File names in the batches start with
    ``name``, which is how the metrics name the data (``describe_data``)."""
    def channels_first(images, labels, what: str) -> np.ndarray:
        x = _uint8_images(images, f"{what}_images")  # a cast would turn floats in [0, 1] black
        if tuple(x.shape[2:]) != (32, 32):
            raise ValueError(f"{what}_images have shape {list(np.shape(images))}: CIFAR-10 batches hold "
                             f"32x32 images, [N, 3, 32, 32] or [N, 32, 32, 3]; resize them first")
        if np.shape(labels) != (len(x),):
            raise ValueError(f"{what}_labels has shape {list(np.shape(labels))} for {len(x):,} {what}_images: "
                             f"pass one label (0-9) per image, in the images' order")
        y = np.asarray(labels)  # reading the file back would refuse it, and say to write it again
        if len(y) and not (np.issubdtype(y.dtype, np.integer) and 0 <= y.min() and y.max() <= 9):
            raise ValueError(f"{what}_labels must be whole numbers 0-9 (the classes in CIFAR-10's order), "
                             f"got {y.dtype} from {y.min()} to {y.max()}")
        return x.cpu().numpy()

    # All checked before anything is written: a refused call leaves no half-written folder.
    train_images = channels_first(train_images, train_labels, "train")
    test_images = channels_first(test_images, test_labels, "test")
    # An empty batch file would be written, then refused on reading ("it holds no images").
    if len(train_images) < len(TRAIN_FILES):
        raise ValueError(f"{len(train_images)} train_images for {len(TRAIN_FILES)} batch files: pass at least "
                         f"{len(TRAIN_FILES)} training images (one per data_batch_N); nothing was written")
    if len(test_images) == 0:
        raise ValueError("no test_images: pass at least one test image (test_batch); nothing was written")
    # x[:10000] of the training images passed as the test split scored the model on what it trained on.
    # Up to 1% passes: a real dataset may hold a few identical images in both splits.
    if (shared := _shared_images(train_images, test_images)) * 100 > len(test_images):
        raise ValueError(f"{shared:,} of the {len(test_images):,} test_images are also in train_images: every "
                         f"accuracy would count images the model trained on; pass a test split held out of "
                         f"the training images (CIFAR-10's own test_batch); nothing was written")
    folder = Path(root) / BATCH_DIR
    folder.mkdir(parents=True, exist_ok=True)

    def dump(file: str, images: np.ndarray, labels, label: str, first: int) -> None:
        batch = {"batch_label": label, "labels": [int(x) for x in labels],
                 "data": np.ascontiguousarray(images.reshape(len(images), 3072)),
                 "filenames": [f"{name}_{first + i:05d}.png" for i in range(len(images))]}
        atomic_write_bytes(folder / file, lambda f: pickle.dump(batch, f, protocol=4))

    for b, idx in enumerate(np.array_split(np.arange(len(train_images)), len(TRAIN_FILES))):
        dump(TRAIN_FILES[b], train_images[idx], np.asarray(train_labels)[idx],
             f"training batch {b + 1} of {len(TRAIN_FILES)}", int(idx[0]) if len(idx) else 0)
    dump(TEST_FILES[0], test_images, test_labels, "testing batch 1 of 1", 0)
    meta = {"num_cases_per_batch": -(-len(train_images) // len(TRAIN_FILES)), "num_vis": 3072,
            "label_names": [str(c) for c in classes]}
    atomic_write_bytes(folder / "batches.meta", lambda f: pickle.dump(meta, f, protocol=4))
    return folder


def _shared_images(train: np.ndarray, test: np.ndarray) -> int:
    """How many ``test`` images are, byte for byte, also in ``train`` (hashed: 60,000 take ~0.3 s)."""
    def digest(image: np.ndarray) -> bytes:
        return hashlib.blake2b(image.tobytes(), digest_size=16).digest()

    seen = {digest(x) for x in train}
    return sum(digest(x) in seen for x in test)


def write_synthetic_cifar10(root: str | os.PathLike, n_train: int = 1000, n_test: int = 500,
                            seed: int = 0) -> Path:
    """Write a tiny learnable CIFAR-shaped dataset as ``root/cifar-10-batches-py``.

    Each class is a coloured blob at a class-specific place on noise, so a model can learn it
    in a few steps and a pipeline bug (shuffled labels, wrong normalisation) shows up as
    chance accuracy. Five train batches and one test batch, like the real thing.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    centers = [(8 + 16 * (c % 2), 4 + 6 * (c // 2)) for c in range(10)]
    colours = rng.integers(40, 255, size=(10, 3))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 90, size=(n, 3, 32, 32)).astype(np.float32)
        for i, c in enumerate(labels):
            cy, cx = centers[c]
            cy, cx = cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)
            blob = ((yy - cx) ** 2 + (xx - cy) ** 2) < 20
            images[i][:, blob] = colours[c][:, None]
        return images.clip(0, 255).astype(np.uint8), labels

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    return write_cifar10(root, train_x, train_y, test_x, test_y, name="synthetic")


# ----------------------------------------------------------------------------------------
# The course's standard DataLoaders.
# ----------------------------------------------------------------------------------------
class ArrayDataset(torch.utils.data.Dataset):
    """Images held as a uint8 array [N, 3, H, W], transformed one by one (torchvision style)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i])
        return (self.transform(x) if self.transform else x), int(self.labels[i])


def standard_transforms(train: bool, size: int = 32):
    from torchvision.transforms import v2

    steps = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()] if train else []
    if size != 32:
        steps.append(v2.Resize(size, antialias=False))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    return v2.Compose(steps)


def get_loaders(batch_size: int = 128, root: str | os.PathLike = DEFAULT_DATA_ROOT,
                num_workers: int = 2, size: int = 32, download: bool = True):
    """The course's ``get_loaders``: (train_loader, test_loader) as plain torch DataLoaders. The
    training loader drops the last partial batch (reshuffled every epoch, so a different few images
    each time, none left out for good); the test loader keeps every image. They are for the lab's
    exercises (notebook 01 compares them with the fast path); the training loops use ``DeviceLoader``."""
    train_x, train_y = load_cifar10(root, train=True, download=download)
    test_x, test_y = load_cifar10(root, train=False, download=download)
    # No persistent workers: kept workers keep their own random state, so seed_everything(0, loader)
    # could not replay an epoch's crops and flips. Workers started anew each epoch draw their seeds
    # from torch's generator; the cost, a worker start an epoch, is fine off the fast path.
    common = dict(batch_size=batch_size, num_workers=num_workers,
                  pin_memory=torch.cuda.is_available(), persistent_workers=False)
    train = torch.utils.data.DataLoader(
        ArrayDataset(train_x, train_y, standard_transforms(True, size)),
        shuffle=True, drop_last=True, **common)
    test = torch.utils.data.DataLoader(
        ArrayDataset(test_x, test_y, standard_transforms(False, size)), shuffle=False, **common)
    return train, test


# ----------------------------------------------------------------------------------------
# The fast path: the split on the device, augmented there.
# ----------------------------------------------------------------------------------------
def random_crop_flip(x: torch.Tensor, padding: int = 4, generator=None) -> torch.Tensor:
    """Per-image random crop (zero padding) and horizontal flip of a uint8 batch [B, C, H, W]."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    flip = torch.rand(b, device=dev, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    return padded[torch.arange(b, device=dev)[:, None, None, None],
                  torch.arange(c, device=dev)[None, :, None, None], rows, cols]


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor, generator=None) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017), a square form of random erasing: per image, a ``size`` x
    ``size`` square at a random centre (clipped at the borders) is set to ``fill`` (per channel,
    the data's mean), on a uint8 batch [B, C, H, W] on its device."""
    b, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (b, 1, 1), device=dev, generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), device=dev, generator=generator)
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    top, left = cy - size // 2, cx - size // 2
    square = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)  # [B, H, W]
    return torch.where(square[:, None], fill.view(1, -1, 1, 1).to(x.dtype), x)


# A recipe's keys that shape its training batches (``DeviceLoader``'s arguments), not ``fit``'s.
AUGMENTATION = ("cutout", "augment", "repeats", "augment_groups")
AUGMENT_POLICIES = ("trivialaugment", "randaugment", "autoaugment")


def augment_policy(name: str):
    """torchvision's transform for ``name``, one of ``AUGMENT_POLICIES``: TrivialAugment (wide),
    RandAugment (2 operations, magnitude 9) or AutoAugment's CIFAR-10 policy."""
    from torchvision.transforms import v2

    policies = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment,
                "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)}
    if name not in policies:
        raise ValueError(f"augment={name!r} is not a policy; use one of {AUGMENT_POLICIES} or None")
    return policies[name]()


def augmentation_of(recipe: dict) -> dict:
    """A training recipe's ``AUGMENTATION`` options (``DeviceLoader`` arguments)."""
    return {k: v for k, v in recipe.items() if k in AUGMENTATION}


def fit_arguments(recipe: dict) -> dict:
    """A training recipe without what its loader takes (batch size, augmentation): ``fit``'s part."""
    return {k: v for k, v in recipe.items() if k != "batch_size" and k not in AUGMENTATION}


def policy_augment(x: torch.Tensor, policy, groups: int) -> torch.Tensor:
    """A torchvision v2 policy (TrivialAugment...) on a uint8 batch [B, C, H, W] on its device.

    The transform draws one operation and magnitude per call and applies it to all it is given,
    so the batch is cut into ``groups`` groups (the batch is already shuffled) and each group gets
    a draw of its own: per-image draws would cost a call per image. Draws come from torch's global
    generator (``seed_everything`` fixes them)."""
    return torch.cat([policy(group) for group in x.chunk(groups)])


def augment_batch(x: torch.Tensor, generator=None, policy=None, groups: int = 16, cutout_size: int = 0,
                  fill: torch.Tensor | None = None) -> torch.Tensor:
    """A uint8 training batch [B, C, H, W] augmented as ``DeviceLoader`` does: random crop and flip,
    then the policy (``policy_augment``) if any, then Cutout with ``fill`` (default: the mean colour)."""
    x = random_crop_flip(x, generator=generator)
    if policy is not None:
        x = policy_augment(x, policy, groups)
    if cutout_size:
        fill = (torch.tensor(CIFAR10_MEAN, device=x.device) * 255).round() if fill is None else fill
        x = cutout(x, cutout_size, fill, generator)
    return x


def _uint8_images(images, what: str = "the images") -> torch.Tensor:
    """``images`` (a numpy array or a tensor) as uint8 [N, 3, H, W]; channels-last [N, H, W, 3]
    (torchvision's ``CIFAR10(...).data``) is transposed. Anything but uint8 is refused: cast to
    uint8, floats in [0, 1] became black images without a word. ``what`` names them in errors."""
    x = torch.as_tensor(images)  # no copy for a numpy array or a tensor
    if x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what} have shape {list(x.shape)}: pass RGB images, [N, 3, H, W] or [N, H, W, 3]")
    if x.dtype != torch.uint8:
        raise ValueError(f"{what} are {x.dtype}: pass uint8 images (0-255); for floats in [0, 1], "
                         f"(x * 255).round().astype(np.uint8) (a tensor: (x * 255).round().to(torch.uint8))")
    return x


class DeviceLoader:
    """Iterates over one split kept on ``device`` as a single uint8 tensor.

    ``images``: uint8 [N, 3, H, W] or [N, H, W, 3], a numpy array or a tensor.
    Yields (float images normalised, channels_last on CUDA; int64 labels). With ``train`` it shuffles
    and applies random crop (pad 4) + horizontal flip on the device; ``size`` resizes to the
    model's input (224 for the pretrained ViT) after augmentation. Training batches only:

    * ``augment``: "trivialaugment", "randaugment" (2 ops, magnitude 9) or "autoaugment" (the
      CIFAR-10 policy), torchvision's transforms after crop and flip, one draw per group of
      images (``augment_groups`` groups a batch, see ``policy_augment``);
    * ``cutout`` > 0: a square of that side erased in every image (see ``cutout``; 16 is the
      paper's CIFAR-10 size), last;
    * ``repeats`` = k > 1: repeated augmentation (Hoffer et al. 2020, DeiT): an epoch draws
      1/k of the images and each batch holds every one of them k times (k - 1 for a few when the
      batch size is not a multiple of k), augmented apart, so an epoch keeps its number of steps.
      The copies are spread over the batch (its images one after the other, then again), so the
      policy's groups give each copy a draw of its own.
    """

    def __init__(self, images, labels, batch_size: int, train: bool, device="cpu",
                 size: int = 32, seed: int = 0, drop_last: bool | None = None, cutout: int = 0,
                 augment: str | None = None, repeats: int = 1, augment_groups: int = 16):
        if int(repeats) != repeats or repeats < 1 or int(augment_groups) != augment_groups or augment_groups < 1:
            raise ValueError(f"repeats and augment_groups are whole numbers >= 1; got {repeats}, {augment_groups}")
        # 0 or -1 would mean no batches, True batches of one
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a whole number >= 1 (images per batch), e.g. 128")
        self.device = torch.device(device)
        self.images = _uint8_images(images).to(self.device).contiguous()
        side = self.images.shape[-1]  # Cutout works on the stored images, before any resize
        # A whole side: 2.5 erased a square of 2 (True one of 1) without a word.
        if isinstance(cutout, bool) or not isinstance(cutout, numbers.Integral) or not 0 <= cutout <= side:
            raise ValueError(f"cutout={cutout!r} must be between 0 (off) and the image side {side}, a whole number "
                             f"of pixels")
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if self.labels.shape != (len(self.images),):  # fewer dropped images silently, more failed mid-epoch
            raise ValueError(f"{self.labels.numel():,} labels (shape {list(self.labels.shape)}) for "
                             f"{len(self.images):,} images: pass one label per image, in the images' order")
        self.batch_size, self.train, self.size, self.cutout = batch_size, train, size, cutout
        self.repeats, self.augment_groups = int(repeats), int(augment_groups)
        self.policy = augment_policy(augment) if augment else None
        self.drop_last = train if drop_last is None else drop_last
        self.seed = seed  # seed_everything(loader.seed, loader) replays its draws from the start
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.mean = torch.tensor(CIFAR10_MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.fill = self.mean.flatten().round()  # Cutout's colour
        self.std = torch.tensor(CIFAR10_STD, device=self.device).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = (torch.randperm(n, device=self.device, generator=self.generator)
                 if self.train else torch.arange(n, device=self.device))
        repeated = self.train and self.repeats > 1
        drawn = -(-self.batch_size // self.repeats) if repeated else self.batch_size  # images per batch
        for i in range(len(self)):
            idx = order[i * drawn:(i + 1) * drawn]
            if repeated:  # each image k times in its batch, the copies apart (see the docstring)
                idx = idx.repeat(self.repeats)[:self.batch_size]
            x = self.images[idx]
            if self.train:
                x = augment_batch(x, self.generator, self.policy, self.augment_groups, self.cutout, self.fill)
            yield self.prepare(x), self.labels[idx]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float batch at the model's size (channels_last on CUDA)."""
        x = (x.float() - self.mean) / self.std
        if self.size != x.shape[-1]:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=memory_format(x.device))


def subset(images: np.ndarray, labels: np.ndarray, n: int | None, seed: int = 0):
    """A class-balanced subset of ``n`` examples (all of them when ``n`` is None or too big).
    The workbook draws every subset with the default ``seed``, not the run's: runs of different
    seeds train and score on the same images, so they differ by what the seed is for (initial
    weights, data order, augmentation), not by which images they saw."""
    # n <= 0 sliced from the end (n=-5: all but five images), 0 gave an empty set.
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise ValueError(f"n={n!r} must be a whole number of examples >= 1, or None for all of them")
    if n is None or n >= len(labels):
        return images, labels
    take = subset_indices(labels, n, seed)
    return images[take], labels[take]


def subset_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The sorted positions of ``subset``'s class-balanced ``n`` examples."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    # Round by round: every class's first pick, then every class's second..., the classes in a
    # random order within a round; the first n. Counts differ by at most one between classes
    # (a class that runs out leaves its turns to the others).
    picks = np.concatenate(per_class)
    rounds = np.concatenate([np.arange(len(p)) for p in per_class])
    order = np.lexsort((rng.random(len(picks)), rounds))
    return np.sort(picks[order[:n]])


# ----------------------------------------------------------------------------------------
# CINIC-10 (image-folder layout train/valid/test), the seed material's other dataset: no notebook
# uses it; it is here for a student who wants to repeat an experiment on it.
# ----------------------------------------------------------------------------------------
CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)


def cinic10_datasets(root: str | os.PathLike, train_transform=None, test_transform=None):
    """CINIC-10 from ``root/{train,valid,test}/<class>/*.png`` as torchvision ImageFolders."""
    from torchvision import datasets, transforms as T

    root = Path(root)
    missing = [s for s in ("train", "valid", "test") if not (root / s).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"CINIC-10 folders {missing} are missing under {root}; unpack CINIC-10 there so that "
            f"it holds train/, valid/ and test/, each with one folder per class")
    norm = [T.ToTensor(), T.Normalize(CINIC10_MEAN, CINIC10_STD)]
    train_t = train_transform or T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] + norm)
    test_t = test_transform or T.Compose(norm)
    return {split: datasets.ImageFolder(str(root / split), train_t if split == "train" else test_t)
            for split in ("train", "valid", "test")}
