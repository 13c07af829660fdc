"""Generate the `timetracking` Python package from protos/ (run by `make protos`).

The generated modules are not committed: every install step regenerates them,
so stubs and .proto files can never drift apart.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parents[1] / "protos"
OUT = HERE
PACKAGE = OUT / "timetracking"


def main() -> int:
    for child in PACKAGE.iterdir() if PACKAGE.exists() else []:
        if child.is_dir():
            shutil.rmtree(child)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={OUT}",
            f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}",
            *protos,
        ]
    )
    if rc != 0:
        return rc
    for directory in [PACKAGE, *(d for d in PACKAGE.rglob("*") if d.is_dir())]:
        (directory / "__init__.py").touch()
    print(f"generated {len(protos)} proto files into {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
