"""The code a run records as its identity where git cannot say (a downloaded ZIP, a Colab upload):
the same code the same name, an edit another, so --resume never continues a run of other code."""
import shutil

from labutils.artifacts import NO_GIT, REPO_ROOT, git_commit


def _copy_without_git(root):
    shutil.copytree(REPO_ROOT / "labutils", root / "labutils", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_copy_without_git_names_its_code_by_its_files(tmp_path, monkeypatch):
    """Without git metadata the code was None: labutils/profiles.py edited (lr 0.2 -> 0.9) and
    --resume accepted the run "made with commit None"."""
    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never the git repository of a folder above
    copy = _copy_without_git(tmp_path / "zip")
    code = git_commit.__wrapped__(copy)  # not the cached value of this checkout
    assert code.startswith(NO_GIT + ".") and len(code) == len(NO_GIT) + 13
    assert git_commit.__wrapped__(_copy_without_git(tmp_path / "another")) == code  # the same code elsewhere
    checkpoint = copy / "labutils" / ".ipynb_checkpoints" / "profiles-checkpoint.py"
    checkpoint.parent.mkdir()
    checkpoint.write_text("an older copy JupyterLab keeps")
    assert git_commit.__wrapped__(copy) == code
    profiles = copy / "labutils" / "profiles.py"
    profiles.write_text(profiles.read_text().replace('"lr": 0.2', '"lr": 0.9', 1))
    edited = git_commit.__wrapped__(copy)
    assert edited.startswith(NO_GIT + ".") and edited != code


def test_a_copy_unpacked_inside_another_repository_is_named_by_its_files(tmp_path, monkeypatch):
    """A ZIP unpacked inside a student's own repository, which does not track it, took that
    repository's commit as its code: an edit to profiles.py kept the name, and --resume went on."""
    import subprocess

    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outer = tmp_path / "coursework"
    outer.mkdir()
    git = ["git", "-c", "user.name=s", "-c", "user.email=s@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=outer, check=True)
    (outer / "notes.md").write_text("mine")
    subprocess.run([*git, "add", "notes.md"], cwd=outer, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "notes"], cwd=outer, check=True)
    copy = _copy_without_git(outer / "workbook")
    code = git_commit.__wrapped__(copy)
    assert code.startswith(NO_GIT + ".")
    profiles = copy / "labutils" / "profiles.py"
    profiles.write_text(profiles.read_text().replace('"lr": 0.2', '"lr": 0.9', 1))
    assert git_commit.__wrapped__(copy) not in (code, None)


def test_without_a_git_program_the_code_is_named_by_its_files_and_the_variable_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    copy = _copy_without_git(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    named = git_commit.__wrapped__(copy)
    monkeypatch.setenv("PATH", "")  # no git program
    assert git_commit.__wrapped__(copy) == named
    monkeypatch.setenv("LABUTILS_GIT_COMMIT", "9ea14151ae9f")
    assert git_commit.__wrapped__(copy) == "9ea14151ae9f"


def test_a_refused_resume_without_git_says_to_undo_the_edits_not_to_check_out_a_commit():
    from labutils import pipeline

    said = pipeline._option("git_commit", "no-git.627a95ef92e2")
    assert "fingerprint 627a95ef92e2" in said and "commit" not in said
