"""``python -m labutils check`` and ``results-table`` on tiny hand-ins made by hand: a ViT of one
head per block, its report and sidecar, in seconds (test_report.py checks a whole smoke run)."""
import json

import pytest

from labutils import results as RT
from labutils.artifacts import write_json
from labutils.checkpoint import save_checkpoint
from labutils.cli import main
from labutils.course import MODEL_NAMES, NOT_PRETRAINED, REPORT_ENTRY_KEYS
from labutils.labs import report as R
from labutils.models import UNTRAINED_NOTE, build_model
from labutils.submission import minimums

RUN = "smoke-20261207T000000-abcdef"
UNTRAINED = f"the file vit_rand.pth, sha256 bf7a80b9c0ffee00: {UNTRAINED_NOTE}"
SYNTHETIC = {"profile": "smoke", "reduced": True, "n_test": 400, "data": "synthetic CIFAR-shaped data",
             "data_root": "data-synthetic"}


def empty_report() -> dict:
    return {"initial_accuracies": {f"{m}_before_pruning": None for m in MODEL_NAMES},
            **{section: {m: dict.fromkeys(REPORT_ENTRY_KEYS) for m in MODEL_NAMES}
               for section in ("unstructured_pruning", "structured_pruning")}}


def vit_handin(folder, reported=0.5, recorded=0.5, meta=None, initial_weights=None, pruned=False):
    """A hand-in of ``vit`` alone: its baseline (``pruned``: and a structured copy removing nothing),
    report.json saying ``reported`` where the checkpoints recorded ``recorded``, and the sidecar."""
    model = build_model("vit_tiny_patch16_224", num_classes=10, img_size=32, heads=[1] * 12, mlp_hidden=[4] * 12)
    meta = {"run_id": RUN, **(SYNTHETIC if meta is None else meta)}
    metrics = {"accuracy": recorded} | ({"initial_weights": initial_weights} if initial_weights else {})
    save_checkpoint(folder / "models_saved" / "vit_before_pruning.pth", model, metrics, meta)
    report = empty_report()
    report["initial_accuracies"]["vit_before_pruning"] = reported
    if pruned:  # pruning records no initial weights of its own
        save_checkpoint(folder / "models_saved" / "vit_after_structured_pruning.pth", model, {"accuracy": recorded}, meta)
        report["structured_pruning"]["vit"] = {"original_accuracy": reported, "pruned_accuracy": reported,
                                               "pruning_percentage": 0.0}
    write_json(folder / "report.json", report)
    from test_results import sidecar_entries  # the sidecar's numbers are report.json's, as notebook 05 writes them

    write_json(folder / "report_details.json", {"run": meta, "entries": sidecar_entries(report), "timings": {}})
    return folder


def write_up(folder):
    """Executed notebooks 01-05 that show run ``RUN``, as check reads them (one code cell each)."""
    from labutils.course import NOTEBOOKS

    session = {"cell_type": "code", "execution_count": 1, "source": "s = Session()", "metadata": {},
               "outputs": [{"output_type": "stream", "name": "stdout", "text": f"Session(run_id='{RUN}')"}]}
    for number in ("01", "02", "03", "04", "05"):
        write_json(folder / "notebooks" / NOTEBOOKS[number], {"cells": [session], "nbformat": 4})
    return folder


def check(folder, capsys, *options) -> tuple[int, str, list[str]]:
    """(exit status, output, FAIL lines) of ``check`` on ``folder``."""
    rc = main(["check", str(folder), *options])
    out = capsys.readouterr().out
    return rc, out, [line for line in out.splitlines() if line.startswith("FAIL")]


