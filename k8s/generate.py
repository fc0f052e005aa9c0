"""Write k8s/base/workers.yaml: a Deployment, a KEDA ScaledObject and a
PodDisruptionBudget per Celery queue.

The queues come from the Celery routing (workers/routing.py), so a new stage
queue cannot ship without its workers: tests/deploy checks that the committed
file equals this script's output. Run `python k8s/generate.py` after changing
queues or their profiles.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "k8s" / "base" / "workers.yaml"

# Per queue: resources, how long a task may run before the pod is killed, and
# how far KEDA may scale. The gpu overlay adds GPUs to the annotate queues.
PROFILES: dict[str, dict] = {
    "ingest": {"cpu": "2", "memory": "4Gi", "grace": 900, "max": 8, "min": 1, "list_length": 2},
    "score": {"cpu": "2", "memory": "4Gi", "grace": 300, "max": 16, "min": 1, "list_length": 8},
    "annotate_camera": {"cpu": "4", "memory": "8Gi", "grace": 1200, "max": 16, "min": 0, "list_length": 4},
    "annotate_depth": {"cpu": "4", "memory": "8Gi", "grace": 1200, "max": 16, "min": 0, "list_length": 4},
    # camera and depth of a clip in one task (workers.annotate_together): the two stages' time per task
    "annotate": {"cpu": "4", "memory": "8Gi", "grace": 2400, "max": 16, "min": 0, "list_length": 4},
    "caption": {"cpu": "1", "memory": "2Gi", "grace": 300, "max": 8, "min": 0, "list_length": 16},
    "finalize": {"cpu": "1", "memory": "2Gi", "grace": 300, "max": 2, "min": 1, "list_length": 4},
}
DEFAULT_PROFILE = {"cpu": "2", "memory": "4Gi", "grace": 600, "max": 8, "min": 1, "list_length": 4}


def queue_names() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from workers.routing import QUEUES

    return list(dict.fromkeys(QUEUES.values()))


def resource_name(queue: str) -> str:
    return "worker-" + queue.replace("_", "-")


def deployment(queue: str, profile: dict) -> dict:
    name = resource_name(queue)
    ping = ["sh", "-c", 'celery -A workers.app inspect ping -d "celery@$HOSTNAME" --timeout 10']
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "worker", "spatialvid/queue": queue}},
        "spec": {
            "replicas": profile["min"] or 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "worker",
                                        "spatialvid/queue": queue}},
                "spec": {
                    # acks_late re-queues a task whose worker goes away; this is
                    # how long a running task gets to finish first.
                    "terminationGracePeriodSeconds": profile["grace"],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [{
                        "name": "worker",
                        "image": "spatialvid-cpu",
                        "command": ["celery", "-A", "workers.app", "worker", "--loglevel", "INFO",
                                    "--concurrency", "1", "-Q", queue, "-n", f"{queue}@$(POD_NAME)"],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "envFrom": [{"configMapRef": {"name": "spatialvid-settings"}},
                                    {"secretRef": {"name": "spatialvid-secrets"}}],
                        "resources": {
                            "requests": {"cpu": profile["cpu"], "memory": profile["memory"]},
                            "limits": {"cpu": profile["cpu"], "memory": profile["memory"]},
                        },
                        "livenessProbe": {"exec": {"command": ping}, "initialDelaySeconds": 60,
                                          "periodSeconds": 60, "timeoutSeconds": 20, "failureThreshold": 3},
                        "readinessProbe": {"exec": {"command": ping}, "initialDelaySeconds": 20,
                                           "periodSeconds": 30, "timeoutSeconds": 20},
                        "volumeMounts": [{"name": "weights", "mountPath": "/weights", "readOnly": True},
                                         {"name": "scratch", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "weights", "persistentVolumeClaim": {"claimName": "spatialvid-weights",
                                                                              "readOnly": True}},
                                {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}}],
                },
            },
        },
    }


def scaled_object(queue: str, profile: dict) -> dict:
    name = resource_name(queue)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": {"spatialvid/queue": queue}},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": profile["min"],
            "maxReplicaCount": profile["max"],
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            # Celery keeps a Redis queue's pending tasks in a list named after it.
            "triggers": [{
                "type": "redis",
                "metadata": {"address": "redis:6379", "listName": queue,
                             "listLength": str(profile["list_length"]), "databaseIndex": "0"},
            }],
        },
    }


def disruption_budget(queue: str) -> dict:
    name = resource_name(queue)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def render() -> str:
    docs = []
    for queue in queue_names():
        profile = PROFILES.get(queue, DEFAULT_PROFILE)
        docs += [deployment(queue, profile), scaled_object(queue, profile), disruption_budget(queue)]
    header = "# Generated by k8s/generate.py from workers/routing.py; do not edit by hand.\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=120)


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
