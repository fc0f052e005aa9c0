"""The deployment files, checked offline: no cluster and no Docker engine needed.

- every manifest kustomize renders for each overlay validates against the
  Kubernetes schemas (kubernetes-validate) and, for ScaledObjects, KEDA's CRD
  schema (@kubernetes-models/keda, run with node);
- docker-compose.yml validates against the Compose specification schema;
- every environment variable they set is a real settings field with a valid value;
- every Celery queue has a worker Deployment, a ScaledObject and a compose service.
`make test` installs the validators (mk/deploy.mk).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "deploy"
OVERLAYS = ["cpu-only", "gpu"]
K8S_VERSION = "1.32"
# Containers of third-party images configure themselves with their own variables.
THIRD_PARTY_ENV = {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "HOME", "POD_NAME"}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: `make test` installs it (mk/deploy.mk)")
    return path


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    kubectl = _need("kubectl")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / request.param)],
        capture_output=True, text=True, check=True,
    ).stdout
    return request.param, [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def queues() -> list[str]:
    from workers.routing import QUEUES

    return list(dict.fromkeys(QUEUES.values()))


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kubernetes_manifests_validate(rendered):
    overlay, docs = rendered
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{overlay} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_scaled_objects_validate_against_keda(rendered, tmp_path):
    overlay, docs = rendered
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled, f"{overlay} renders no ScaledObject"
    node = _need("node")
    if not (TOOLS / "node_modules" / "@kubernetes-models" / "keda").exists():
        pytest.fail("KEDA models missing: `make test` installs them (mk/deploy.mk)")
    script = tmp_path / "validate.mjs"
    script.write_text(
        'import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";\n'
        'import { readFileSync } from "fs";\n'
        "const docs = JSON.parse(readFileSync(process.argv[2], 'utf8'));\n"
        "let bad = 0;\n"
        "for (const d of docs) { try { new ScaledObject(d).validate(); }"
        " catch (e) { bad++; console.log(d.metadata.name + ': ' + e.message); } }\n"
        "process.exit(bad ? 1 : 0);\n"
    )
    data = tmp_path / "docs.json"
    data.write_text(json.dumps(scaled))
    # node resolves packages from the script's folder upwards, so point it at the tools.
    env = {**os.environ, "NODE_PATH": str(TOOLS / "node_modules")}
    (tmp_path / "node_modules").symlink_to(TOOLS / "node_modules")
    result = subprocess.run([node, str(script), str(data)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_keda_validator_rejects_a_broken_scaled_object(tmp_path):
    """The KEDA check above must be able to fail."""
    node = _need("node")
    script = tmp_path / "bad.mjs"
    script.write_text(
        'import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";\n'
        'try { new ScaledObject({metadata: {name: "x"}, spec: {minReplicaCount: "zero", triggers: []}}).validate();'
        ' process.exit(0); } catch (e) { console.log(e.message); process.exit(3); }\n'
    )
    (tmp_path / "node_modules").symlink_to(TOOLS / "node_modules")
    assert subprocess.run([node, str(script)], capture_output=True).returncode == 3


def test_compose_validates_against_the_compose_spec(compose):
    schema_path = TOOLS / "compose_spec.json"
    if not schema_path.exists():
        pytest.fail("compose spec schema missing: `make test` fetches it (mk/deploy.mk)")
    schema = json.loads(schema_path.read_text())
    # The spec names draft 2019-09 with a trailing '#', which jsonschema does not look up.
    validator = jsonschema.Draft201909Validator(schema)
    validator.validate(compose)
    broken = {**compose, "services": {"x": {"image": "a", "depends_on": {"y": {"condition": "sometimes"}}}}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def _settings_env(names_and_values: dict[str, str]) -> None:
    """Every SPATIALVID_ variable is a settings field, and the values validate."""
    for name in names_and_values:
        if name in THIRD_PARTY_ENV:
            continue
        match = re.fullmatch(r"SPATIALVID_([A-Z0-9_]+?)__([A-Z0-9_]+)", name)
        assert match, f"{name} is not a SPATIALVID_<SECTION>__<FIELD> variable"
        section, field = match.group(1).lower(), match.group(2).lower()
        assert section in Settings.model_fields, f"{name}: no settings section {section!r}"
        section_model = Settings.model_fields[section].annotation
        assert field in section_model.model_fields, f"{name}: section {section!r} has no field {field!r}"
    env = {k: str(v) for k, v in names_and_values.items() if k.startswith("SPATIALVID_")}
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        Settings()  # raises if a value does not validate
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_compose_environment_is_settings(compose):
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        _settings_env(env)


def test_k8s_environment_is_settings(rendered):
    overlay, docs = rendered
    env: dict[str, str] = {}
    for cm in by_kind(docs, "ConfigMap").values():
        env.update(cm.get("data", {}))
    for secret in by_kind(docs, "Secret").values():
        env.update(secret.get("stringData", {}))
    for kind in ("Deployment", "StatefulSet"):
        for workload in by_kind(docs, kind).values():
            for container in workload["spec"]["template"]["spec"]["containers"]:
                env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    _settings_env(env)


def test_every_queue_has_workers_and_autoscaling(rendered, compose):
    overlay, docs = rendered
    deployments = by_kind(docs, "Deployment")
    scaled = by_kind(docs, "ScaledObject")
    budgets = by_kind(docs, "PodDisruptionBudget")
    for queue in queues():
        name = "worker-" + queue.replace("_", "-")
        command = deployments[name]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[command.index("-Q") + 1] == queue
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["triggers"][0]["type"] == "redis" and spec["triggers"][0]["metadata"]["listName"] == queue
        assert name in budgets
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 300
        assert "livenessProbe" in pod["containers"][0] and "readinessProbe" in pod["containers"][0]
        in_compose = [s for s in compose["services"].values() if queue in s.get("command", [])]
        assert in_compose, f"compose has no worker for queue {queue}"


def test_celery_routes_only_to_known_queues():
    from workers.app import app
    from workers.routing import QUEUES

    routes = app.conf.task_routes or {}
    routed = {route["queue"] for route in routes.values()} if isinstance(routes, dict) else set()
    assert routed, "Celery has no task routes"
    assert routed <= set(QUEUES.values())
    assert {"ingest", "score", "annotate_camera", "annotate_depth", "caption", "finalize"} <= set(QUEUES.values())


def test_gpu_overlay_puts_gpu_stages_on_gpus(rendered):
    overlay, docs = rendered
    deployments = by_kind(docs, "Deployment")
    for name in ("worker-annotate-camera", "worker-annotate-depth"):
        pod = deployments[name]["spec"]["template"]["spec"]
        gpus = pod["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
        if overlay == "gpu":
            assert gpus == "1" and pod["tolerations"] and pod["nodeSelector"]
            assert by_kind(docs, "ScaledObject")[name]["spec"]["minReplicaCount"] == 0
        else:
            assert gpus is None and "tolerations" not in pod
    assert ("triton" in deployments) == (overlay == "gpu")


def test_generated_worker_manifests_are_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_generate", ROOT / "k8s" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "k8s" / "base" / "workers.yaml").read_text() == module.render(), (
        "k8s/base/workers.yaml is stale: run `python k8s/generate.py`"
    )


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "deploy").glob("Dockerfile.*")))
def test_images_are_healthchecked_and_ours_run_unprivileged(dockerfile: Path):
    text = dockerfile.read_text()
    assert "HEALTHCHECK" in text
    if "tritonserver:" not in text:  # NVIDIA's image keeps its own user setup
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        assert users and users[-1] not in ("root", "0")
