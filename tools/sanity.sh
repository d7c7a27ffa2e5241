#!/usr/bin/env bash
# Run `ansible-test sanity` for penguinmails.dbops, without Docker.
#
# ansible-test only works from a directory named .../ansible_collections/<ns>/<name>
# (it resolves symlinks), so the checkout's files -- tracked plus untracked ones
# that .gitignore does not exclude -- are copied to
# .build/sanity/ansible_collections/penguinmails/dbops and tested there, in a
# git repository of its own.
#
# Sanity tests run in per-test virtual environments that ansible-test bootstraps
# with a get-pip script downloaded from a host many build networks cannot reach;
# tools/sanity_get_pip.py provides that script from the local pip instead.
# The test requirements themselves come from the package index (PyPI).
#
# Usage: tools/sanity.sh [extra ansible-test sanity options, e.g. --test pylint]
# Environment: VENV (default .venv), SANITY_PYTHON (default 3.11).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
venv=${VENV:-.venv}
python_version=${SANITY_PYTHON:-3.11}
stage=$repo/.build/sanity/ansible_collections/penguinmails/dbops

# ansible-test sets up its own collection path and configuration; settings meant
# for running from the checkout (see the Makefile) would point it back here.
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS PYTHONPATH

existing_files() {
    local file
    while IFS= read -r -d '' file; do
        if [[ -e $file || -L $file ]]; then
            printf '%s\0' "$file"
        fi
    done
}

# ansible-test skips its shellcheck test, with only a warning, when the program
# is missing; a skipped test is not a passed one.
if ! command -v shellcheck >/dev/null; then
    echo "sanity: shellcheck is required (tools/install-system-packages.sh installs it)" >&2
    exit 1
fi

rm -rf "$stage"
mkdir -p "$stage"
# safe.directory: CI may run as root in a clone another user owns.
git -c safe.directory="$repo" ls-files -z --cached --others --exclude-standard \
    | existing_files \
    | tar --null --files-from=- --create --file=- \
    | tar --extract --file=- --directory="$stage"
# ansible-test lists content with git from the nearest .git upwards; without its
# own repository the copy would be seen through the checkout, where .build is ignored.
git -C "$stage" init --quiet

"$repo/$venv/bin/python" tools/sanity_get_pip.py

cd "$stage"
exec "$repo/$venv/bin/ansible-test" sanity --color no --python "$python_version" --local "$@"
