import errno
import os
import pickle
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labutils.accel import memory_format
from labutils import data as D


def test_synthetic_reads_back_in_official_layout(synthetic_root):
    folder = synthetic_root / D.BATCH_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        list(D.TRAIN_FILES) + list(D.TEST_FILES) + ["batches.meta"])
    x, y = D.load_cifar10(synthetic_root, train=True, download=False)
    assert x.shape == (200, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (200,) and set(np.unique(y)) == set(range(10))
    xt, yt = D.load_cifar10(synthetic_root, train=False, download=False)
    assert xt.shape == (100, 3, 32, 32)
    assert D.class_names(synthetic_root) == list(D.CIFAR10_CLASSES)


def test_label_order_follows_batch_files(synthetic_root):
    """Images and labels come back in file order: batch 1 first, row order kept."""
    x, y = D.load_cifar10(synthetic_root, train=True, download=False)
    with open(synthetic_root / D.BATCH_DIR / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="latin1")
    n = len(first["labels"])
    assert list(y[:n]) == first["labels"]
    assert np.array_equal(x[:n].reshape(n, -1), first["data"])


def test_missing_data_without_download_says_what_to_do(tmp_path):
    with pytest.raises(D.DataNotFoundError, match="Put it there by hand") as err:
        D.load_cifar10(tmp_path, download=False)
    assert "could not be downloaded" not in str(err.value)  # no download was tried
    # The folder may not exist yet (a fresh clone has no data/): tar -C alone failed there.
    folder = shlex.quote(str(tmp_path))
    assert f"mkdir -p {folder} && tar -xzf cifar-10-python.tar.gz -C {folder}" in str(err.value)


def test_a_folder_missing_some_batches_names_them_and_a_test_split_needs_only_its_own(tmp_path, monkeypatch, capsys):
    """A folder without data_batch_2 was reported as "CIFAR-10 is not in" it, and re-downloaded
    without a word; ``labutils evaluate`` refused a folder holding the whole test split."""
    import torchvision.datasets.utils as U

    D.write_synthetic_cifar10(tmp_path, n_train=50, n_test=20)
    (tmp_path / D.BATCH_DIR / "data_batch_2").unlink()
    assert len(D.load_cifar10(tmp_path, train=False, download=False)[1]) == 20
    with pytest.raises(D.DataNotFoundError, match=r"lacks data_batch_2 \(it holds data_batch_1, data_batch_3, "):
        D.load_cifar10(tmp_path, train=True, download=False)
    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(U, "download_and_extract_archive", offline)
    with pytest.raises(D.DataNotFoundError, match=r"lacks data_batch_2 .* and could not be downloaded .*offline"):
        D.load_cifar10(tmp_path)
    assert "lacks data_batch_2: downloading CIFAR-10 again" in capsys.readouterr().out


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets.utils as U

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(U, "download_and_extract_archive", offline)
    with pytest.raises(D.DataNotFoundError, match="network unreachable") as err:
        D.load_cifar10(tmp_path)
    assert "does not exist" not in str(err.value) and tmp_path.is_dir()  # an existing folder stays
    # A mistyped folder: said first, and not left behind empty (it was made only to download into).
    typo = tmp_path / "dat"
    with pytest.raises(D.DataNotFoundError, match=rf"^{typo} does not exist: check the path .*CIFAR-10 is not in"):
        D.load_cifar10(typo)
    assert not typo.exists()

    def partial(url, root, **kwargs):  # a download cut off: torchvision made the folders, wrote part
        Path(root).mkdir(parents=True)
        (Path(root) / "cifar-10-python.tar.gz").write_bytes(b"part")
        raise OSError("connection reset")

    monkeypatch.setattr(U, "download_and_extract_archive", partial)
    with pytest.raises(D.DataNotFoundError, match="does not exist"):
        D.load_cifar10(tmp_path / "x" / "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # x/ and the part of an archive gone too


def test_corrupt_batch_is_named(synthetic_root):
    (synthetic_root / D.BATCH_DIR / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        D.load_cifar10(synthetic_root, train=False, download=False)


def test_corrupt_batches_meta_is_named_with_what_to_do(synthetic_root):
    meta = synthetic_root / D.BATCH_DIR / "batches.meta"
    good = meta.read_bytes()
    for content, found in ((good[:len(good) // 2], "it cannot be read (UnpicklingError"),
                           (pickle.dumps({"label_names": ["cat", "dog"]}), "its 'label_names' are ['cat', 'dog']")):
        meta.write_bytes(content)
        with pytest.raises(D.DataError) as info:
            D.class_names(synthetic_root)
        message = str(info.value)
        assert str(meta) in message and found in message and "10 class names" in message
        assert "write_cifar10" in message and "Fetch the data again" in message


def test_random_crop_flip_matches_a_reference_crop():
    """Each output image is a 32x32 window of the zero-padded input, flipped or not."""
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = D.random_crop_flip(x, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    # And the windows move: most images are not the centred, uncropped one (1 chance in 81 each).
    assert sum(not (torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))) for i in range(len(x))) > 12


def test_random_crop_flip_flips_about_half_and_shifts_every_way():
    x = torch.arange(32, dtype=torch.uint8).repeat(400, 3, 32, 1)  # columns 0..31
    out = D.random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    flipped = (out[:, 0, 0, 0] == 31).float().mean().item()
    assert 0.4 < flipped < 0.6
    # With padding 4 the window's start column takes all 9 values 0..8: a crop stuck in the
    # centre, or shifted one way only, fails. Columns hold 1..32, so the zero padding shows.
    cols = torch.arange(1, 33, dtype=torch.uint8).repeat(400, 3, 32, 1)
    out = D.random_crop_flip(cols, padding=4, generator=torch.Generator().manual_seed(2))
    starts = set()
    for row in out[:, 0, 16].to(torch.int64):
        row = row if row[row > 0][0] < row[row > 0][-1] else row.flip(0)  # undo a flip
        j = int((row > 0).nonzero()[0])
        starts.add(int(row[j]) - j + 3)  # padded column k holds k - 3; row[j] is padded[start + j]
    assert starts == set(range(9))


def test_device_loader_is_seeded_and_normalised(synthetic_root):
    x, y = D.load_cifar10(synthetic_root, train=True, download=False)
    a = [b for b, _ in D.DeviceLoader(x, y, 50, True, seed=3)]
    b = [b for b, _ in D.DeviceLoader(x, y, 50, True, seed=3)]
    c = [b for b, _ in D.DeviceLoader(x, y, 50, True, seed=4)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])
    test = D.DeviceLoader(x, y, 64, False)
    batches = list(test)
    assert len(test) == len(batches) == 4 and sum(len(l) for _, l in batches) == 200
    assert torch.equal(torch.cat([l for _, l in batches]), torch.as_tensor(y))
    # Test batches are the images normalised, in order.
    expected = (torch.as_tensor(x[:64]).float() / 255 - torch.tensor(D.CIFAR10_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(D.CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(batches[0][0], expected, atol=1e-5)
    assert batches[0][0].is_contiguous(memory_format=memory_format(batches[0][0].device))


def test_device_loader_resizes_for_the_pretrained_vit(synthetic_root):
    x, y = D.load_cifar10(synthetic_root, train=False, download=False)
    images, _ = next(iter(D.DeviceLoader(x, y, 8, True, size=224)))
    assert images.shape == (8, 3, 224, 224)


def test_standard_loaders_match_fast_path_statistics(synthetic_root):
    train, test = D.get_loaders(32, synthetic_root, num_workers=0, download=False)
    xb, yb = next(iter(test))
    assert xb.shape == (32, 3, 32, 32) and yb.dtype == torch.int64
    x, y = D.load_cifar10(synthetic_root, train=False, download=False)
    fast, _ = next(iter(D.DeviceLoader(x, y, 32, False)))
    assert torch.allclose(xb, fast, atol=1e-5)
    xtr, _ = next(iter(train))
    assert xtr.shape == (32, 3, 32, 32)


def test_balanced_subset():
    labels = np.repeat(np.arange(10), 50)
    images = np.zeros((500, 3, 32, 32), np.uint8)
    _, sub = D.subset(images, labels, 100, seed=0)
    assert len(sub) == 100 and np.bincount(sub).tolist() == [10] * 10


def test_cinic10_image_folder(tmp_path):
    for split in ("train", "valid", "test"):
        for c in D.CIFAR10_CLASSES[:3]:
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    sets = D.cinic10_datasets(tmp_path)
    assert len(sets["train"]) == 6 and sets["valid"].classes == list(D.CIFAR10_CLASSES[:3])
    x, y = sets["test"][0]
    assert x.shape == (3, 32, 32) and y == 0


def test_cinic10_missing_split_is_explained(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(D.DataNotFoundError, match="valid"):
        D.cinic10_datasets(tmp_path)


def test_write_cifar10_round_trips_any_copy_in_the_official_layout(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(50, 32, 32, 3), dtype=np.uint8)  # channels last, as images come
    test = rng.integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)   # channels first
    train_y, test_y = np.arange(50) % 10, np.arange(20) % 10
    folder = D.write_cifar10(tmp_path, train, train_y, test, test_y, name="mycopy")
    assert sorted(p.name for p in folder.iterdir()) == sorted(D.TRAIN_FILES + D.TEST_FILES + ("batches.meta",))
    x, y = D.load_cifar10(tmp_path, train=True, download=False)
    assert np.array_equal(x, train.transpose(0, 3, 1, 2)) and np.array_equal(y, train_y)
    x, y = D.load_cifar10(tmp_path, train=False, download=False)
    assert np.array_equal(x, test) and np.array_equal(y, test_y)
    assert D.class_names(tmp_path) == list(D.CIFAR10_CLASSES)


def test_the_data_is_named_by_where_it_came_from(tmp_path):
    from labutils.data import describe_data

    images, labels = np.zeros((10, 3, 32, 32), np.uint8), np.arange(10)
    for name, expected in [("synthetic", "synthetic CIFAR-shaped data"),
                           ("cifar10_q75", "CIFAR-10 (offline JPEG-q75 copy)"),
                           ("cifar10_mycopy", "CIFAR-10 (copy: cifar10_mycopy)")]:
        D.write_cifar10(tmp_path / name, images, labels, images + 1, labels, name=name)
        assert describe_data(tmp_path / name) == expected
    assert describe_data(tmp_path / "nothing") == "unknown"


def test_cutout_erases_one_clipped_square_per_image_with_the_mean():
    x = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    fill = torch.tensor([125, 123, 114])
    out = D.cutout(x, 16, fill, torch.Generator().manual_seed(0))
    erased = (out != 255).all(1)  # [B, H, W]: every channel changed
    assert torch.equal(erased, (out != 255).any(1))
    for img, mask in zip(out, erased):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # one rectangle (the square clipped at the border), at most 16 x 16, filled with the mean
        assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
        assert mask.sum() == len(rows) * len(cols) and rows.diff().eq(1).all() and cols.diff().eq(1).all()
        assert torch.equal(img[:, mask], fill[:, None].expand(3, int(mask.sum())).to(torch.uint8))
    assert (erased.sum((1, 2)) == 256).float().mean() > 0.1  # whole squares are common, clipped ones too
    assert (erased.sum((1, 2)) < 256).any()


def test_device_loader_applies_cutout_to_training_batches_only(synthetic_root):
    x, y = D.load_cifar10(synthetic_root, train=True, download=False)
    plain = next(iter(D.DeviceLoader(x, y, 50, True, seed=3)))[0]
    cut = next(iter(D.DeviceLoader(x, y, 50, True, seed=3, cutout=8)))[0]
    mean = (torch.tensor(D.CIFAR10_MEAN) * 255).round().view(1, 3, 1, 1)
    at_mean = ((mean - torch.tensor(D.CIFAR10_MEAN).view(1, 3, 1, 1) * 255)
               / (torch.tensor(D.CIFAR10_STD).view(1, 3, 1, 1) * 255))
    erased = (cut - at_mean).abs().amax(1) < 1e-4
    assert erased.flatten(1).sum(1).gt(0).all() and not torch.equal(plain, cut)
    test = D.DeviceLoader(x, y, 50, False, cutout=8)
    assert torch.equal(next(iter(test))[0], next(iter(D.DeviceLoader(x, y, 50, False)))[0])


# -- stronger augmentation: policies, repeated augmentation, recipes --------------------------
@pytest.mark.parametrize("policy", D.AUGMENT_POLICIES)
def test_policy_augmentation_changes_training_batches_only(synthetic_root, policy):
    x, y = D.load_cifar10(synthetic_root, train=True, download=False)
    torch.manual_seed(0)
    plain, labels = next(iter(D.DeviceLoader(x, y, 64, True, seed=3)))
    torch.manual_seed(0)
    strong, strong_labels = next(iter(D.DeviceLoader(x, y, 64, True, seed=3, augment=policy)))
    assert strong.shape == plain.shape and strong.dtype == plain.dtype and torch.equal(labels, strong_labels)
    assert not torch.equal(plain, strong)
    # still pixels of a uint8 image after normalisation: inside [(0 - mean) / std, (255 - mean) / std]
    lo = -torch.tensor(D.CIFAR10_MEAN) / torch.tensor(D.CIFAR10_STD)
    hi = (1 - torch.tensor(D.CIFAR10_MEAN)) / torch.tensor(D.CIFAR10_STD)
    assert (strong >= lo.view(1, 3, 1, 1) - 1e-4).all() and (strong <= hi.view(1, 3, 1, 1) + 1e-4).all()
    # the same global seed draws the same operations: a run is reproducible
    torch.manual_seed(0)
    again = next(iter(D.DeviceLoader(x, y, 64, True, seed=3, augment=policy)))[0]
    assert torch.equal(strong, again)
    test = next(iter(D.DeviceLoader(x, y, 64, False, augment=policy)))[0]
    assert torch.equal(test, next(iter(D.DeviceLoader(x, y, 64, False)))[0])


def test_policy_augment_draws_once_per_group_of_the_batch():
    calls = []

    def policy(group):  # stands in for a torchvision policy: records what each call is given
        calls.append(len(group))
        return group + len(calls)

    x = torch.zeros(100, 3, 4, 4, dtype=torch.uint8)
    out = D.policy_augment(x, policy, groups=8)
    assert sum(calls) == 100 and len(calls) == 8 and max(calls) - min(calls) <= 4
    # every image went through exactly one call, groups in order
    assert torch.equal(out[:, 0, 0, 0], torch.repeat_interleave(torch.arange(1, 9), torch.tensor(calls)).to(out.dtype))


def test_repeated_augmentation_keeps_the_steps_and_repeats_each_image_in_its_batch():
    n, k = 120, 3
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    loader = D.DeviceLoader(x, torch.arange(n) % 10, 24, True, seed=1, repeats=k)
    plain = D.DeviceLoader(x, torch.arange(n) % 10, 24, True, seed=1)
    assert len(loader) == len(plain) == 5
    seen = []
    for _, labels in loader:
        assert len(labels) == 24
        seen.append(labels)
    # the labels carry the images' order: each drawn image comes k times in its batch, its copies
    # a batch's worth of images apart (so in different groups of a policy's draws)
    ids = []
    for batch in D.DeviceLoader(x, torch.arange(n), 24, True, seed=1, repeats=k):
        labels = batch[1]
        assert torch.equal(labels.view(k, -1), labels[:24 // k].expand(k, -1))
        ids += labels[:24 // k].tolist()
    assert len(set(ids)) == len(ids) == n // k
    # a batch size that is not a multiple of k: ceil(25 / 3) = 9 images, 7 of them 3 times, 2 twice
    for _, labels in D.DeviceLoader(x, torch.arange(n), 25, True, seed=1, repeats=k):
        assert sorted(torch.bincount(labels).tolist())[-9:] == [2, 2, 3, 3, 3, 3, 3, 3, 3]
    # the copies of an image are augmented apart (crop and flip drawn per copy)
    images = next(iter(D.DeviceLoader(x * 0 + torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8),
                                      torch.arange(n), 24, True, seed=1, repeats=k)))[0]
    assert not all(torch.equal(images[i], images[i + 24 // k]) for i in range(24 // k))


def test_repeated_copies_get_policy_draws_of_their_own():
    """With a policy, the k copies of an image fall in different groups of the batch: each group
    gets one draw, so copies in one group would share their operation and strength."""
    n, k, batch = 256, 4, 64
    loader = D.DeviceLoader(torch.zeros(n, 3, 32, 32, dtype=torch.uint8), torch.arange(n), batch, True,
                            seed=0, repeats=k, augment="trivialaugment")
    _, labels = next(iter(loader))
    groups = labels.view(loader.augment_groups, -1)  # policy_augment's contiguous groups
    assert all(len(set(g.tolist())) == len(g) for g in groups)  # no image twice in a group


def test_subset_is_class_balanced_whatever_n():
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(10), 50))
    images = np.arange(len(labels))
    for n in (25, 64, 256, 400):
        _, got = D.subset(images, labels, n, seed=0)
        counts = np.bincount(got, minlength=10)
        assert len(got) == n and counts.max() - counts.min() <= 1, (n, counts)
    short = np.concatenate([labels, np.full(5, 10)])  # an eleventh class of only 5 images
    _, got = D.subset(np.arange(len(short)), short, 110, seed=0)
    assert len(got) == 110 and np.bincount(got)[10] == 5
    # n a multiple of the classes, all of them large enough: n / 10 of each, as before
    assert (np.bincount(D.subset(images, labels, 300, seed=0)[1]) == 30).all()


def test_cutout_is_bounded_by_the_stored_images_not_the_model_input():
    x = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="cutout=64 must be between 0 \\(off\\) and the image side 32"):
        D.DeviceLoader(x, torch.arange(4), 2, True, size=224, cutout=64)


@pytest.mark.parametrize("kwargs, words", [({"augment": "autoaug"}, "trivialaugment"),
                                           ({"repeats": 0}, "repeats"), ({"repeats": 1.5}, "repeats"),
                                           ({"augment_groups": 0}, "augment_groups"),
                                           ({"cutout": 40}, "cutout=40")])
def test_device_loader_refuses_bad_augmentation_saying_what_is_allowed(kwargs, words):
    with pytest.raises(ValueError, match=words):
        D.DeviceLoader(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4), 2, True, **kwargs)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_device_loader_refuses_a_batch_size_that_is_not_a_positive_whole_number(batch_size):
    with pytest.raises(ValueError, match=rf"batch_size={batch_size} must be a whole number >= 1 \(images per batch\)"):
        D.DeviceLoader(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4), batch_size, True)


def test_device_loader_takes_channels_last_images_as_torchvision_gives_them():
    """torchvision's CIFAR10(...).data is uint8 [N, 32, 32, 3]: it failed at the first batch with
    "The size of tensor a (32) must match the size of tensor b (3)"."""
    x = np.random.default_rng(0).integers(0, 256, (16, 3, 32, 32), dtype=np.uint8)
    y = np.arange(16) % 10
    first = [b for b, _ in D.DeviceLoader(x, y, 8, True, seed=3)]
    for last in (x.transpose(0, 2, 3, 1), np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                 torch.as_tensor(x).permute(0, 2, 3, 1).contiguous()):
        loader = D.DeviceLoader(last, y, 8, True, seed=3)
        assert loader.images.shape == (16, 3, 32, 32) and loader.images.is_contiguous()
        batches = [b for b, _ in loader]
        assert len(batches) == len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, batches))
    assert torch.equal(D.DeviceLoader(torch.as_tensor(x), y, 8, False).images, torch.as_tensor(x))  # as before


@pytest.mark.parametrize("images", [np.full((4, 3, 32, 32), 0.5, np.float32), torch.rand(4, 3, 32, 32),
                                    np.full((4, 3, 32, 32), 128, np.int64)], ids=["numpy", "torch", "int64"])
def test_device_loader_refuses_images_that_are_not_uint8_saying_what_to_pass(images):
    """Floats in [0, 1] were cast to uint8: all zeros, black images trained on without a word."""
    said = "pass uint8 images (0-255); for floats in [0, 1], (x * 255).round().astype(np.uint8)"
    with pytest.raises(ValueError, match=re.escape(said)):
        D.DeviceLoader(images, np.zeros(4), 2, True)


@pytest.mark.parametrize("shape", [(4, 32, 32), (4, 1, 32, 32), (2, 4, 3, 32, 32)])
def test_device_loader_refuses_images_that_are_not_rgb_batches(shape):
    said = f"the images have shape {list(shape)}: pass RGB images, [N, 3, H, W] or [N, H, W, 3]"
    with pytest.raises(ValueError, match=re.escape(said)):
        D.DeviceLoader(np.zeros(shape, np.uint8), np.zeros(shape[0]), 2, True)


def test_a_damaged_batch_is_shown_without_a_traceback(tmp_path):
    """Its message names the file and what to do; in a notebook it came under a full traceback,
    unlike the other errors of its kind (DataNotFoundError, SettingsError)."""
    (tmp_path / D.BATCH_DIR).mkdir()
    (tmp_path / D.BATCH_DIR / "test_batch").write_bytes(b"")
    with pytest.raises(ValueError) as info:  # still a ValueError: caught where it was
        D.load_cifar10(tmp_path, train=False, download=False)
    assert isinstance(info.value, D.DataError) and "test_batch is not a valid CIFAR-10 batch" in str(info.value)
    assert info.value._render_traceback_() == [f"DataError: {info.value}"]


def test_session_names_the_course_models_and_refuses_empty_loaders(tmp_path):
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu")
    for call in (lambda: s.loaders("resnet"), lambda: s.train_config("CNN")):
        with pytest.raises(ValueError, match=r"unknown model '\w+'; choose from \['cnn', 'vit', 'vit_scratch'\]"):
            call()
    with pytest.raises(ValueError, match="batch_size=0"):  # refused, not replaced by the recipe's
        s.loaders("cnn", batch_size=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        s.test_subset_loader(50, 0, 32)
    for n in (0, -5):
        with pytest.raises(ValueError, match=f"n={n} must be a whole number of test images >= 1, or None"):
            s.test_subset_loader(n, 32, 32)


def test_a_recipe_splits_into_loader_and_fit_arguments():
    recipe = {"epochs": 3, "batch_size": 64, "lr": 0.1, "augment": "randaugment", "repeats": 2, "cutout": 8}
    assert D.augmentation_of(recipe) == {"augment": "randaugment", "repeats": 2, "cutout": 8}
    assert D.fit_arguments(recipe) == {"epochs": 3, "lr": 0.1}


def test_session_loaders_augment_as_the_models_recipe_says(tmp_path):
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu")
    s.profile["train"]["cnn"].update(augment="trivialaugment", cutout=8, repeats=2)
    train, test = s.loaders("cnn")
    assert train.policy is not None and train.cutout == 8 and train.repeats == 2
    assert test.policy is None and not test.train
    plain, _ = s.loaders("cnn", augmentation={})  # ResNet-20 borrows the CNN's loaders this way
    assert plain.policy is None and plain.cutout == 0 and plain.repeats == 1
    assert s.loaders("vit_scratch")[0].policy is None


def test_notebook_02_trains_a_recipe_that_holds_augmentation(tmp_path):
    from labutils.labs import baseline
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu")
    s.profile["train"]["cnn"].update(augment="randaugment", repeats=2, max_steps=3)
    record = baseline.train_baseline(s, "cnn")
    assert record["produced"] and record["train_config"]["augment"] == "randaugment"
    assert record["history"][-1]["images"] == 3 * s.train_config("cnn")["batch_size"]


def test_runs_of_different_seeds_train_and_score_on_the_same_images(tmp_path):
    """The reduced profiles draw subsets of CIFAR-10; they were drawn with the run's seed, so two
    cpu runs of seeds 0 and 1 were scored on test sets sharing half their images, and a seed study
    mixed test-set noise into training noise."""
    from labutils.session import Session

    D.write_synthetic_cifar10(tmp_path / "data", n_train=12000, n_test=6000)  # more than cpu draws
    a, b = (Session("cpu", tmp_path / f"run{seed}", tmp_path / "data", "cpu", seed) for seed in (0, 1))
    for train in (True, False):
        assert len(a.arrays(train)[1]) < len(D.load_cifar10(tmp_path / "data", train)[1])  # a real subset
        assert all(np.array_equal(x, y) for x, y in zip(a.arrays(train), b.arrays(train)))
    assert np.array_equal(a.test_subset_loader(100, 50, 32).labels.numpy(), b.test_subset_loader(100, 50, 32).labels.numpy())


def test_notebook_01_counts_both_loaders_images_an_epoch_alike(tmp_path, capsys):
    """The standard loader drops its last partial batch too; notebook 01 printed its whole split
    (1,000) beside the fast path's images an epoch (896), as if only one of them dropped any."""
    from labutils.labs import data as lab
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu")
    s.prepare_data()
    lab.compare_loaders(s, batch_size=128)
    standard, fast = capsys.readouterr().out.splitlines()[-2:]
    assert standard.startswith("standard: 896 images an epoch (the split's 1,000, whole batches)")
    assert fast.startswith("fast:     896 images an epoch (the profile's 1,000, whole batches)")


def test_a_data_folder_from_labutils_data_says_where_it_came_from(tmp_path, monkeypatch, capsys):
    """LABUTILS_DATA=/etc/passwd said "the data folder /etc/passwd is a file: set DATA_ROOT (--data-root)",
    and no option had named it."""
    from labutils.cli import main

    a_file = tmp_path / "a-file"
    a_file.write_text("not data")
    monkeypatch.setenv("LABUTILS_DATA", str(a_file))
    monkeypatch.setattr(D, "DEFAULT_DATA_ROOT", a_file)  # as read when labutils was imported
    assert main(["run", "--profile", "cpu", "--out", str(tmp_path / "out")]) == 2
    assert f"the data folder {a_file} (from $LABUTILS_DATA) is a file: set DATA_ROOT" in capsys.readouterr().err
    # passed as --data-root, the same folder or not: that option names it already
    assert main(["run", "--profile", "cpu", "--out", str(tmp_path / "out"), "--data-root", str(a_file)]) == 2
    assert f"the data folder {a_file} is a file: set DATA_ROOT" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(D.DataNotFoundError, match=re.escape(f"{a_file} (from $LABUTILS_DATA) is a file")):
        D.cifar10_dir(a_file)  # a notebook's DATA_ROOT "": its Session reads the default folder


def test_a_batches_folder_that_is_a_file_is_named_as_a_file(tmp_path):
    """DATA_ROOT/cifar-10-batches-py as a file said "CIFAR-10 is not in .../cifar-10-batches-py"."""
    (tmp_path / D.BATCH_DIR).write_text("not a folder")
    with pytest.raises(D.DataNotFoundError, match=re.escape(f"{tmp_path / D.BATCH_DIR} is a file, not the folder "
                                                            f"of the CIFAR-10 batches: move or delete it")):
        D.cifar10_dir(tmp_path)


def test_batches_one_folder_too_deep_are_named_before_any_download(tmp_path, monkeypatch):
    """mkdir -p data/cifar-10-batches-py && tar -xzf ... -C data/cifar-10-batches-py left the batches in
    data/cifar-10-batches-py/cifar-10-batches-py/: offline that said "CIFAR-10 is not in" the folder
    holding them, online it downloaded 163 MB again."""
    import torchvision.datasets.utils as U

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the batches are there, one folder down")

    monkeypatch.setattr(U, "download_and_extract_archive", no_download)
    D.write_synthetic_cifar10(tmp_path / D.BATCH_DIR, n_train=50, n_test=20)
    folder, nested = tmp_path / D.BATCH_DIR, tmp_path / D.BATCH_DIR / D.BATCH_DIR
    for download in (True, False):
        with pytest.raises(D.DataNotFoundError, match=re.escape(
                f"the CIFAR-10 batches are one folder too deep, in {nested}/: move them up into {folder}/")):
            D.load_cifar10(tmp_path, download=download)
    assert sorted(p.name for p in folder.iterdir()) == [D.BATCH_DIR]  # nothing moved for the user
    # moved up as the message says, they are read
    for f in nested.iterdir():
        f.rename(folder / f.name)
    nested.rmdir()
    assert len(D.load_cifar10(tmp_path, train=False, download=False)[1]) == 20



@pytest.fixture
def mistyped_labutils_data(tmp_path, monkeypatch):
    """$LABUTILS_DATA set to a folder that does not exist, on a machine offline: the folder."""
    import torchvision.datasets.utils as U

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    typo = tmp_path / "dta"
    monkeypatch.setattr(U, "download_and_extract_archive", offline)
    monkeypatch.setenv("LABUTILS_DATA", str(typo))
    monkeypatch.setattr(D, "DEFAULT_DATA_ROOT", typo)  # as read when labutils was imported
    return typo


def test_a_mistyped_labutils_data_folder_is_named_when_the_download_fails(mistyped_labutils_data):
    """LABUTILS_DATA=/mistyped/folder said only "CIFAR-10 is not in ... could not be downloaded": its
    "does not exist" was skipped for the default folder, which is where the variable points."""
    typo = mistyped_labutils_data
    with pytest.raises(D.DataNotFoundError, match=re.escape(f"{typo} (from $LABUTILS_DATA) does not exist: check "
                                                            f"the path")) as err:
        D.cifar10_dir(typo)  # a notebook's DATA_ROOT "": its Session reads the default folder
    assert str(err.value).endswith("(or pass the folder as DATA_ROOT / --data-root, or fix $LABUTILS_DATA).")
    assert not typo.exists()


def test_a_data_folder_one_level_too_high_names_the_folder_below_before_any_download(tmp_path, monkeypatch):
    """DATA_ROOT set to the folder above data/ said "CIFAR-10 is not in" it, or downloaded a second copy."""
    import torchvision.datasets.utils as U

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the batches are there, one folder below")

    monkeypatch.setattr(U, "download_and_extract_archive", no_download)
    D.write_synthetic_cifar10(tmp_path / "data", n_train=50, n_test=20)
    for download in (True, False):
        with pytest.raises(D.DataNotFoundError, match=re.escape(
                f"the CIFAR-10 batches are in {tmp_path / 'data' / D.BATCH_DIR}/: set DATA_ROOT (--data-root) to "
                f"{tmp_path / 'data'}")):
            D.load_cifar10(tmp_path, download=download)
    assert len(D.load_cifar10(tmp_path / "data", train=False, download=False)[1]) == 20  # as the message says


def test_a_data_folder_two_levels_too_high_names_the_folder_below_before_any_download(tmp_path, monkeypatch):
    """Only one level down was looked at: DATA_ROOT two folders above the batches downloaded a second copy."""
    import torchvision.datasets.utils as U

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the batches are there, two folders below")

    monkeypatch.setattr(U, "download_and_extract_archive", no_download)
    below = tmp_path / "two" / "a" / "data"
    D.write_synthetic_cifar10(below, n_train=50, n_test=20)
    with pytest.raises(D.DataNotFoundError, match=re.escape(
            f"{tmp_path / 'two'} holds no {D.BATCH_DIR}/, but the CIFAR-10 batches are in {below / D.BATCH_DIR}/: "
            f"set DATA_ROOT (--data-root) to {below}")):
        D.load_cifar10(tmp_path / "two")


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_data_folder_that_is_not_writable_says_so_instead_of_unpacking_there(tmp_path, code, monkeypatch):
    """A read-only folder without the batches was told to "mkdir -p ... && tar -xzf ... -C" it, which fails
    the same way as the download did."""
    import torchvision.datasets.utils as U

    def read_only(url, root, **kwargs):
        raise OSError(code, os.strerror(code), str(Path(root) / "cifar-10-python.tar.gz"))

    monkeypatch.setattr(U, "download_and_extract_archive", read_only)
    with pytest.raises(D.DataNotFoundError, match=re.escape(
            f"{tmp_path} is not writable ({tmp_path / 'cifar-10-python.tar.gz'}: {os.strerror(code)}), so CIFAR-10 "
            f"could not be downloaded into it: set DATA_ROOT (--data-root) to a folder you can write to, or have "
            f"the batches placed in {tmp_path / D.BATCH_DIR}")) as err:
        D.load_cifar10(tmp_path)
    assert "tar -xzf" not in str(err.value)


def test_a_read_only_data_folder_offline_says_it_is_not_writable(tmp_path, monkeypatch):
    """Offline, an existing read-only folder still got the mkdir/tar advice: torchvision asks the server before
    it writes, so the error was the network's, not EROFS. A missing folder under a read-only one was said to be
    the folder not writable, not the one it is to be made in."""
    import urllib.error

    import torchvision.datasets.utils as U

    read_only = tmp_path / "ro"
    read_only.mkdir()

    def offline(url, root, **kwargs):  # torchvision's order: the folder made first, then the server asked
        if not Path(root).exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), root)  # os.makedirs in the read-only folder
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(U, "download_and_extract_archive", offline)
    monkeypatch.setattr(D, "_writable", lambda folder: folder != read_only)  # chmod stops no write by root
    with pytest.raises(D.DataNotFoundError, match=re.escape(
            f"{read_only} is not writable, so CIFAR-10 could not be downloaded into it even online (download "
            f"failed: URLError: [Errno -3] Temporary failure in name resolution): set DATA_ROOT (--data-root) to a "
            f"folder you can write to, or have the batches placed in {read_only / D.BATCH_DIR}")) as err:
        D.load_cifar10(read_only)
    assert "tar -xzf" not in str(err.value)
    typo = read_only / "dta"
    with pytest.raises(D.DataNotFoundError, match=re.escape(
            f"{typo} does not exist: check the path if you meant a folder you have. {read_only} is not writable "
            f"({typo}: {os.strerror(errno.EROFS)}), so {typo} could not be made there for CIFAR-10: set DATA_ROOT")):
        D.load_cifar10(typo)
    monkeypatch.setattr(D, "_writable", lambda folder: True)  # a writable folder offline: the usual advice
    with pytest.raises(D.DataNotFoundError, match="tar -xzf"):
        D.load_cifar10(read_only)


def test_a_data_root_given_as_labutils_data_folder_is_not_said_to_come_from_the_variable(mistyped_labutils_data):
    """LABUTILS_DATA=/x/typo and DATA_ROOT '/x/typo' given too: the messages said "(from $LABUTILS_DATA)" and
    "or fix $LABUTILS_DATA", the paths alone compared; the caller now says where the folder came from."""
    typo = mistyped_labutils_data
    for download in (False, True):
        with pytest.raises(D.DataNotFoundError) as err:
            D.load_cifar10(typo, download=download, origin="")
        assert "LABUTILS_DATA" not in str(err.value)
        assert str(err.value).endswith("(or pass the folder as DATA_ROOT / --data-root).")
    assert str(err.value).startswith(f"{typo} does not exist: check the path")  # though the default folder
    # No origin given: the default folder is the variable's, as before.
    with pytest.raises(D.DataNotFoundError, match=re.escape("or fix $LABUTILS_DATA")):
        D.cifar10_dir(typo)


def test_a_damaged_batch_is_to_be_deleted_alone_not_with_its_folder(tmp_path, monkeypatch):
    """One truncated batch said to delete the whole cifar-10-batches-py folder: offline, that lost five good
    files; the one missing file is downloaded again."""
    import torchvision.datasets.utils as U

    D.write_synthetic_cifar10(tmp_path, n_train=50, n_test=20)
    damaged = tmp_path / D.BATCH_DIR / "data_batch_3"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(D.DataError, match=re.escape(f"(delete {damaged} alone and run again: it is downloaded "
                                                    f"again)")) as err:
        D.load_cifar10(tmp_path, download=False)
    assert f"delete {damaged.parent} " not in str(err.value)
    # done as it says: the download brings that file back
    monkeypatch.setattr(U, "download_and_extract_archive",
                        lambda url, root, **kwargs: D.write_synthetic_cifar10(root, n_train=50, n_test=20))
    damaged.unlink()
    assert len(D.load_cifar10(tmp_path)[1]) == 50


def test_a_relative_data_root_without_the_batches_says_where_it_is_read(tmp_path, monkeypatch, capsys):
    """As for a relative OUT_DIR: from notebooks/, DATA_ROOT = "data" is notebooks/data, and CIFAR-10 was
    downloaded there without a word."""
    from labutils.session import Session

    monkeypatch.chdir(tmp_path)
    Session("cpu", tmp_path / "run", "data", "cpu")
    assert (f"note: CIFAR-10 is read from {tmp_path / 'data'} (DATA_ROOT 'data' is relative to the working folder "
            f"{tmp_path}), which holds no batches yet") in capsys.readouterr().out
    D.write_synthetic_cifar10(tmp_path / "data", n_train=50, n_test=20)
    Session("cpu", tmp_path / "run", "data", "cpu")  # the batches are there: nothing to say
    assert "DATA_ROOT" not in capsys.readouterr().out
    # In a pipeline's kernel the relative path is the pipeline's own, not typed by anyone (review).
    from labutils.runlock import RUN_TOKEN_ENV
    monkeypatch.setenv(RUN_TOKEN_ENV, "token")
    Session("cpu", tmp_path / "run2", "elsewhere", "cpu")
    assert "DATA_ROOT" not in capsys.readouterr().out


def test_a_data_root_given_to_a_session_is_not_said_to_come_from_labutils_data(tmp_path, monkeypatch):
    """LABUTILS_DATA and DATA_ROOT naming one missing folder: the message blamed the variable (review)."""
    from labutils.session import Session

    typo = tmp_path / "typo"
    monkeypatch.setenv("LABUTILS_DATA", str(typo))
    monkeypatch.setattr(D, "DEFAULT_DATA_ROOT", typo)
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(D.DataNotFoundError) as err:
        Session("cpu", tmp_path / "run", str(typo), "cpu").prepare_data()
    assert "does not exist" in str(err.value) and "LABUTILS_DATA" not in str(err.value)
    with pytest.raises(D.DataNotFoundError, match=r"\(from \$LABUTILS_DATA\) does not exist"):  # no DATA_ROOT
        Session("cpu", tmp_path / "run2", "", "cpu").prepare_data()

@pytest.mark.parametrize("images", [np.random.default_rng(0).random((10, 3, 32, 32)).astype(np.float32),
                                    torch.rand(10, 32, 32, 3), np.full((10, 3, 32, 32), 300, np.int64)],
                         ids=["float-numpy", "float-torch", "int64-over-255"])
def test_write_cifar10_refuses_images_that_are_not_uint8_and_writes_nothing(tmp_path, images):
    """Floats in [0, 1] were cast to uint8 and written as black images, ints over 255 wrapped."""
    good, labels = np.zeros((10, 3, 32, 32), np.uint8), np.arange(10)
    said = "train_images are {}: pass uint8 images (0-255); for floats in [0, 1], (x * 255).round().astype(np.uint8)"
    with pytest.raises(ValueError, match=re.escape(said.format(torch.as_tensor(images).dtype))):
        D.write_cifar10(tmp_path, images, labels, good, labels)
    with pytest.raises(ValueError, match="test_images are"):
        D.write_cifar10(tmp_path, good, labels, images, labels)
    assert not (tmp_path / D.BATCH_DIR).exists()
    # uint8 tensors still pass, channels-last too
    x = torch.randint(0, 256, (10, 32, 32, 3), dtype=torch.uint8)
    D.write_cifar10(tmp_path, x, torch.arange(10), 255 - x, list(range(10)))
    read, read_labels = D.load_cifar10(tmp_path, train=True, download=False)
    assert np.array_equal(read, x.permute(0, 3, 1, 2).numpy()) and read_labels.tolist() == list(range(10))


@pytest.mark.parametrize("shape, said", [((10, 3, 28, 28), "CIFAR-10 batches hold 32x32 images"),
                                         ((10, 28, 28, 3), "CIFAR-10 batches hold 32x32 images"),
                                         ((10, 32, 32), "pass RGB images"), ((10, 1, 32, 32), "pass RGB images")])
def test_write_cifar10_refuses_images_that_are_not_32x32_rgb(tmp_path, shape, said):
    labels = np.arange(10)
    with pytest.raises(ValueError, match=re.escape(f"train_images have shape {list(shape)}: {said}")):
        D.write_cifar10(tmp_path, np.zeros(shape, np.uint8), labels, np.zeros((10, 3, 32, 32), np.uint8), labels)
    assert not (tmp_path / D.BATCH_DIR).exists()


@pytest.mark.parametrize("n_labels", [9, 11])
def test_write_cifar10_refuses_a_label_count_that_is_not_the_image_count(tmp_path, n_labels):
    images = np.zeros((10, 3, 32, 32), np.uint8)
    said = f"train_labels has shape [{n_labels}] for 10 train_images: pass one label (0-9) per image"
    with pytest.raises(ValueError, match=re.escape(said)):
        D.write_cifar10(tmp_path, images, np.arange(n_labels) % 10, images, np.arange(10))
    with pytest.raises(ValueError, match=re.escape(f"test_labels has shape [{n_labels}] for 10 test_images")):
        D.write_cifar10(tmp_path, images, np.arange(10), images, np.arange(n_labels) % 10)
    assert not (tmp_path / D.BATCH_DIR).exists()


@pytest.mark.parametrize("labels", [np.arange(10) + 1, np.arange(10) - 1, np.arange(10) * 0.5])
def test_write_cifar10_refuses_labels_that_are_not_classes_0_to_9(tmp_path, labels):
    """Reading such a file back refused it, and said to write it again with write_cifar10."""
    images = np.zeros((10, 3, 32, 32), np.uint8)
    with pytest.raises(ValueError, match=re.escape("test_labels must be whole numbers 0-9")):
        D.write_cifar10(tmp_path, images, np.arange(10), images, labels)
    assert not (tmp_path / D.BATCH_DIR).exists()


@pytest.mark.parametrize("n_labels", [9, 11])
def test_device_loader_refuses_a_label_count_that_is_not_the_image_count(n_labels):
    """Fewer labels dropped images without a word; more failed with an IndexError mid-epoch."""
    with pytest.raises(ValueError, match=re.escape(f"{n_labels} labels (shape [{n_labels}]) for 10 images: "
                                                   f"pass one label per image")):
        D.DeviceLoader(np.zeros((10, 3, 32, 32), np.uint8), np.arange(n_labels) % 10, 5, False)


def test_seed_everything_replays_the_standard_training_loader_with_its_workers(tmp_path):
    """With persistent workers (get_loaders' num_workers=2) a second epoch after seed_everything
    reused the workers and their random state: other crops and flips than the first time."""
    from labutils.train import seed_everything

    D.write_synthetic_cifar10(tmp_path, n_train=40, n_test=10)
    train, _ = D.get_loaders(8, tmp_path, download=False)
    assert train.num_workers == 2  # as get_loaders sets it by default
    seed_everything(0, train)
    x1, y1 = next(iter(train))
    seed_everything(0, train)
    x2, y2 = next(iter(train))
    assert torch.equal(y1, y2) and torch.equal(x1, x2)


@pytest.mark.parametrize("n_train", [0, 1, 4])
def test_write_cifar10_refuses_fewer_training_images_than_batch_files_and_writes_nothing(tmp_path, n_train):
    """array_split wrote an empty data_batch_N, which reading then refused ("it holds no images"),
    advising to write the data again with write_cifar10."""
    images = np.zeros((10, 3, 32, 32), np.uint8)
    with pytest.raises(ValueError, match=rf"{n_train} train_images for 5 batch files: pass at least 5 training images"):
        D.write_cifar10(tmp_path, images[:n_train], np.arange(n_train), images, np.arange(10))
    with pytest.raises(ValueError, match="no test_images: pass at least one test image"):
        D.write_cifar10(tmp_path, images, np.arange(10), images[:0], np.arange(0))
    with pytest.raises(ValueError, match="pass at least 5 training images"):
        D.write_synthetic_cifar10(tmp_path, n_train=n_train)
    assert not (tmp_path / D.BATCH_DIR).exists()
    D.write_cifar10(tmp_path, images[:5], np.arange(5), images[:1] + 1, np.arange(1))  # one a file: it reads back
    assert len(D.load_cifar10(tmp_path, True, download=False)[1]) == 5


@pytest.mark.parametrize("kwargs, said", [({"batch_size": True}, "batch_size=True must be a whole number >= 1"),
                                          ({"cutout": 2.5}, "cutout=2.5 must be between 0 (off) and the image side 32, a whole number of pixels"),
                                          ({"cutout": True}, "cutout=True must be between 0 (off) and the image side 32, a whole number of pixels")])
def test_device_loader_refuses_a_batch_size_or_cutout_that_is_not_a_whole_number(kwargs, said):
    """batch_size=True made batches of one, cutout=2.5 erased squares of 2: both without a word."""
    args = dict(batch_size=2) | kwargs
    with pytest.raises(ValueError, match=re.escape(said)):
        D.DeviceLoader(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4), args.pop("batch_size"), True, **args)
    assert D.DeviceLoader(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4), np.int64(2), True, cutout=np.int64(8)).cutout == 8


@pytest.mark.parametrize("n", [-5, 0, 2.5, True])
def test_subset_refuses_a_count_that_is_not_a_positive_whole_number(n):
    """n=-5 gave all but five images, n=0 an empty set."""
    labels = np.arange(20) % 10
    with pytest.raises(ValueError, match=re.escape(f"n={n!r} must be a whole number of examples >= 1, or None")):
        D.subset(np.zeros((20, 3, 32, 32), np.uint8), labels, n)
    assert len(D.subset(np.zeros((20, 3, 32, 32), np.uint8), labels, np.int64(3))[1]) == 3


def test_compare_loaders_says_a_batch_larger_than_the_profiles_images(tmp_path):
    """It failed with a bare StopIteration (review)."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import data as lab

    s = Session("smoke", tmp_path, device="cpu")
    s.prepare_data()
    with pytest.raises(SettingsError, match="batch_size 4096 is more than the 1,000 training images of the smoke profile"):
        lab.compare_loaders(s, batch_size=4096)


def test_write_cifar10_refuses_a_test_split_that_holds_training_images_and_writes_nothing(tmp_path):
    """x[:10000] of the training images passed as the test split was written without a word: every
    accuracy then counted images the model trained on."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
    test = np.concatenate([train[:3], rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8).transpose(0, 3, 1, 2)])
    with pytest.raises(ValueError, match=re.escape("3 of the 8 test_images are also in train_images: every accuracy "
                                                   "would count images the model trained on")):
        D.write_cifar10(tmp_path, train, np.arange(20) % 10, test, np.arange(8))
    assert not (tmp_path / D.BATCH_DIR).exists()
    D.write_cifar10(tmp_path, train, np.arange(20) % 10, test[3:], np.arange(5))  # held out: written
    # One image in both of 200 (1%) passes: real datasets hold a few such duplicates.
    few = np.concatenate([train[:1], rng.integers(0, 256, size=(199, 3, 32, 32), dtype=np.uint8)])
    D.write_cifar10(tmp_path / "few", train, np.arange(20) % 10, few, np.arange(200) % 10)
