import io

import numpy as np
import pytest
import torch

from labutils.accel import memory_format
from labutils.artifacts import WriteFailed
from labutils.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from labutils.models import build_model


def _same_outputs(a, b):
    """Bit-identical outputs; both in the training memory format, as load_checkpoint returns models."""
    x = torch.randn(2, 3, 32, 32)
    a, b = (m.to(memory_format=memory_format("cpu")).eval() for m in (a, b))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.mark.parametrize("arch, kwargs", [("resnet18", {"width": 8}), ("vit_scratch", {"depth": 2})])
def test_round_trip(tmp_path, arch, kwargs):
    model = build_model(arch, **kwargs)
    path = save_checkpoint(tmp_path / "m.pth", model, metrics={"accuracy": 0.5}, meta={"profile": "x"})
    loaded, ckpt = load_checkpoint(path)
    assert ckpt["metrics"] == {"accuracy": 0.5} and ckpt["meta"] == {"profile": "x"}
    assert loaded.arch == model.arch
    assert _same_outputs(model, loaded)


def test_a_loaded_model_is_ready_to_score(tmp_path):
    """It came back in training mode: drop-path drew anew at every call and BatchNorm scored with
    the batch's statistics, overwriting the stored ones."""
    for model in (build_model("vit_scratch", depth=2), build_model("resnet20", width=4)):
        loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pth", model))
        assert not any(m.training for m in loaded.modules())
        stored = {k: v.clone() for k, v in loaded.state_dict().items()}
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(loaded(x), loaded(x))
        assert all(torch.equal(v, stored[k]) for k, v in loaded.state_dict().items())


def test_pruned_widths_round_trip(tmp_path):
    model = build_model("resnet18", stages=[8, 16, 24, 32], inner=[[4, 5], [6, 7], [8, 9], [10, 11]])
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "p.pth", model))
    assert loaded.layer3[1].conv1.out_channels == 9
    assert _same_outputs(model, loaded)


def test_sparse_encoding_is_exact_and_smaller(tmp_path):
    model = build_model("resnet18", width=16)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.mul_((torch.rand_like(p) > 0.9).float())  # ~90% zeros
    dense = save_checkpoint(tmp_path / "dense.pth", model)
    sparse = save_checkpoint(tmp_path / "sparse.pth", model, sparse=True)
    assert sparse.stat().st_size < 0.3 * dense.stat().st_size
    a, b = read_checkpoint(dense)["state_dict"], read_checkpoint(sparse)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    loaded, _ = load_checkpoint(sparse)
    assert _same_outputs(model, loaded)


def test_corrupt_file_is_rejected_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "m.pth", build_model("resnet20"))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(path)
    (tmp_path / "notes.pth").write_text("hello")  # torch raises a bare KeyError: 101
    with pytest.raises(CheckpointError, match="not a torch file: KeyError: 101"):
        load_checkpoint(tmp_path / "notes.pth")
    with pytest.raises(IsADirectoryError, match=r"is a folder: give the checkpoint files in it"):
        load_checkpoint(tmp_path)


def test_random_bytes_are_called_corrupt_not_pickled_objects(tmp_path):
    """3 KB of random bytes, or the text "garbage", read "holds Python objects a safe load refuses (a
    whole pickled model...)": torch's reason was "Unsupported operand 103" (review)."""
    (tmp_path / "garbage.pth").write_text("garbage")
    (tmp_path / "bytes.pth").write_bytes(bytes(range(256)) * 12)
    for name, operand in (("garbage.pth", 103), ("bytes.pth", 0)):  # "g", "\x00": no operand pickle has
        with pytest.raises(CheckpointError, match=rf"not a readable checkpoint \(corrupt, truncated or not a torch "
                                                  rf"file: UnpicklingError: Unsupported operand {operand}\)") as err:
            load_checkpoint(tmp_path / name)
        assert "weights_only" not in str(err.value)


def test_foreign_file_is_rejected_clearly(tmp_path):
    torch.save(build_model("resnet20").state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="not written by labutils"):
        load_checkpoint(tmp_path / "plain.pth")


def test_pickled_objects_are_refused(tmp_path):
    """weights_only loading: a whole pickled module is not executed, it is rejected."""
    torch.save(build_model("resnet20"), tmp_path / "module.pth")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "module.pth")


def test_a_pickled_model_is_named_as_such_and_keys_of_any_type_are_listed(tmp_path):
    """A whole pickled model, what a student saves most, was called corrupt or truncated, with
    torch's advice to load it unsafely (ANSI codes included); a dict with an int key crashed."""
    torch.save(build_model("resnet20"), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match=r"holds Python objects a safe load refuses \(a whole pickled model") as err:
        load_checkpoint(tmp_path / "module.pth")
    assert "\x1b" not in str(err.value) and "weights_only=False" not in str(err.value)
    torch.save({0: build_model("resnet20").state_dict(), "acc": 0.9}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"not written by labutils \(found \['0', 'acc'\]\)"):
        load_checkpoint(tmp_path / "mixed.pth")


