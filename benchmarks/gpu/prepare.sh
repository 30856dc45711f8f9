#!/usr/bin/env bash
# Here, on a machine with PyPI, before a GPU session: fill the git-ignored .gpu/ folder that the
# GPU machine gets as its one carried path.
#
#   bash benchmarks/gpu/prepare.sh PACK_DIR
#
# PACK_DIR holds the course's offline CIFAR-10 pack (cifar10_q75.npz) and its decoder
# (make_cifar10.py); both are copied into .gpu/. Then the wheels the GPU machine lacks are
# downloaded into .gpu/wheels (Python 3.12, x86-64: papermill, nbclient, nbformat, ipykernel,
# jsonschema, ipywidgets and what they need, plus airbench built from its sdist), leaving out what
# its image already holds (torch, torchvision, timm, numpy, matplotlib, requests, ...).
# .gpu/COMMIT names the commit the run will record and .gpu/MANIFEST its files' hashes: the working
# tree must be clean, with no untracked code file either, so that commit is the code that runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=${1:?usage: bash benchmarks/gpu/prepare.sh PACK_DIR (the folder with cifar10_q75.npz and make_cifar10.py)}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "error: the working tree has uncommitted changes: commit them first, so the run names the code it ran" >&2
    exit 1
fi
# The device tool carries untracked files git does not ignore, and tree_commit.sh refuses a code file
# the commit lacks under labutils/, benchmarks/ or notebooks/ (the same rule as here): found there,
# it cost the machine's start and the call. An ignored file is not carried, so not refused.
# quotePath off: a name such as 08_élagage.ipynb came quoted ("...\303\251..."), and the filter missed it.
untracked=$(git -c core.quotePath=false ls-files --others --exclude-standard -- labutils benchmarks notebooks |
    grep -E '\.(py|sh|ipynb)$' | grep -vE '(^|/)(__pycache__|\.ipynb_checkpoints)/' || true)
if [ -n "$untracked" ]; then
    echo "error: untracked code files, which the device tool would carry and run_on_gpu.sh refuse as not the" \
         "commit: $(echo "$untracked" | head -10 | tr '\n' ' ')- commit, delete or git-ignore them, then run prepare.sh again" >&2
    exit 1
fi
for file in cifar10_q75.npz make_cifar10.py; do
    if [ ! -f "$pack/$file" ]; then
        echo "error: $pack has no $file: PACK_DIR must hold cifar10_q75.npz and make_cifar10.py (the course's" \
             "offline CIFAR-10 pack); a cifar-10-batches-py folder is not it" >&2
        exit 1
    fi
done
mkdir -p .gpu/wheels
cp -f "$pack/cifar10_q75.npz" "$pack/make_cifar10.py" .gpu/  # -f: copies of read-only files are read-only
git rev-parse --short=12 HEAD > .gpu/COMMIT
# Every tracked file's hash: run_on_gpu.sh checks the tree the device tool lays there against it, so a
# commit or an edit made after this script cannot run under this commit's name.
git ls-files -z | xargs -0 sha256sum > .gpu/MANIFEST

# In the GPU machine's image already (its package list, 2026-11): not carried.
present=" aiohappyeyeballs aiohttp aiosignal attrs certifi charset_normalizer click filelock frozenlist fsspec "
present+=" idna jinja2 markupsafe matplotlib multidict numpy packaging pillow pip propcache psutil pygments "
present+=" python_dateutil pyyaml requests setuptools six timm torch torchvision tqdm typing_extensions urllib3 "
present+=" wheel yarl "
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# ipywidgets: timm imports tqdm.auto, which without it warns "IProgress not found" on stderr in
# every kernel, and that warning would be committed in the executed notebooks.
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp" papermill nbclient nbformat ipykernel jsonschema ipywidgets
rm -f .gpu/wheels/*.whl
for wheel in "$tmp"/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')
    case "$present" in *" $name "*) echo "in the image, not carried: $(basename "$wheel")" ;;
                       *) cp "$wheel" .gpu/wheels/ ;; esac
done
python3 -m pip wheel -q --no-deps -w .gpu/wheels airbench==0.1.8  # an sdist only: built here (pure Python)
echo "prepared .gpu/ for commit $(cat .gpu/COMMIT): $(ls .gpu/wheels | wc -l) wheels, $(du -sh .gpu | cut -f1) in all"
