"""The deployment artifacts, validated with the real tools (no Docker engine or cluster needed):
hadolint for the Dockerfile, the Compose implementation's `config`, `helm lint`, and
`helm template` through kubeconform (strict). Each validator is also shown failing on a
deliberately broken copy, so a green run means something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from ttlocal import tools  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402

KUBERNETES_VERSION = "1.31.0"
# kubeconform's template for where a kind's schema is (standalone_schemas.py writes this layout).
SCHEMA_LAYOUT = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
    "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
CHART = ROOT / "deploy" / "helm" / "timetracking"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
COMPOSE = Path(__import__("compose").__file__).parent / "docker-compose"  # the real binary, not the wrapper
CHART_VALUES = [
    "--set",
    "postgresql.password=p",
    "--set",
    "s3.accessKey=a",
    "--set",
    "s3.secretKey=s",
    "--set-json",
    'gateway.jwtKeys={"k1":"secret"}',
    "--set",
    "gateway.jwtActiveKid=k1",
]


def tool(name: str) -> Path:
    path = tools.bin_dir(StackConfig.load("test")) / name
    assert path.exists(), f"{name} missing: `make install` builds it with the Go toolchain"
    return path


def run(*argv: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, text=True, timeout=300)


# --- Dockerfile --------------------------------------------------------------------------
def test_dockerfile_passes_hadolint() -> None:
    result = run(VENV_BIN / "hadolint", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root\nRUN cd /tmp && ls"))
    result = run(VENV_BIN / "hadolint", broken)
    assert result.returncode != 0 and "DL" in result.stdout


def test_image_is_non_root_with_a_healthcheck_and_no_build_tools_in_the_final_stage() -> None:
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    assert "USER 10001" in final and "HEALTHCHECK" in final
    assert "uv sync" not in final and "gcc" not in final and "pip install" not in final


# --- docker-compose ------------------------------------------------------------------------
def compose_config(compose_file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess[str]:
    return run(
        COMPOSE,
        "--project-directory",
        ROOT,
        "--env-file",
        ROOT / ".env.example",
        "-f",
        compose_file,
        "config",
        "--format",
        "json",
    )


def test_compose_file_is_valid() -> None:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("projects", "tracking", "reporting", "invoicing", "gateway"):
        assert "healthcheck" in services[name], name
        assert all(d.get("condition") for d in services[name]["depends_on"].values()), name
    assert [p["published"] for p in services["gateway"]["ports"]] == ["8080"]


def test_compose_config_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml")
        .read_text()
        .replace("condition: service_healthy}", "condition: sometimes}", 1)
    )
    result = compose_config(broken)
    assert result.returncode != 0


# --- Helm -------------------------------------------------------------------------------
def render(chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), "template", "tt", chart, "--kube-version", KUBERNETES_VERSION, *CHART_VALUES)


def kubeconform(manifest: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(manifest)
    schemas = ROOT / ".local" / "cache" / "k8s-schemas"
    made = run(
        sys.executable,
        ROOT / "deploy" / "helm" / "standalone_schemas.py",
        KUBERNETES_VERSION,
        schemas,
        rendered,
    )
    assert made.returncode == 0, made.stderr
    location = str(schemas / SCHEMA_LAYOUT)
    return run(
        tool("kubeconform"),
        "-strict",
        "-summary",
        "-kubernetes-version",
        KUBERNETES_VERSION,
        "-schema-location",
        location,
        rendered,
    )


def test_helm_lint() -> None:
    result = run(tool("helm"), "lint", CHART, *CHART_VALUES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_template_passes_kubeconform_strict(tmp_path: Path) -> None:
    rendered = render()
    assert rendered.returncode == 0, rendered.stderr
    result = kubeconform(rendered.stdout, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "Secret",
    } <= kinds


def test_kubeconform_fails_a_broken_chart(tmp_path: Path) -> None:
    broken = tmp_path / "chart"
    shutil.copytree(CHART, broken)
    deployment = broken / "templates" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace("revisionHistoryLimit: 5", "revisionHistoryLimit: five")
    )
    rendered = render(broken)
    assert rendered.returncode == 0
    assert kubeconform(rendered.stdout, tmp_path).returncode != 0


def test_pods_are_hardened_and_probed_natively() -> None:
    docs = [d for d in yaml.safe_load_all(render().stdout) if d and d["kind"] == "Deployment"]
    assert len(docs) == 5
    for d in docs:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["allowPrivilegeEscalation"] is False
        if not d["metadata"]["name"].endswith("gateway"):
            assert (
                "grpc" in container["livenessProbe"]
                and container["readinessProbe"]["grpc"]["service"] == "readiness"
            )
    jobs = [d for d in yaml.safe_load_all(render().stdout) if d and d["kind"] == "Job"]
    assert {j["metadata"]["annotations"]["helm.sh/hook"] for j in jobs} == {"pre-install,pre-upgrade"}


# --- the same variable names as the settings classes -------------------------------------
def settings_classes() -> dict[str, type]:
    from gateway.config import GatewaySettings
    from invoicing.config import InvoicingSettings
    from projects.config import ProjectsSettings
    from reporting.config import ReportingSettings
    from tracking.config import TrackingSettings

    return {
        "projects": ProjectsSettings,
        "tracking": TrackingSettings,
        "reporting": ReportingSettings,
        "invoicing": InvoicingSettings,
        "gateway": GatewaySettings,
    }


def names(cls: type) -> tuple[str, set[str], set[str]]:
    prefix = cls.model_config["env_prefix"]
    fields = cls.model_fields  # type: ignore[attr-defined]
    known = {f"{prefix}{n.upper()}" for n in fields}
    required = {f"{prefix}{n.upper()}" for n, f in fields.items() if f.is_required()}
    return prefix, known, required


def helm_env() -> dict[str, set[str]]:
    out = {}
    for d in yaml.safe_load_all(render().stdout):
        if d and d["kind"] == "Deployment":
            service = d["metadata"]["labels"]["app.kubernetes.io/component"]
            out[service] = {e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    return out


def compose_env() -> dict[str, set[str]]:
    services = json.loads(compose_config().stdout)["services"]
    return {name: set(services[name]["environment"]) for name in settings_classes()}


@pytest.mark.parametrize("source", ["compose", "helm"])
@pytest.mark.parametrize("service", ["projects", "tracking", "reporting", "invoicing", "gateway"])
def test_every_required_setting_is_set_and_every_name_is_known(source: str, service: str) -> None:
    env = (compose_env() if source == "compose" else helm_env())[service]
    prefix, known, required = names(settings_classes()[service])
    assert required <= env, f"{source} misses {sorted(required - env)} for {service}"
    unknown = {e for e in env if e.startswith(prefix)} - known
    assert not unknown, f"{source} sets {sorted(unknown)} which {service}'s settings do not read"
