#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_evidence
short_description: Write an incident's evidence bundle with a SHA-256 manifest, or verify bundles
version_added: 0.3.0
description:
  - With O(state=present), writes O(files) into O(dir) (created mode 0700; files mode 0600, text as
    given, anything else as JSON) and C(MANIFEST.sha256), one C(<sha256>  <name>) line per file, the
    format C(sha256sum -c) reads. Returns the manifest's own SHA-256, which the audit trail records (in
    RV(actions)).
  - A bundle is a record of what was seen, like the incident's timeline, and never counts as a change to
    the fleet; the task reports C(changed=false). Give each run its own O(dir) so that no evidence is
    ever overwritten.
  - With O(state=verified), checks every bundle at or below O(dir) (a directory holding
    C(MANIFEST.sha256)) - every listed file present with its hash, no file missing from the manifest,
    modes 0700 and 0600 - and fails naming each problem. O(manifest_sha256) also pins the manifest.
  - Check mode computes the hashes and writes nothing. Runs on the controller.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  dir:
    description: The bundle's directory (O(state=present)), or where to look for bundles (O(state=verified)).
    type: path
    required: true
  files:
    description: File name to content. Names are letters, digits, C(_), C(.) and C(-), no leading dot.
    type: dict
    default: {}
  state:
    description: V(present) writes the bundle; V(verified) verifies bundles.
    type: str
    default: present
    choices: [present, verified]
  manifest_sha256:
    description: With O(state=verified), the SHA-256 the audit trail recorded for the manifest of O(dir).
    type: str
attributes:
  check_mode:
    support: full
    description: Computes the hashes; writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare.
"""

EXAMPLES = r"""
- name: Keep the snapshots as evidence
  penguinmails.dbops.dbops_evidence:
    dir: "{{ incident_dir }}/{{ incident_current_id }}/evidence/run-1"
    files:
      sessions.json: "{{ security_locked.results | map(attribute='sessions_before') | list }}"

- name: Verify every bundle of an incident
  penguinmails.dbops.dbops_evidence:
    dir: incidents/INC-1/evidence
    state: verified
"""

RETURN = r"""
manifest_sha256:
  description: With O(state=present), the SHA-256 of the manifest written.
  returned: always
  type: str
files:
  description: With O(state=present), each file's SHA-256.
  returned: always
  type: dict
actions:
  description: What was written, with the manifest's hash.
  returned: always
  type: list
  elements: str
bundles:
  description: With O(state=verified), each bundle with path, verified, problems, files and manifest_sha256.
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import evidence


def write(module: AnsibleModule) -> dict:
    path, files = module.params["dir"], module.params["files"]
    if module.check_mode:
        hashes = {name: evidence.sha256(evidence.content_bytes(value)) for name, value in files.items()}
        manifest = evidence.sha256(evidence.manifest_text(hashes).encode())
        return {"changed": False, "files": hashes, "manifest_sha256": manifest, "bundles": [], "actions": []}
    hashes, manifest = evidence.write_bundle(path, files)
    action = "wrote evidence bundle %s: %d file(s), manifest sha256 %s" % (path, len(hashes), manifest)
    return {"changed": False, "files": hashes, "manifest_sha256": manifest, "bundles": [], "actions": [action]}


def verify(module: AnsibleModule) -> dict:
    root = module.params["dir"]
    bundles = [evidence.verify_bundle(path) for path in evidence.bundles_under(root)] if os.path.isdir(root) else []
    pinned = module.params["manifest_sha256"]
    if pinned and not any(bundle["manifest_sha256"] == pinned for bundle in bundles):
        bundles.append({"path": root, "verified": False, "problems": ["no manifest with sha256 %s" % pinned]})
    result = {"changed": False, "bundles": bundles, "files": {}, "manifest_sha256": None, "actions": []}
    broken = [bundle for bundle in bundles if not bundle["verified"]]
    if broken:
        module.fail_json(
            msg="evidence does not verify: %s"
            % "; ".join("%s: %s" % (bundle["path"], ", ".join(bundle["problems"])) for bundle in broken),
            **result,
        )
    result["msg"] = "%d evidence bundle(s) verified under %s" % (len(bundles), root)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "files": {"type": "dict", "default": {}},
            "state": {"type": "str", "default": "present", "choices": ["present", "verified"]},
            "manifest_sha256": {"type": "str"},
        },
        supports_check_mode=True,
    )
    try:
        result = write(module) if module.params["state"] == "present" else verify(module)
    except (OSError, ValueError) as error:
        module.fail_json(msg="dbops_evidence: %s" % error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