def test_a_checkpoint_a_safe_load_could_not_read_is_not_written(tmp_path):
    """A numpy float among the metrics was saved, then every load refused the file, and re-running
    the notebook (as the message said) wrote the same unreadable file again."""
    with pytest.raises(TypeError, match=r"a value a safe load refuses .* \(x\.tolist\(\) for a numpy array\); nothing was written"):
        save_checkpoint(tmp_path / "m.pth", build_model("resnet20"), metrics={"accuracies": np.array([0.5, 0.6])})
    assert not list(tmp_path.iterdir())


def test_tensor_and_numpy_metrics_are_stored_as_numbers_and_nan_is_refused(tmp_path):
    """A tensor accuracy, (pred == y).float().mean(), was stored as a tensor, and a NaN as NaN:
    ``labutils evaluate --json`` then failed on the file with a traceback (review)."""
    path = save_checkpoint(tmp_path / "m.pth", build_model("resnet20", width=4),
                           metrics={"accuracy": torch.tensor(0.5), "loss": np.float64(1.5), "hist": [np.float32(2)]},
                           meta={"seed": np.int64(3)})
    ckpt = read_checkpoint(path)
    assert ckpt["metrics"] == {"accuracy": 0.5, "loss": 1.5, "hist": [2.0]} and ckpt["meta"] == {"seed": 3}
    assert type(ckpt["metrics"]["accuracy"]) is float and type(ckpt["meta"]["seed"]) is int
    for bad, where in ((float("nan"), "'accuracy' is nan"), ({"top1": torch.tensor(float("inf"))}, r"'accuracy'\['top1'\] is inf")):
        with pytest.raises(ValueError, match=f"metric {where}: nothing was written. .* diverged training \\(lower the learning rate\\)"):
            save_checkpoint(tmp_path / "bad.pth", build_model("resnet20", width=4), metrics={"accuracy": bad})
    assert not (tmp_path / "bad.pth").exists()


