"""A notebook's handle on its run: profile, folders, device, data and run identity in one object,
so each notebook cell stays a line or two."""
from __future__ import annotations

import errno
import json
import numbers
import os
import re
from pathlib import Path

import numpy as np
import torch

from . import data as D
from .accel import memory_format, precision_for
from .artifacts import (RunDirs, device_name, file_sha256, git_commit, read_json, read_json_object, resolve_out_dir,
                        run_id_for, run_info, write_json)
from .checkpoint import CheckpointError, _safely_loadable, load_checkpoint, plain_numbers, save_checkpoint
from .course import BASELINE_MISSING, CIFAR10_IMAGES, MODEL_NAMES, NOT_PREPARED, NOTEBOOK_OF_STAGE, STAGES
from .errors import Explained, SettingsError
from .models import COURSE_MODELS, course_model, input_size
from .profile_check import check_profile
from .profiles import PROFILES, auto_profile, get_profile
from .runlock import RUN_TOKEN_ENV, check_free
from .train import check_seed, get_device, seed_everything


# One evaluation batch size everywhere, so re-evaluating a checkpoint (python -m labutils
# evaluate) runs the same arithmetic and reproduces the recorded accuracy exactly.
EVAL_BATCH_SIZE = 500

# How the record written while a checkpoint is replaced begins: found after a kill, --resume runs its notebook again.
SAVE_NOT_FINISHED = "its save did not finish"