def test_a_vit_never_pretrained_fails_at_every_stage_and_the_report_says_so(tmp_path, capsys):
    """A vit trained from a file of timm's random initialisation was graded as the pretrained ViT:
    no check read its initial_weights, and the sidecar dropped them (review)."""
    assert UNTRAINED_NOTE.startswith(NOT_PRETRAINED)  # the marker check looks for is the one notebook 02 writes
    rc, out, fails = check(vit_handin(tmp_path, initial_weights=UNTRAINED, pruned=True), capsys)
    assert rc == 1
    for stage in ("before_pruning", "after_structured_pruning"):  # the pruned one: its baseline's weights
        assert (f"FAIL  vit_{stage}: its weights were NOT pretrained (the file vit_rand.pth, sha256 "
                f"bf7a80b9c0ffee00): not the course's pretrained ViT-Tiny; train it from the pretrained weights "
                f"(VIT_WEIGHTS, or --vit-weights)") in fails
    rc, out, fails = check(vit_handin(tmp_path, initial_weights="the file vit.pth, sha256 0123"), capsys)
    assert not [line for line in fails if NOT_PRETRAINED in line]

    records = {("vit", "before_pruning"): {"produced": True, "accuracy": 0.5, "initial_weights": UNTRAINED}}
    assert R.build_details(records, {})["entries"]["vit_before_pruning"]["initial_weights"] == UNTRAINED
    report = empty_report()
    report["initial_accuracies"]["vit_before_pruning"] = 0.95
    R.print_verdict(report, reduced=False, records=records)
    out = capsys.readouterr().out
    assert "vit: met (NOT pretrained)" in out and "vit: its weights were NOT pretrained (the file vit_rand.pth" in out
    R.print_report(report, records)
    assert "vit: its weights were NOT pretrained" in capsys.readouterr().out


def test_a_damaged_sidecar_is_named_and_the_minimums_still_printed(tmp_path, capsys):
    """"entries": [] and "timings": null raised AttributeError in check and results-table (review)."""
    handin = vit_handin(tmp_path)
    details = json.loads((handin / "report_details.json").read_text())
    for entries in ([], {"vit_before_pruning": "trained"}):
        write_json(handin / "report_details.json", details | {"entries": entries})
        rc, out, fails = check(handin, capsys)
        assert rc == 1 and "the course's minimums, from report.json:" in out
        assert [f for f in fails if f.startswith("FAIL  report_details.json is damaged: its \"entries\"")]

    from test_results import make_details, write_run  # a full run's report and sidecar
    folder = tmp_path / "run"
    folder.mkdir()
    for damage, key in (({"entries": []}, '"entries" is list'), ({"timings": None}, '"timings" is NoneType'),
                        ({"entries": {"cnn_before_pruning": "x"}}, '"entries"/"cnn_before_pruning" is str')):
        write_run(folder, details=make_details() | damage)
        assert main(["results-table", "--root", str(folder)]) == 1
        assert f"report_details.json is damaged: its {key}, not an object" in capsys.readouterr().err
        assert RT.models_left_out(make_details() | damage) == []
        assert RT.run_line(make_details() | damage).startswith("Run `full-")


def test_check_never_rounds_an_accuracy_up_to_a_minimum_or_a_difference_away(tmp_path, capsys):
    """0.89996 read "90.00% (minimum 90%): NOT met"; 0.53501 against 0.535 read "report.json says
    53.50%, the checkpoint recorded 53.50%" on a FAIL line (review)."""
    report = empty_report()
    report["initial_accuracies"]["cnn_before_pruning"] = 0.89996
    assert "  cnn          dense         89.99% (minimum 90%): NOT met" in minimums(report)
    rc, out, fails = check(vit_handin(tmp_path, reported=0.53501, recorded=0.535), capsys)
    assert ("FAIL  vit_before_pruning: report.json says 53.50% (0.53501), the checkpoint recorded 53.50% (0.535)"
            in fails)
    rc, out, fails = check(vit_handin(tmp_path, reported=0.5, recorded=0.5), capsys)
    assert "ok    vit_before_pruning: report.json says 50.00%, the checkpoint recorded 50.00%" in out