def test_evaluate_json_takes_odd_recorded_accuracies_of_older_files(tmp_path, capsys, monkeypatch):
    """A recorded accuracy kept as a tensor or NaN (written before save_checkpoint refused them)
    ended ``evaluate --json`` in a traceback or a ValueError, no file, the good checkpoint's row lost."""
    import json

    from labutils import evaluate as E
    from labutils.cli import main

    good = save_checkpoint(tmp_path / "good.pth", build_model("resnet20", width=4), metrics={"accuracy": 0.5})
    paths = [str(good)]
    for name, value in (("tensor", torch.tensor(0.25)), ("nan", float("nan")), ("text", "n/a")):
        ckpt = torch.load(good, weights_only=True)
        torch.save(ckpt | {"metrics": {"accuracy": value}}, tmp_path / f"{name}.pth")  # as an older labutils wrote it
        paths.append(str(tmp_path / f"{name}.pth"))
    out = tmp_path / "evaluate.json"
    assert main(["evaluate", *paths, "--no-accuracy", "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["name"], r["recorded_accuracy"]) for r in rows] == [("good", 0.5), ("tensor", 0.25), ("nan", None),
                                                                    ("text", None)]
    # Whatever else JSON cannot hold: one error line, the table printed, exit status 1 as for an unwritable --json.
    measured = E.evaluate_checkpoint
    for odd, said in ((torch.tensor([1.0]), f"error: cannot write {out}: Object of type Tensor is not JSON serializable"),
                      (float("nan"), f"error: cannot write {out}: it would hold NaN")):
        monkeypatch.setattr(E, "evaluate_checkpoint", lambda *a, **k: measured(*a, **k) | {"odd": odd})
        out.unlink(missing_ok=True)
        capsys.readouterr()
        assert main(["evaluate", str(good), "--no-accuracy", "--device", "cpu", "--json", str(out)]) == 1
        captured = capsys.readouterr()
        assert "good " in captured.out and not out.exists()
        assert [line for line in captured.err.splitlines() if line.startswith("error:")][0].startswith(said)
        assert "Traceback" not in captured.err


def test_a_damaged_labutils_checkpoint_is_a_checkpoint_error(tmp_path):
    """A packed entry whose values and bitmask disagree raised torch's shape error, a missing key a
    bare KeyError; a JSON file of other bytes than UTF-8 did not name itself."""
    from labutils.artifacts import read_json

    model = build_model("resnet20")
    with torch.no_grad():
        model.conv1.weight.zero_()  # a packed (sparse) entry
    path = save_checkpoint(tmp_path / "m.pth", model, sparse=True)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["conv1.weight"]["values"] = torch.ones(3)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="its packed weights do not unpack"):
        load_checkpoint(path)
    del ckpt["arch_kwargs"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"lacks \['arch_kwargs'\]: it was damaged or edited"):
        load_checkpoint(path)
    (tmp_path / "r.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="r.json is not valid JSON"):
        read_json(tmp_path / "r.json")


def test_a_checkpoint_whose_record_does_not_build_its_model_says_so_in_one_line(tmp_path):
    """Weights of another width gave torch's whole text, a "size mismatch" line for each of ~100
    tensors; an unknown architecture a bare ValueError, a misspelt argument a TypeError (review)."""
    ckpt = torch.load(save_checkpoint(tmp_path / "m.pth", build_model("resnet18", width=8)), weights_only=True)
    advice = "it was damaged or edited, or written by another labutils: delete it and re-run the notebook that writes it"
    for edit, said in (({"arch_kwargs": {"width": 16}}, r"its weights do not fit its architecture resnet18 \{'width': "
                        r"16\}: 101 tensors of another shape, such as conv1.weight \[8, 3, 3, 3\] where the "
                        r"architecture has \[16, 3, 3, 3\]; "),
                       ({"state_dict": {k: v for k, v in ckpt["state_dict"].items() if k != "fc.bias"}},
                        r"1 tensor missing, such as fc.bias; "),
                       ({"arch": "resnet99"}, r"its architecture 'resnet99' \{'width': 8\} cannot be built "
                        r"\(ValueError: unknown architecture 'resnet99'"),
                       ({"arch_kwargs": {"widht": 8}}, r"cannot be built \(TypeError: .*unexpected keyword argument "
                        r"'widht'\); ")):
        torch.save(ckpt | edit, tmp_path / "edited.pth")
        with pytest.raises(CheckpointError, match=said + ".*" + advice) as err:
            load_checkpoint(tmp_path / "edited.pth")
        assert len(str(err.value).splitlines()) == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        load_checkpoint(tmp_path / "nope.pth")


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous file intact and no temporary file behind."""
    path = save_checkpoint(tmp_path / "m.pth", build_model("resnet20"), metrics={"v": 1})

    real_save = torch.save

    def broken(obj, f):
        if isinstance(f, io.BytesIO):  # the check of the small records, before the file is opened
            return real_save(obj, f)
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(WriteFailed, match="disk full"):  # raised by the write into the file
        save_checkpoint(path, build_model("resnet20"), metrics={"v": 2})
    monkeypatch.undo()
    assert read_checkpoint(path)["metrics"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]


def test_evaluate_counts_the_weights_the_runs_recipe_pruned(tmp_path):
    """A run whose recipe also pruned the first conv and the classifier recorded 80.000% of its
    prunable weights gone; ``labutils evaluate`` counted them against the default layers: 80.096%."""
    from labutils.artifacts import write_json
    from labutils.evaluate import evaluate_checkpoint
    from labutils.models import course_model
    from labutils.prune import masks_from_scores, prunable_parameters, sparsity_report
    from labutils.prune.masks import magnitude_scores

    model = course_model("cnn", width=8)
    params = prunable_parameters(model, include_first=True, include_classifier=True)
    masks = masks_from_scores(magnitude_scores(params), 0.8)
    with torch.no_grad():
        for n, p in params.items():
            p.mul_(masks[n].to(p.dtype))
    recorded = sparsity_report(model, params)["pruning_percentage"]
    path = save_checkpoint(tmp_path / "models_saved" / "cnn_after_unstructured_pruning.pth", model,
                           {"pruning_percentage": recorded}, {"run_id": "r1"})
    record = {"run": {"run_id": "r1"}, "recipe": {"include_first": True, "include_classifier": True}}
    write_json(tmp_path / "metrics" / "cnn_after_unstructured_pruning.json", record)
    assert evaluate_checkpoint(path, accuracy=False)["prunable_sparsity"] == pytest.approx(recorded)
    write_json(tmp_path / "metrics" / "cnn_after_unstructured_pruning.json", record | {"run": {"run_id": "r2"}})
    assert evaluate_checkpoint(path, accuracy=False)["prunable_sparsity"] != pytest.approx(recorded)  # not its run's


def test_a_checkpoint_of_another_version_says_what_to_do(tmp_path):
    """"has checkpoint version 2, this labutils reads version 1" named no remedy."""
    path = save_checkpoint(tmp_path / "m.pth", build_model("resnet20", width=4))
    for version, remedy in ((2, r"it was written by a newer labutils: update this one \(git pull; python -m pip install "
                                r"-e \.\), or re-run the notebook that writes it"),
                            (0, "delete it and re-run the notebook that writes it")):
        ckpt = torch.load(path, weights_only=True)
        torch.save(ckpt | {"version": version}, tmp_path / f"v{version}.pth")
        with pytest.raises(CheckpointError, match=f"has checkpoint version {version}, this labutils reads "
                                                  f"version 1: {remedy}"):
            read_checkpoint(tmp_path / f"v{version}.pth")
