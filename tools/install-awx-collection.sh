#!/usr/bin/env bash
# Put the awx.awx collection (the AWX/Tower modules playbooks/controller_setup.yml uses) into the
# collections directory given as $1, from the `ansible` package on PyPI (which carries it), without
# installing that whole package: its wheel is downloaded with pip and only awx/awx is unpacked.
# Quiet and quick when it is already there.
set -euo pipefail

readonly ANSIBLE_PACKAGE_VERSION=12.3.0
readonly dest=${1:?usage: install-awx-collection.sh COLLECTIONS_DIR}
readonly python=${PYTHON:-python3}

[[ -f $dest/ansible_collections/awx/awx/MANIFEST.json ]] && exit 0

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip download -q --no-deps --only-binary :all: -d "$wheels" "ansible==$ANSIBLE_PACKAGE_VERSION"
"$python" - "$wheels" "$dest" <<'PY'
import pathlib, sys, zipfile
wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
prefix = "ansible_collections/awx/awx/"
(wheel,) = wheels.glob("ansible-*.whl")
with zipfile.ZipFile(wheel) as archive:
    members = [name for name in archive.namelist() if name.startswith(prefix) and not name.endswith("/")]
    if not members:
        sys.exit("install-awx-collection: %s carries no awx.awx" % wheel.name)
    for name in members:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(name))
PY