def test_a_full_run_scored_on_part_of_the_test_split_is_not_the_courses(tmp_path, capsys):
    """A run of profile full that recorded n_test 400 was "ok ... (profile full)" in check and the
    README's reference in results-table (review)."""
    meta = {"profile": "full", "reduced": False, "n_test": 400, "data": "CIFAR-10", "data_root": "data"}
    rc, out, fails = check(vit_handin(tmp_path, meta=meta), capsys)
    assert (f"ok    every checkpoint loads and comes from run {RUN} (profile full, scored on 400 of the test images, "
            f"not all 10,000: its numbers are not the course's results)") in out
    meta["n_test"] = None
    assert "(profile full)" in check(vit_handin(tmp_path, meta=meta), capsys)[1]

    from test_results import make_details, write_run
    details = make_details()
    details["run"]["n_test"] = 400
    write_run(tmp_path, details=details)
    with pytest.raises(RT.ResultsError, match="was scored on 400 of the test images, not all 10,000 .*must come "
                                              "from a full run"):
        RT.results_section(tmp_path)
    assert "A reduced run (profile full, scored on 400 of the test images" in RT.results_section(tmp_path, False)
    details["run"].update(profile="cpu", reduced=True, n_test=5000)  # a reduced run's subset goes without saying
    write_run(tmp_path, details=details)
    assert "A reduced run (profile cpu): its numbers" in RT.results_section(tmp_path, False)


def test_an_entry_with_numbers_and_nulls_is_called_incomplete_not_empty():
    report = empty_report()
    report["unstructured_pruning"]["cnn"].update(pruned_accuracy=0.9, pruning_percentage=80.0)
    assert "  cnn          unstructured incomplete entry (original_accuracy empty): NOT met" in minimums(report)
    assert "  cnn          structured   not produced (report.json holds no numbers): NOT met" in minimums(report)