class Session:
    """Everything a notebook needs to know about its run.

    ``profile`` "auto" means ``full`` on a CUDA GPU, else ``cpu``; an empty ``out_dir`` means the
    profile's default (see ``resolve_out_dir``); an empty ``data_root`` the default data folder;
    ``models`` the course models the notebook works on. A folder holds one run: a session continues
    the run recorded there, and refuses another profile or seed, or a folder another run is writing;
    ``start_run=False`` (notebooks 03-05, which continue a run) also refuses a folder that holds no
    run yet (nothing is written then), and narrows ``models`` to the run's (``_models_of_run``).

    >>> s = Session("smoke")                          # doctest: +SKIP
    >>> train, test = s.loaders("cnn")               # doctest: +SKIP
    """

    def __init__(self, profile: str = "auto", out_dir: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None, device: str = "auto", seed: int = 0,
                 models: list[str] | tuple[str, ...] = MODEL_NAMES, start_run: bool = True):
        # Every parameter is checked before the first folder or file is written.
        self.seed = check_seed(seed)
        self.models = check_models(models)
        self._asked = tuple(self.models)  # MODELS as passed, before _models_of_run narrows it
        # Notebooks 01 and 06 pass no MODELS: their Session line named all three in a run of one.
        self._models_given = models is not MODEL_NAMES
        if not isinstance(device, (str, torch.device)):  # None: torch's own error is a dozen lines of overloads
            raise SettingsError(f"DEVICE = {device!r}: use auto, cpu, cuda, cuda:N or mps (a string)")
        for what, path in (("OUT_DIR", out_dir), ("DATA_ROOT", data_root)):  # else a bare TypeError from pathlib
            if path is not None and not isinstance(path, (str, os.PathLike)):
                raise SettingsError(f"{what} = {path!r}: a folder's path, as a string (\"\" for the default)")
        try:
            self.device = get_device(device)
            self.profile = check_profile(get_profile(auto_profile(device) if profile == "auto" else profile))
            root = resolve_out_dir(self.profile["name"], out_dir)
        except (ValueError, RuntimeError) as err:  # shown as one line naming the parameter
            raise SettingsError(str(err)) from None
        self.name = self.profile["name"]
        if self.name == "full" and self.device.type == "cpu":
            print("note: the full profile is the GPU's recipe; on the CPU it takes many hours "
                  "(PROFILE = \"cpu\" is the CPU's: 26 to 34 minutes on 2 cores, more with the pretrained ViT)")
        check_free(root)  # a notebook beside a running pipeline would overwrite its files
        new_run = not (root / "metrics" / "run.json").is_file()
        if new_run and not start_run:
            # Notebook 05 reports on a run: starting an empty one would leave a run.json that ties
            # the folder to this profile and seed.
            relative = out_dir and not Path(out_dir).expanduser().is_absolute()
            where = f" (a relative one is read from the working folder, {Path.cwd()})" if relative else ""
            # An empty OUT_DIR follows PROFILE (runs/<profile>/): a PROFILE set in 01-02 and not here
            # looked for the run in another profile's folder.
            default = "" if out_dir else (f"; an empty OUT_DIR is the {self.name} profile's folder: set PROFILE "
                                          f"as the run's notebooks 01 and 02 had it")
            raise SettingsError(f"OUT_DIR {root} holds no run (no metrics/run.json): set OUT_DIR to the folder "
                                f"of a run{where}, or run notebooks 01 and 02 there first{default}")
        if new_run and not out_dir and self.profile["reduced"]:
            # PROFILE = "smoke" set in notebook 01 alone: notebook 02, left at "auto", started a cpu run
            # (a CIFAR-10 download, minutes of training) without a word. Profiles, not paths: the note
            # stays in the executed notebook.
            others = [name for name, profile in PROFILES.items() if name != self.name and profile["reduced"]
                      and (resolve_out_dir(name) / "metrics" / "run.json").is_file()]
            if others:
                print(f"note: a new {self.name} run starts in its profile's folder, beside a run of profile "
                      f"{' and '.join(map(repr, others))}: to go on with that one, set PROFILE as in its notebooks "
                      f"(PROFILE = {others[0]!r}) in this notebook's parameters cell")
        self.dirs = RunDirs(root)
        self.data_root = D.run_data_root(self.profile["data"]["source"], self.dirs.root, data_root)
        self._data_origin = "" if data_root else None  # named by DATA_ROOT; else perhaps $LABUTILS_DATA's
        if data_root and Path(data_root).expanduser().resolve() != self.data_root:
            print(f"note: the {self.name} profile writes and reads its own synthetic data "
                  f"({self.data_root.name}/ in the run's folder); DATA_ROOT is not used")
        try:
            self.run_id = run_id_for(self.dirs.metrics, self.name, self.seed)
        except OSError as err:  # WriteFailed: the folders exist, but run.json cannot be written there
            if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):  # a full disk: its own advice
                raise SettingsError(str(err)) from None
            raise SettingsError(f"cannot write into OUT_DIR {self.dirs.root} ({err.filename}: "
                                f"{err.strerror or err}): set OUT_DIR to a folder you can write to") from None
        ran = self.pipeline_summary()
        if not start_run:
            self.models = self._models_of_run(self.models, ran)
        made_with, here = ran.get("git_commit"), git_commit()
        if made_with and here and made_with != here:  # edited code run by hand into the pipeline's run
            print(f"note: this run was made with the code of commit {made_with}; this kernel's labutils is "
                  f"{here}: what it writes here says so, and the report would mix the two. Run the notebooks "
                  f"from 01 again (or check out that code) for one code throughout")
        if new_run and out_dir and not Path(out_dir).expanduser().is_absolute():
            # A relative OUT_DIR is read from the working folder: an executed notebook run again from
            # elsewhere (papermill without --cwd) would start a new run there, not continue its own.
            print(f"note: a new run starts in {self.dirs.root} (OUT_DIR {str(out_dir)!r} is relative to "
                  f"the working folder {Path.cwd()})")
        # The same for a relative DATA_ROOT: from notebooks/, "data" is notebooks/data, and CIFAR-10 is fetched there.
        # Not in a pipeline's kernel: the pipeline makes --data-root relative itself, a path nobody typed.
        if (data_root and not Path(data_root).expanduser().is_absolute() and not os.environ.get(RUN_TOKEN_ENV)
                and self.profile["data"]["source"] != "synthetic" and not D.describe_prepared(self.data_root)):
            print(f"note: CIFAR-10 is read from {self.data_root} (DATA_ROOT {str(data_root)!r} is relative to the "
                  f"working folder {Path.cwd()}), which holds no batches yet")
        self._arrays: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
        self._on_device: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}
        self._data_description: str | None = None
        self._baselines: dict[str, str | None] = {}  # the recorded SHA-256 of each baseline this kernel loaded
        seed_everything(seed)

    def _models_of_run(self, models: list[str], ran: dict) -> list[str]:
        """``models`` less those the folder's run leaves out: a model the pipeline did not run
        (``--models``) and no notebook ran by hand for. Notebooks 03-05 of a ``--models cnn`` run,
        whose parameters cell lists all three, then prune and report cnn alone, the others not in
        this run (not "not produced", which would read as a failure). ``ran``: ``pipeline_summary()``.
        A MODELS of none of the run's models is a SettingsError naming them."""
        if not ran:
            return models

        def trained(m):  # another run's records do not count
            return m in ran.get("models", models) or any(
                self.of_this_run(read_json_object(self.dirs.metrics_file(m, stage))) for stage in NOTEBOOK_OF_STAGE)

        in_run = [m for m in models if trained(m)]
        if not in_run:  # an empty MODELS failed two cells later, naming a value nobody typed
            run_models = [m for m in MODEL_NAMES if trained(m)]
            raise SettingsError(f"MODELS = {models!r}: this run trained {run_models}: set MODELS = {run_models}, or "
                                f"train {', '.join(models)} in notebook 02 of this run first")
        if in_run != models:
            print(f"note: this run trained {', '.join(in_run)}; "
                  f"{', '.join(m for m in models if m not in in_run)} left out, as not in this run")
        return in_run

    def of_this_run(self, record) -> bool:
        """Whether a metrics record was written by this run (another run's leftover is not)."""
        return isinstance(record, dict) and (record.get("run") or {}).get("run_id") == self.run_id

    def pipeline_summary(self) -> dict:
        """``metrics/pipeline.json`` where the pipeline made this run (its models, notebooks,
        timings), else {} (notebooks run by hand, or a summary of an earlier run)."""
        path = self.dirs.metrics / "pipeline.json"
        ran = read_json(path) if path.is_file() else {}
        return ran if ran.get("run_id") == self.run_id else {}

    # -- identity -------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        # The records name the data without NOT_PREPARED: one written before the data was there and one
        # after would name two datasets, and notebook 05 saw two runs of one run id.
        data = self.data_description.removesuffix(NOT_PREPARED)
        return run_info(self.name, data, self.device, self.run_id) | {
            "reduced": self.profile["reduced"], "seed": self.seed, "data_root": self.data_root_from_run,
            "n_test": self.profile["data"]["n_test"], "precision": precision_for(self.device)}

    @property
    def data_root_from_run(self) -> str:
        """The data folder as the run's files record it: relative to the run folder (the records
        then name no folder of the machine, and a run folder moved with its data still finds it;
        ``evaluate`` resolves it against the checkpoint's run folder), absolute where no relative
        path exists (another drive)."""
        try:
            return os.path.relpath(self.data_root, self.dirs.root)
        except ValueError:
            return str(self.data_root)

    @property
    def data_description(self) -> str:
        """What the data is (``describe_data``), read once its files exist: a session shown before
        ``prepare_data`` says the data is not there yet, and names it once it is."""
        if self._data_description is None:
            self._data_description = D.describe_prepared(self.data_root)
        if self._data_description is None:
            return D.describe_to_come(self.profile["data"]["source"]) + NOT_PREPARED
        return self._data_description

    def caption(self, run: dict | None = None, measured_here: bool = False) -> str:
        """One line naming the run, for the foot of every figure. ``run``: the run a metrics file
        names (its "run" record, as notebook 05 reads it), which may have used another data copy
        or device than this kernel; ``measured_here``: the figure also holds numbers measured again
        in this kernel (times, re-scored accuracy), on this session's device."""
        if run is None:
            name, reduced, data = self.name, self.profile["reduced"], self.data_description
            device, run_id, seed = device_name(self.device), self.run_id, self.seed
        else:
            name, data, device, run_id = run["profile"], run["data"], run["device"], run["run_id"]
            reduced, seed = PROFILES.get(name, {}).get("reduced", False), run.get("seed", 0)
        line = f"profile {name}{' (reduced run)' if reduced else ''} | {data} | {device} | run {run_id}"
        line += f" | seed {seed}" if seed else ""  # the injected cell that named it is gone from executed notebooks
        return line + (f" | measured again on {device_name(self.device)}" if measured_here else "")

    # -- data -----------------------------------------------------------------------------
    def prepare_data(self) -> Path:
        """Make sure the batches exist: synthetic ones are written, CIFAR-10 is downloaded
        (or a clear error says how to place it by hand)."""
        if self.profile["data"]["source"] == "synthetic":
            folder = self.data_root / D.BATCH_DIR
            if not all((folder / f).is_file() for f in D.TRAIN_FILES + D.TEST_FILES + ("batches.meta",)):
                D.write_synthetic_cifar10(self.data_root, seed=0,  # the same images whatever the run's seed
                                          n_train=self.profile["data"]["n_train"],
                                          n_test=self.profile["data"]["n_test"])
            return self.data_root / D.BATCH_DIR
        return D.cifar10_dir(self.data_root, origin=self._data_origin)

    def arrays(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """The profile's (balanced subset of the) split as uint8 images and labels."""
        if train not in self._arrays:
            self.prepare_data()
            n = self.profile["data"]["n_train" if train else "n_test"]
            images, labels = D.load_cifar10(self.data_root, train, origin=self._data_origin)
            if n is not None and len(labels) < n:  # a smaller copy would silently shrink the run
                split = "training" if train else "test"
                raise D.DataError(f"the {self.name} profile uses {n:,} {split} images, but "
                                  f"{self.data_root / D.BATCH_DIR} holds {len(labels):,}; use the whole "
                                  f"CIFAR-10 (see the README's Data section) or another DATA_ROOT / --data-root")
            self._arrays[train] = D.subset(images, labels, n)  # the same images for every seed
            whole = CIFAR10_IMAGES[train]
            if n is None and len(labels) < whole and self.data_description != D.SYNTHETIC:
                # Said, not refused (tests run a toy full profile on a few images), and not put in the
                # data description: records written before and after the images are read would then
                # name two datasets, and notebook 05 would see two runs.
                split = "training" if train else "test"
                print(f"note: the {self.name} profile uses all {whole:,} {split} images of CIFAR-10, but "
                      f"{self.data_root / D.BATCH_DIR} holds {len(labels):,}: this run is on a partial copy "
                      f"(its baselines' records say how many test images scored them)")
        return self._arrays[train]

    def class_names(self) -> list[str]:
        return D.class_names(self.data_root)

    def loaders(self, model_name: str, batch_size: int | None = None, augmentation: dict | None = None):
        """Fast (train, test) loaders on the device at the model's input size. The training
        batches are augmented as the model's recipe says (its ``data.AUGMENTATION`` keys, so its
        pruning fine-tunes see the same data as its training) unless ``augmentation`` is given."""
        recipe = self.train_config(model_name)
        batch_size = recipe["batch_size"] if batch_size is None else batch_size  # 0 is refused, not replaced
        augmentation = D.augmentation_of(recipe) if augmentation is None else augmentation
        size = self.input_size(model_name)
        train = D.DeviceLoader(*self.device_arrays(True), batch_size, True, self.device, size, self.seed,
                               **augmentation)
        test = D.DeviceLoader(*self.device_arrays(False), EVAL_BATCH_SIZE, False, self.device, size, self.seed)
        return train, test

    def test_subset_loader(self, n: int | None, batch_size: int, size: int) -> D.DeviceLoader:
        """A class-balanced ``n``-image slice of the test split (all of it for None), for
        studies that evaluate many times."""
        # n <= 0 would slice from the end (n=-5: all but five), 0 give a loader with no batch.
        if n is not None and (not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"n={n!r} must be a whole number of test images >= 1, or None for the whole test split")
        images, labels = D.subset(*self.arrays(False), n)
        return D.DeviceLoader(images, labels, batch_size, False, self.device, size, self.seed)

    def device_arrays(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``arrays(train)`` as uint8/int64 tensors on the device, copied there once per session."""
        if train not in self._on_device:
            images, labels = self.arrays(train)
            self._on_device[train] = (torch.as_tensor(images).to(self.device),
                                      torch.as_tensor(labels, dtype=torch.int64).to(self.device))
        return self._on_device[train]

    # -- models ---------------------------------------------------------------------------
    def model_overrides(self, name: str) -> dict:
        check_model(name)
        return dict(self.profile["models"].get(name, {}))

    def input_size(self, name: str) -> int:
        return int(self.model_overrides(name).get("img_size", COURSE_MODELS[name]["input_size"]))

    def train_config(self, name: str) -> dict:
        check_model(name)
        return dict(self.profile["train"][name])

    def new_model(self, name: str, pretrained_weights: str | None = None) -> torch.nn.Module:
        seed_everything(self.seed)
        model = course_model(name, pretrained_weights, **self.model_overrides(name))
        assert input_size(model) == self.input_size(name)
        return model.to(self.device, memory_format=memory_format(self.device))

    # -- artifacts ------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, name: str, stage: str, metrics: dict,
             sparse: bool = False) -> dict:
        """Checkpoint ``models_saved/{name}_{stage}.pth`` and ``metrics/{name}_{stage}.json``.
        Returns the metrics record written (with run info and the checkpoint's size)."""
        check_artifact(name, stage)
        self.check_still_this_run()
        path = self.dirs.checkpoint(name, stage)
        metrics = plain_numbers(metrics)  # a tensor accuracy, (pred == y).float().mean(), is a number here
        record = {"model": name, "stage": stage, "run": self.info, "produced": True, **metrics}
        try:  # before the checkpoint: a record that cannot be written would leave it without one
            json.dumps(record, allow_nan=False)
        except ValueError as err:
            raise ValueError(f"{name}'s {stage} metrics cannot be written ({err}): nothing was saved. "
                             f"NaN or an infinity comes from a diverged training (lower the learning rate)") from err
        except TypeError as err:
            raise TypeError(f"{name}'s {stage} metrics cannot be written ({err}): nothing was saved. "
                            f"Pass plain numbers (x.item(), float(x)), strings, lists and dicts") from err
        # What save_checkpoint refuses, refused before the record below is replaced.
        if not getattr(model, "arch", None):
            raise ValueError("the model has no .arch record; build it with s.new_model or "
                             "labutils.models.build_model: nothing was saved")
        _safely_loadable({"arch_kwargs": model.arch["kwargs"], "metrics": _numbers_only(metrics), "meta": record["run"]})
        # "Not produced" while the checkpoint is replaced: an interrupt between the two writes left
        # the new weights beside the old record's numbers.
        earlier = read_json_object(self.dirs.metrics_file(name, stage))
        write_json(self.dirs.metrics_file(name, stage), {
            "model": name, "stage": stage, "run": record["run"], "produced": False,
            "reason": f"{SAVE_NOT_FINISHED} (interrupted, or the disk was full): run notebook "
                      f"{NOTEBOOK_OF_STAGE[stage]} again"})
        try:
            save_checkpoint(path, model, metrics=_numbers_only(metrics), meta=record["run"], sparse=sparse)
        except BaseException:
            # The write failed before its rename (a full disk): the earlier checkpoint is whole, and
            # so is its record again. Only a checkpoint replaced without its record stays marked.
            old_sha = ((earlier or {}).get("checkpoint") or {}).get("sha256")
            if old_sha and path.is_file() and file_sha256(path) == old_sha:
                write_json(self.dirs.metrics_file(name, stage), earlier)
            raise
        record["checkpoint"] = {"path": str(path.relative_to(self.dirs.root)), "bytes": path.stat().st_size,
                                "encoding": "sparse" if sparse else "dense", "sha256": file_sha256(path)}
        if stage != "before_pruning":  # which baseline it was made from: notebook 05 checks it is still the one
            before = (self.metrics(name, "before_pruning") or {}).get("checkpoint", {})
            record["baseline_sha256"] = self._baselines.get(name) or before.get("sha256")
        write_json(self.dirs.metrics_file(name, stage), record)
        self._outdate_later_notebooks(stage)
        return record

    def add_to_record(self, name: str, stage: str, extra: dict, checkpoint_sha256: str | None = None) -> dict:
        """Merge ``extra`` (what a notebook measures after the save: timing, the reload check, the
        frontier) into the saved record of ``name`` at ``stage``, written atomically. With
        ``checkpoint_sha256``, only while the record is still that checkpoint's: another kernel may
        have saved the model again since, and the numbers would join other weights."""
        self.check_still_this_run()
        path = self.dirs.metrics_file(name, stage)
        record = read_json(path)
        if checkpoint_sha256 and (record.get("checkpoint") or {}).get("sha256") != checkpoint_sha256:
            raise SettingsError(f"{path.name} no longer records the model this cell saved (it was saved again "
                                f"since, in another kernel): nothing was added to it; run the cell that saves it again")
        record |= plain_numbers(extra)
        write_json(path, record)
        return record

    def figure(self, name: str) -> Path:
        """Where the figure ``name`` is written, once the folder is checked to be still this run's
        (figures are files of the run: one drawn into another run's folder would stand among its
        files with this run's caption)."""
        self.check_still_this_run()
        return self.dirs.figure(name)

    def check_still_this_run(self) -> None:
        """Before anything of the run is written (the Session's records and checkpoints; the labs'
        own files call it too): the folder may have been taken since this Session was made (a
        notebook left open while ``python -m labutils run`` started a run there), and what it
        writes would join the other run's under this one's id."""
        check_free(self.dirs.root)
        marker = self.dirs.metrics / "run.json"
        now = read_json(marker).get("run_id") if marker.is_file() else None
        if now != self.run_id:
            raise SettingsError(f"{self.dirs.root} now holds run {now}, not run {self.run_id} of this notebook's "
                                f"Session (another run started there since): nothing was written. Run this "
                                f"notebook again from its first cell to work in that run, or set OUT_DIR to another folder")

    def _outdate_later_notebooks(self, stage: str) -> None:
        """A stage written again, produced or not (a notebook re-run by hand), outdates the notebooks
        after the one that writes it: the pipeline's record no longer counts them finished, so ``--resume``
        runs them again instead of keeping a report made from the replaced model."""
        marker = self.dirs.metrics / "pipeline.json"
        if stage not in NOTEBOOK_OF_STAGE or not marker.is_file():
            return
        saved = read_json(marker)
        finished = [n for n in saved.get("finished", []) if n[:2] <= NOTEBOOK_OF_STAGE[stage]]
        if finished != saved.get("finished", []):
            write_json(marker, saved | {"finished": finished})

    def record_missing(self, name: str, stage: str, reason: str) -> dict:
        """Say in the metrics that ``name`` was not produced, and why (no made-up numbers). This run's
        same record, already there, is left as it is (``_outdate_later_notebooks`` only on a change)."""
        check_artifact(name, stage)
        self.check_still_this_run()
        path = self.dirs.metrics_file(name, stage)
        try:
            saved = read_json(path) if path.is_file() else None
        except ValueError:  # damaged: written again below
            saved = None
        if (isinstance(saved, dict) and saved.get("produced") is False and saved.get("reason") == reason
                and saved.get("model") == name and saved.get("stage") == stage
                and self.of_this_run(saved)):
            # The same record again (notebook 03's cells run from the top after a restart): writing
            # it would outdate notebooks 04-06, which read nothing it changed, and --resume ran them again.
            return saved
        record = {"model": name, "stage": stage, "run": self.info, "produced": False, "reason": reason}
        write_json(path, record)
        self._outdate_later_notebooks(stage)
        return record

    def record_missing_baseline(self, name: str, stage: str) -> dict:
        """``record_missing`` for a model whose baseline notebook 02 did not produce, with its reason;
        SettingsError, nothing written, where notebook 02 has not run in this run (``check_baselines_recorded``)."""
        self.check_baselines_recorded()
        before = self.metrics(name, "before_pruning")
        if before is not None and not self.of_this_run(before):  # its reason would be another run's
            reason = (f"{name}_before_pruning is left from run {(before.get('run') or {}).get('run_id')}, not "
                      f"this run ({self.run_id}): run notebook 02 of this run first")
        else:
            reason = (before or {}).get("reason", "no before_pruning checkpoint in this run; run notebook 02 first")
        return self.record_missing(name, stage, f"{BASELINE_MISSING}: {reason}")

    def check_baselines_recorded(self) -> None:
        """SettingsError unless notebook 02 of this run recorded a baseline of some model of MODELS
        (trained, or not produced and why): notebooks 03-05 run before 02 recorded every model as not
        produced and finished, as if that were the run's result (the command line refuses them)."""
        if not any(self.of_this_run(read_json_object(self.dirs.metrics_file(m, "before_pruning")))
                   for m in self.models):
            raise SettingsError(f"no baseline of this run ({self.run_id}) for MODELS ({', '.join(self.models)}) in "
                                f"{self.dirs.metrics}: run notebook 02 first")

    def load(self, name: str, stage: str) -> tuple[torch.nn.Module, dict]:
        """This run's checkpoint of ``name`` at ``stage``: CheckpointError for one its record does not
        name (replaced, copied from another run, or its save interrupted), whose numbers would be
        reported for other weights, and for one this run recorded as not produced (with its reason)."""
        path = self.dirs.checkpoint(name, stage)
        record = self.metrics(name, stage)
        if self.of_this_run(record) and record.get("produced") is False:
            # Before the file: "no checkpoint at ...; run the notebook that writes it first" sent a student
            # back to a notebook that records the same reason again (no pretrained ViT weights, say).
            raise CheckpointError(f"{name}_{stage}: this run ({self.run_id}) recorded it as not produced: "
                                  f"{record.get('reason')} (its record {self.dirs.metrics_file(name, stage).name})")
        again = f"run notebook {NOTEBOOK_OF_STAGE[stage]} of this run again" if stage in NOTEBOOK_OF_STAGE else \
            "run the notebook that writes it again"
        if not self.of_this_run(record) and not path.is_file() and name not in self.models:
            # checkpoint.py's "run the notebook that writes it first" sent the student back to a notebook
            # that had run, for a model outside its MODELS.
            raise FileNotFoundError(f"no {path.name} in this run: {self._not_in_models(name, stage)}")
        if self.of_this_run(record) and not path.is_file():
            # checkpoint.py's "run the notebook that writes it first" sent a student in notebook 03,
            # whose saved model was deleted, off to look for another notebook.
            raise FileNotFoundError(f"no checkpoint at {path}, though this run's record "
                                    f"{self.dirs.metrics_file(name, stage).name} names it (deleted?): {again}")
        model, ckpt = load_checkpoint(path, self.device, expect_model=name)
        written_by = (ckpt.get("meta") or {}).get("run_id")
        if not self.of_this_run(record) or not record.get("produced"):
            if record is None:
                said = "none"
            elif not self.of_this_run(record):
                said = f"run {(record.get('run') or {}).get('run_id')}'s"
            else:
                said = f"not produced: {record.get('reason')}"
            raise CheckpointError(f"{path} is not a checkpoint this run ({self.run_id}) recorded (its record "
                                  f"{self.dirs.metrics_file(name, stage).name}: {said}): {again}")
        if written_by != self.run_id:
            raise CheckpointError(f"{path} was written by run {written_by}, not this run ({self.run_id}): it was "
                                  f"copied from another run or profile; {again}")
        recorded_sha = (record.get("checkpoint") or {}).get("sha256")
        if recorded_sha and file_sha256(path) != recorded_sha:  # older records name no SHA-256
            raise CheckpointError(f"{path} is not the checkpoint {self.dirs.metrics_file(name, stage).name} records "
                                  f"(another SHA-256): replaced, or its save was interrupted; {again}")
        if stage == "before_pruning":  # the baseline this kernel prunes, whatever is trained after
            self._baselines[name] = recorded_sha
        return model, ckpt

    def metrics(self, name: str, stage: str) -> dict | None:
        path = self.dirs.metrics_file(name, stage)
        return read_json(path) if path.is_file() else None

    def recorded(self, stage: str, not_yet: str) -> dict[str, dict]:
        """This run's record of each model at ``stage``, read back from ``metrics/`` (what the
        notebook's producing cell returned), so the cells after it also work after a kernel
        restart. A model without one in this run (another run's file does not count) is recorded
        as not produced, ``not_yet`` saying which cell to run; one outside MODELS is a KeyError saying so."""
        records = Records(lambda name: f"no {name!r} record: {self._not_in_models(name, stage)}")
        for name in self.models:
            record = self.metrics(name, stage)
            if not self.of_this_run(record):
                record = {"model": name, "stage": stage, "produced": False, "reason": not_yet}
            records[name] = record
        return records

    def _not_in_models(self, name: str, stage: str) -> str:
        """Why this run has nothing of ``name``, a model outside MODELS, and what to do."""
        if name not in MODEL_NAMES:
            return f"{name!r} is not a course model; the course's models are {', '.join(MODEL_NAMES)}"
        if name in self._asked:  # narrowed out by _models_of_run (notebooks 03-05)
            return (f"{name} is in MODELS, but notebook 02 of this run left it out: add it to notebook 02's "
                    f"MODELS and run the notebooks from 02 again")
        notebook = f"notebook {NOTEBOOK_OF_STAGE[stage]}" if stage in NOTEBOOK_OF_STAGE else "the notebook"
        return (f"{name} is not in this run's MODELS ({', '.join(self.models)}): add it to MODELS and run "
                f"{notebook} again")

    def available(self, name: str, stage: str = "before_pruning") -> bool:
        """True when an earlier notebook produced ``name`` at ``stage`` in this run (another run's
        leftover files do not count: they would be pruned and recorded under this run's id)."""
        m = self.metrics(name, stage)
        return bool(m and m.get("produced") and self.of_this_run(m) and self.dirs.checkpoint(name, stage).is_file())

    def __repr__(self) -> str:
        return (f"Session(profile={self.name!r}, device={self.device}, data={self.data_description!r}, "
                f"out={shown_path(self.dirs.root)!r}, run_id={self.run_id!r}, seed={self.seed}"
                + (f", models={self.models!r})" if self._models_given else ")"))


class NotInModels(Explained, KeyError):
    """A model a dict by model name lacks, said in words (a KeyError's own text is the quoted key)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Records(dict):
    """``Session.recorded``'s records by model name: a model without one raises ``NotInModels`` with
    ``why(name)``, where a bare KeyError('cnn') left the student guessing (as notebook 03's ``Subjects``)."""

    def __init__(self, why):
        super().__init__()
        self._why = why

    def __missing__(self, name):
        raise NotInModels(self._why(name))


def check_models(models) -> list[str]:
    """``models`` as a list of course model names, or SettingsError saying what to write."""
    if isinstance(models, str) and all(m.strip() in MODEL_NAMES for m in models.split(",")):
        # papermill's -p MODELS cnn,vit passes one string: say how to pass a list
        names = [m.strip() for m in models.split(",")]
        raise SettingsError(f"MODELS = {models!r} is a string: use a list of course models, such as {names} "
                            f"(with papermill: -y \"MODELS: [{', '.join(names)}]\")")
    if models is None or (isinstance(models, str) and RUN_ID.fullmatch(models)):
        # An executed notebook from before RUN_ID was removed passes it here (RUN_ID or None).
        raise SettingsError(f"Session's sixth argument is MODELS, a list of course models, not {models!r}; a notebook "
                            f"that passes RUN_ID there is older than this labutils (RUN_ID is gone: a folder holds "
                            f"one run): write that line as Session(PROFILE, OUT_DIR, DATA_ROOT, DEVICE, SEED, MODELS)")
    if isinstance(models, str):  # "cnn" would iterate letters; papermill's -p passes '["cnn", "vit"]' as text
        raise SettingsError(f"MODELS = {models!r} is a string: use a list of course models, such as "
                            f"{list(MODEL_NAMES)} (with papermill: -y \"MODELS: [cnn, vit]\")")
    if not isinstance(models, (list, tuple)):
        raise SettingsError(f"MODELS = {models!r}: use a list of course models, such as {list(MODEL_NAMES)}")
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        problem = f"unknown {unknown}" if unknown else "it names no model"
        raise SettingsError(f"MODELS = {list(models)!r}: {problem}; use one or more of {list(MODEL_NAMES)}")
    return list(dict.fromkeys(models))


# What new_run_id makes: profile, UTC time to the second, six hex digits.
RUN_ID = re.compile(r"[a-z]+-\d{8}T\d{6}-[0-9a-f]{6}")


def check_artifact(name: str, stage: str) -> None:
    """ValueError unless ``name`` is a course model and ``stage`` a course stage: a misspelt one
    ('before_prunning') was written where no notebook reads it, and a path ('../x') outside the run."""
    try:
        check_model(name)
    except ValueError as err:
        raise ValueError(f"{err}: nothing was written") from None
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {list(STAGES)}: nothing was written")


def check_model(name: str) -> None:
    """A course model's name, or an error listing them (a bare KeyError 'resnet' said neither)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {list(MODEL_NAMES)}")


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working folder (a notebook's own folder in Jupyter and papermill),
    so an executed notebook's outputs name no folder of the machine that ran it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _numbers_only(metrics: dict) -> dict:
    """The scalar part of a metrics dict (histories and lists stay in the JSON file)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
