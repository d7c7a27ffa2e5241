"""Run a module file as Ansible runs it (one process, args in a JSON file) and read its result."""

import json
import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_module(name, args, tmp_path):
    """(stdout + stderr, the parsed result) of plugins/modules/<name>.py run with `args`."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".build" / "collections"))
    completed = subprocess.run(
        [sys.executable, str(REPO / "plugins" / "modules" / ("%s.py" % name)), str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return completed.stdout + completed.stderr, json.loads(completed.stdout)