def test_measuring_without_the_runs_synthetic_data_says_where_it_is_once(tmp_path, capsys):
    """A smoke hand-in without its data-synthetic/ told nine times to download CIFAR-10; a
    --data-root that does not exist was found checkpoint by checkpoint (review)."""
    handin = vit_handin(tmp_path, pruned=True)
    write_json(handin / "metrics" / "run.json", {"run_id": RUN, "profile": "smoke", "seed": 0})
    rc, out, fails = check(handin, capsys, "--measure")
    measured = [line for line in fails if "measure" in line]
    assert measured == ["FAIL  could not measure the accuracies of vit_before_pruning, vit_after_structured_pruning: "
                        f"its run was on synthetic data, whose test images are not in {handin / 'data-synthetic'}: "
                        "pass --data-root "
                        "with the run's synthetic data folder (a smoke run writes it as data-synthetic/ in its folder; "
                        "python -m labutils run --profile smoke --notebooks 01 --out ANOTHER_FOLDER writes the same "
                        "images there)"]
    assert "download" not in out
    assert main(["check", str(handin), "--measure", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "--data-root" in capsys.readouterr().err
    # Without --measure it is not read: a script that always passes it still checks the rest, told so.
    assert main(["check", str(handin), "--data-root", str(tmp_path / "nowhere")]) == 1
    assert "note: --data-root is read only with --measure; it is not used" in capsys.readouterr().err


def test_the_format_line_claims_only_what_the_schema_checks_and_a_percent_says_write_a_fraction(tmp_path, capsys):
    """"accuracies as fractions" was claimed of 0.007 for 70%; 90.4 was refused as "greater than the
    maximum of 1", without saying what to write (review)."""
    handin = vit_handin(tmp_path)
    out = check(handin, capsys)[1]
    assert ("ok    report.json has exactly the course's keys, and values in range (accuracies 0 to 1, percentages "
            "0 to 100)") in out
    report = empty_report()
    report["initial_accuracies"]["cnn_before_pruning"] = 90.4
    write_json(handin / "report.json", report)
    assert ("FAIL  report.json breaks the course's format at initial_accuracies/cnn_before_pruning: 90.4 is greater "
            "than the maximum of 1: accuracies are fractions (write 0.904)") in check(handin, capsys)[2]
    report["initial_accuracies"]["cnn_before_pruning"] = 89.99996  # never rounded up to the 90% minimum
    write_json(handin / "report.json", report)
    assert "(write 0.8999996)" in check(handin, capsys)[2][0]


def test_the_figure_draws_a_dense_model_without_its_pruned_one_and_only_the_runs_minimums():
    """With the pruned entries empty the figure drew minimum lines only under "dense (0%) to pruned";
    a model outside the run still got its minimum line (review)."""
    report = empty_report()
    report["initial_accuracies"].update(cnn_before_pruning=0.91, vit_scratch_before_pruning=0.86)
    fig = R.plot_accuracy_vs_sparsity(report, models=["cnn", "vit_scratch"])
    for ax in fig.axes:
        points = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines if line.get_label()[0] != "_"]
        assert points == [([0], [91.0]), ([], []), ([0], [86.0])]  # vit: not in this run, no point
        minimums = {round(line.get_ydata()[0], 6) for line in ax.lines  # axhline: unlabelled, dashed
                    if line.get_label().startswith("_") and line.get_linestyle() == "--"}
        assert minimums == {85.0, 80.0}  # cnn's and vit_scratch's, not vit's 88
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["cnn: dense 91.00%, pruned not produced", "vit: not in this run",
                      "vit_scratch: dense 86.00%, pruned not produced"]


def test_a_baseline_that_does_not_load_is_failed_once_not_called_retrained(tmp_path, capsys):
    """A corrupt, empty or swapped baseline also failed its pruned models as "pruned from another file
    ...: the baseline was trained or replaced again since", which its SHA-256 differed for only
    because the file is broken (review)."""
    from labutils.artifacts import file_sha256

    handin = write_up(vit_handin(tmp_path, pruned=True))
    baseline = handin / "models_saved" / "vit_before_pruning.pth"
    record = handin / "metrics" / "vit_after_structured_pruning.json"
    write_json(record, {"baseline_sha256": file_sha256(baseline)})  # as notebook 04 records it
    for broken in (b"hello", b""):
        baseline.write_bytes(broken)
        rc, out, fails = check(handin, capsys)
        assert rc == 1 and fails[0].startswith("FAIL  vit_before_pruning.pth does not load: CheckpointError:")
        assert fails[1:] == ["FAIL  vit_after_structured_pruning: its removed channels cannot be counted: "
                             "vit_before_pruning.pth does not load"]
    # A baseline that loads but is another file than the one pruned: still told apart by its SHA-256.
    vit_handin(tmp_path, pruned=True)
    write_json(record, {"baseline_sha256": "0" * 64})
    fails = check(handin, capsys)[2]
    assert fails == ["FAIL  vit_after_structured_pruning: was pruned from another file than "
                     "models_saved/vit_before_pruning.pth (its record metrics/vit_after_structured_pruning.json names "
                     f"a baseline of SHA-256 000000000000..., the file's is {file_sha256(baseline)[:12]}...): the "
                     "baseline was trained or replaced again since"]


def test_a_damaged_value_is_a_fail_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    """baseline_sha256 12345, a recipe "oops", metrics.accuracy '0.5375' or original_accuracy 'x' crashed check
    with a traceback, no result printed (review)."""
    from labutils.checkpoint import load_checkpoint
    from test_results import sidecar_entries

    handin = write_up(vit_handin(tmp_path, pruned=True))
    saved = handin / "models_saved"
    # the same dense model as an unstructured entry too, 0% removed: a record of it can then be damaged
    (saved / "vit_after_unstructured_pruning.pth").write_bytes((saved / "vit_after_structured_pruning.pth").read_bytes())
    report = json.loads((handin / "report.json").read_text())
    report["unstructured_pruning"]["vit"] = report["structured_pruning"]["vit"]
    write_json(handin / "report.json", report)
    write_json(handin / "report_details.json", {"run": {"run_id": RUN, **SYNTHETIC}, "entries": sidecar_entries(report),
                                                "timings": {}})
    assert check(handin, capsys)[0] == 0
    write_json(handin / "metrics" / "vit_after_structured_pruning.json", {"baseline_sha256": 12345})
    write_json(handin / "metrics" / "vit_after_unstructured_pruning.json", {"recipe": "oops"})
    model, ckpt = load_checkpoint(saved / "vit_after_structured_pruning.pth")
    save_checkpoint(saved / "vit_after_structured_pruning.pth", model, ckpt["metrics"] | {"original_accuracy": "x"},
                    ckpt["meta"])
    save_checkpoint(saved / "vit_before_pruning.pth", model, {"accuracy": "0.5375"}, ckpt["meta"])
    rc, out, fails = check(handin, capsys)
    edited = "the file was edited or damaged (re-run the notebook that writes it)"
    assert rc == 1 and fails == [
        f"FAIL  vit_before_pruning: models_saved/vit_before_pruning.pth's metrics.accuracy is '0.5375' (str), not a "
        f"number: {edited}",
        f"FAIL  vit_after_unstructured_pruning: its pruned weights cannot be counted: "
        f"metrics/vit_after_unstructured_pruning.json's recipe is 'oops' (str), not an object: {edited}",
        f"FAIL  vit_after_structured_pruning: models_saved/vit_after_structured_pruning.pth's "
        f"metrics.original_accuracy is 'x' (str), not a number: {edited}"]
    save_checkpoint(saved / "vit_after_structured_pruning.pth", model, ckpt["metrics"], ckpt["meta"])
    assert check(handin, capsys)[2][-1] == (
        f"FAIL  vit_after_structured_pruning: metrics/vit_after_structured_pruning.json's baseline_sha256 is 12345 "
        f"(int), not a SHA-256 (a string): {edited}")

    # What no check foresaw fails its checkpoint alone: the other lines and the minimums still print.
    def unforeseen(*args, **kwargs):
        raise KeyError("heads")

    for record in (handin / "metrics").iterdir():
        record.unlink()
    monkeypatch.setattr("labutils.prune.structured.reported_share_removed", unforeseen)
    rc, out, fails = check(handin, capsys)
    assert rc == 1 and ("FAIL  vit_after_structured_pruning: its checks stopped at an unexpected KeyError: 'heads' "
                        "(models_saved/vit_after_structured_pruning.pth or its records in metrics/ were edited or "
                        "damaged)") in fails
    assert len(fails) == 2 and "ok    vit_after_unstructured_pruning: report.json says 0.00% removed" in out
    assert ("vit          structured    50.00% at 0.00% removed (minimum 88% at 25%): NOT met (unverified: a check "
            "above failed)") in out


def test_a_checkpoint_changed_after_the_run_is_not_the_file_its_records_name(tmp_path, capsys):
    """Every weight negated and the file saved again, metrics and meta kept, passed check (exit 0) though
    report_details.json and metrics/ hold the file's SHA-256: only --measure caught it (review)."""
    from labutils.artifacts import file_sha256
    from labutils.checkpoint import load_checkpoint

    handin = write_up(vit_handin(tmp_path))
    path = handin / "models_saved" / "vit_before_pruning.pth"
    details = json.loads((handin / "report_details.json").read_text())
    details["entries"]["vit_before_pruning"]["checkpoint"] = {"sha256": file_sha256(path)}  # as notebook 05 writes it
    write_json(handin / "report_details.json", details)
    write_json(handin / "metrics" / "vit_before_pruning.json", {"checkpoint": {"sha256": file_sha256(path)}})
    assert check(handin, capsys)[0] == 0
    model, ckpt = load_checkpoint(path)
    for p in model.parameters():
        p.data.neg_()
    save_checkpoint(path, model, ckpt["metrics"], ckpt["meta"])
    rc, out, fails = check(handin, capsys)
    assert rc == 1 and fails == [
        f"FAIL  vit_before_pruning: not the file run {RUN} wrote (its SHA-256 {file_sha256(path)[:12]}... differs "
        f"from report_details.json / metrics/vit_before_pruning.json): it was changed since; hand in the run's own file"]
    assert "NOT met (unverified: a check above failed)" in out
    # Saved again by its own notebook after 05 (re-run to experiment): metrics/ names the file, the
    # report is older. It was told to "hand in the run's own file", which it is (review).
    write_json(handin / "metrics" / "vit_before_pruning.json", {"checkpoint": {"sha256": file_sha256(path)}})
    assert check(handin, capsys)[2] == [
        f"FAIL  vit_before_pruning: saved again since report.json was written (its SHA-256 {file_sha256(path)[:12]}... "
        f"is the one metrics/vit_before_pruning.json records, not report_details.json's: notebook 02 ran again "
        f"after 05): run notebook 05 again"]
    # An older labutils recorded no SHA-256: nothing to compare, nothing failed.
    write_json(handin / "metrics" / "vit_before_pruning.json", {"checkpoint": {"path": "models_saved/x.pth"}})
    del details["entries"]["vit_before_pruning"]["checkpoint"]
    write_json(handin / "report_details.json", details)
    assert check(handin, capsys)[0] == 0


def test_a_sidecar_whose_numbers_are_not_the_reports_fails_as_results_table_refuses_it(tmp_path, capsys):
    """A sidecar entry edited to 0.9 beside report.json's 0.5 passed check ("0 failed", status 0), then
    results-table refused the same hand-in; once failed, the entry still read "met" without "(unverified)"
    (review)."""
    handin = write_up(vit_handin(tmp_path))
    assert check(handin, capsys)[0] == 0
    details = json.loads((handin / "report_details.json").read_text())
    details["entries"]["vit_before_pruning"]["accuracy"] = 0.9
    write_json(handin / "report_details.json", details)
    rc, out, fails = check(handin, capsys)
    assert rc == 1 and fails == [
        f"FAIL  {handin / 'report.json'}: initial_accuracies/vit_before_pruning is 0.5 in report.json but 0.9 in "
        "report_details.json: report.json and report_details.json are from different runs (or one was edited): hand "
        "in both files of one run (notebook 05 writes them together)"]
    # The entry the failure names is unverified, as the README promises, though report.json's number is the
    # checkpoint's: it read "met" beside a failed check (review); the entries it does not name are not doubted.
    assert "ok    vit_before_pruning: report.json says 50.00%" in out
    assert "vit          dense         50.00% (minimum 92%): NOT met (unverified: a check above failed)" in out
    assert out.count("unverified") == 1
    from labutils.submission import EVERY_ENTRY, _entry_named

    assert _entry_named(": unstructured_pruning/vit/pruning_percentage is 1 ") == ("vit", "after_unstructured_pruning")
    assert _entry_named(": structured_pruning/vit_scratch/x is 1 ") == ("vit_scratch", "after_structured_pruning")
    assert _entry_named("names no entry") == EVERY_ENTRY
    assert main(["results-table", "--root", str(handin)]) == 1
    assert "is 0.5 in report.json but 0.9 in report_details.json" in capsys.readouterr().err


def test_a_report_json_that_is_a_folder_is_not_called_missing(tmp_path, capsys):
    handin = vit_handin(tmp_path)
    (handin / "report.json").unlink()
    assert check(handin, capsys)[2] == ["FAIL  report.json is missing: notebook 05 writes it"]
    (handin / "report.json").mkdir()
    assert check(handin, capsys)[2] == ["FAIL  report.json is not a file: notebook 05 writes it"]
    (handin / "report.json").rmdir()
    (handin / "report.json").write_text('{"initial_accuracies": ')  # it said "not valid JSON (...not valid JSON (...)...)"
    assert check(handin, capsys)[2] == ["FAIL  report.json is not valid JSON (Expecting value: line 1 column 24 "
                                        "(char 23)): notebook 05 writes it"]


def test_minimums_not_met_leave_the_exit_status_at_0_as_the_help_says(tmp_path, capsys):
    """The help read "Then the course's minimums. Exit status 1 when a check fails.", as if a
    minimum not met failed the check (review)."""
    rc, out, fails = check(write_up(vit_handin(tmp_path, reported=0.5, recorded=0.5)), capsys)
    assert rc == 0 and not fails and "vit          dense         50.00% (minimum 92%): NOT met" in out
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "a minimum not met (a model not produced, an accuracy too low) does not change it" in " ".join(
        capsys.readouterr().out.split())
