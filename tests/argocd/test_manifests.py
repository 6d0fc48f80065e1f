"""The Argo CD manifests: Application, pipelines Application, ApplicationSet,
the example pipeline's sync wave, and the argocd-cm patch generated from the
health scripts (with its drift check)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.argocd import ARGOCD, CRD_DIR, HEALTH_DIR, REPO, RunHealth, crd_validator

PLACEHOLDER_REPO = "https://git.example.com/vectorpipe.git"
SYNC_CM = REPO / "hack" / "lua" / "sync_cm.py"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"


def _doc(name: str) -> dict[str, Any]:
    docs = [
        d for d in yaml.safe_load_all((ARGOCD / name).read_text(encoding="utf-8")) if d is not None
    ]
    assert len(docs) == 1, f"{name} holds {len(docs)} documents"
    assert isinstance(docs[0], dict)
    return docs[0]


def _check_app_spec(spec: dict[str, Any], *, path: str) -> None:
    src = spec["source"]
    assert src["repoURL"] == PLACEHOLDER_REPO
    assert src["path"] == path
    assert src["targetRevision"]
    assert spec["project"] == "default"
    assert spec["destination"]["namespace"] == "vectorpipe-system"
    assert spec["destination"]["server"]

    policy = spec["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    options = policy["syncOptions"]
    assert "CreateNamespace=true" in options
    assert "ServerSideApply=true" in options
    assert "RespectIgnoreDifferences=true" in options
    assert len(options) == len(set(options))
    for opt in options:
        assert re.fullmatch(r"[A-Za-z]+=(true|false)", opt), opt

    retry = policy["retry"]
    assert retry["limit"] > 0
    backoff = retry["backoff"]
    assert re.fullmatch(r"\d+[sm]", backoff["duration"])
    assert re.fullmatch(r"\d+[sm]", backoff["maxDuration"])
    assert backoff["factor"] >= 2


def _ignored(spec: dict[str, Any]) -> dict[tuple[str, str, str | None], list[str]]:
    return {
        (d["group"], d["kind"], d.get("name")): d.get("jsonPointers", [])
        for d in spec["ignoreDifferences"]
    }


def test_chart_application() -> None:
    app = _doc("application.yaml")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    assert app["metadata"]["namespace"] == "argocd"
    # No cascading delete by default: the CRDs would take every pipeline with them.
    assert "resources-finalizer.argocd.argoproj.io" not in app["metadata"].get("finalizers", [])
    spec = app["spec"]
    _check_app_spec(spec, path="charts/vectorpipe")
    assert spec["source"]["helm"]["releaseName"] == "vectorpipe"
    assert spec["source"]["helm"].get("skipCrds", False) is False
    ignored = _ignored(spec)
    for crd in ("vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io"):
        pointers = ignored[("apiextensions.k8s.io", "CustomResourceDefinition", crd)]
        assert "/status" in pointers
        assert "/spec/conversion/webhook/clientConfig/caBundle" in pointers


def test_pipelines_application() -> None:
    app = _doc("pipelines-application.yaml")
    assert app["kind"] == "Application"
    spec = app["spec"]
    _check_app_spec(spec, path="charts/argocd/pipelines")
    assert "SkipDryRunOnMissingResource=true" in spec["syncPolicy"]["syncOptions"]
    # In an app-of-apps, pipelines come after the chart.
    waves = {
        name: int(_doc(name)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for name in ("application.yaml", "pipelines-application.yaml")
    }
    assert waves["application.yaml"] < waves["pipelines-application.yaml"]
    ignored = _ignored(spec)
    for kind in ("VectorPipeline", "SlurmJob"):
        assert "/status" in ignored[("vectorpipe.io", kind, None)]


def test_pipeline_folder_holds_vectorpipelines_in_wave_1() -> None:
    files = sorted((ARGOCD / "pipelines").glob("*.yaml"))
    assert files
    for f in files:
        for obj in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            assert obj["apiVersion"] == "vectorpipe.io/v1alpha1"
            assert obj["kind"] == "VectorPipeline"
            ann = obj["metadata"]["annotations"]
            assert ann["argocd.argoproj.io/sync-wave"] == "1"
            assert "namespace" not in obj["metadata"], "the Application's destination sets it"
            spec = obj["spec"]
            for key in ("input", "embedding", "output", "hpc"):
                assert key in spec
            assert "status" not in obj


def test_example_pipelines_match_the_crd() -> None:
    validator = crd_validator("VectorPipeline")
    for f in sorted((ARGOCD / "pipelines").glob("*.yaml")):
        for obj in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(obj)
            ]
            assert not errors, (f.name, errors)


def test_application_set() -> None:
    appset = _doc("applicationset.yaml")
    assert appset["apiVersion"] == "argoproj.io/v1alpha1"
    assert appset["kind"] == "ApplicationSet"
    spec = appset["spec"]
    assert spec["goTemplate"] is True
    assert "missingkey=error" in spec["goTemplateOptions"]
    assert spec["syncPolicy"]["preserveResourcesOnDeletion"] is True
    clusters = spec["generators"][0]["clusters"]
    assert clusters["selector"]["matchLabels"] == {"vectorpipe.io/enabled": "true"}
    template = spec["template"]
    assert "{{.nameNormalized}}" in template["metadata"]["name"]
    assert template["spec"]["destination"]["server"] == "{{.server}}"
    _check_app_spec(template["spec"], path="charts/vectorpipe")
    helm = template["spec"]["source"]["helm"]
    assert helm["ignoreMissingValueFiles"] is True
    assert "values-{{.name}}.yaml" in helm["valueFiles"]
    # The chart Application and the ApplicationSet template agree on everything
    # but the destination server.
    single = _doc("application.yaml")["spec"]
    for key in ("source", "syncPolicy", "ignoreDifferences", "project"):
        if key == "source":
            assert {k: v for k, v in template["spec"]["source"].items() if k != "helm"} == {
                k: v for k, v in single["source"].items() if k != "helm"
            }
        else:
            assert template["spec"][key] == single[key], key


def test_no_real_hosts_in_argocd_manifests() -> None:
    """Only placeholder hosts (example.com / .example.internal) and the in-cluster API."""
    allowed = re.compile(r"(^|\.)example\.(com|internal)$|^kubernetes\.default\.svc$")
    for f in ARGOCD.rglob("*.yaml"):
        for host in re.findall(r"https?://([^/:\s\"']+)", f.read_text(encoding="utf-8")):
            assert allowed.search(host), f"{f.name}: {host}"
        for image in re.findall(r"image:\s*(\S+)", f.read_text(encoding="utf-8")):
            assert image.split("/", 1)[0].endswith("example.com"), f"{f.name}: {image}"


def test_applications_point_at_the_chart() -> None:
    """The chart the Applications sync exists, and its name is their release name."""
    for name in ("application.yaml", "applicationset.yaml"):
        spec = _doc(name)["spec"]
        spec = spec.get("template", {}).get("spec") or spec
        chart = REPO / spec["source"]["path"]
        assert (chart / "Chart.yaml").is_file(), f"{name}: no chart at {spec['source']['path']}"
        meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
        assert meta["name"] == spec["source"]["helm"]["releaseName"], name


# --- argocd-cm patch ---------------------------------------------------------


def test_cm_patch_embeds_the_scripts_verbatim() -> None:
    cm = _doc("argocd-cm-patch.yaml")
    assert cm["apiVersion"] == "v1"
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    data = cm["data"]
    assert data["resource.customizations.health.vectorpipe.io_VectorPipeline"] == (
        HEALTH_DIR / "vectorpipeline.lua"
    ).read_text(encoding="utf-8")
    assert data["resource.customizations.health.vectorpipe.io_SlurmJob"] == (
        HEALTH_DIR / "slurmjob.lua"
    ).read_text(encoding="utf-8")
    for kind in ("VectorPipeline", "SlurmJob"):
        rules = yaml.safe_load(
            data[f"resource.customizations.ignoreDifferences.vectorpipe.io_{kind}"]
        )
        assert "/status" in rules["jsonPointers"]
        assert set(rules) <= {"jsonPointers", "jqPathExpressions", "managedFieldsManagers"}
    # Every key is a split-style customisation Argo CD knows; the values are strings.
    for key, value in data.items():
        assert re.fullmatch(
            r"resource\.customizations\.(health|ignoreDifferences)\.vectorpipe\.io_[A-Z]\w+", key
        )
        assert isinstance(value, str)
    # The scripts need no standard library, so no useOpenLibs key.
    assert not any("useOpenLibs" in k for k in data)


def test_cm_patch_health_scripts_run(run_health: RunHealth, tmp_path: Path) -> None:
    """What Argo CD reads from the ConfigMap (not the .lua file) is what runs."""
    data = _doc("argocd-cm-patch.yaml")["data"]
    script = tmp_path / "from-configmap.lua"
    script.write_text(
        data["resource.customizations.health.vectorpipe.io_SlurmJob"], encoding="utf-8"
    )
    obj = {
        "metadata": {"generation": 1},
        "status": {"phase": "Running", "jobId": 9, "state": "RUNNING"},
    }
    assert run_health(script, obj) == {"status": "Progressing", "message": "Slurm job 9 RUNNING"}


def _sync(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SYNC_CM), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cm_patch_is_in_sync() -> None:
    proc = _sync("--check")
    assert proc.returncode == 0, proc.stderr


def test_drift_check_fails_then_regeneration_fixes(tmp_path: Path) -> None:
    health = tmp_path / "health"
    shutil.copytree(HEALTH_DIR, health)
    patch = tmp_path / "argocd-cm-patch.yaml"
    shutil.copy(CM_PATCH, patch)
    assert _sync("--check", "--health-dir", health, "--patch", patch).returncode == 0

    script = health / "slurmjob.lua"
    script.write_text(
        script.read_text(encoding="utf-8").replace("is held", "is on hold"), encoding="utf-8"
    )
    drift = _sync("--check", "--health-dir", health, "--patch", patch)
    assert drift.returncode == 1
    assert "out of date" in drift.stderr
    assert "+    " in drift.stderr and "is on hold" in drift.stderr  # a unified diff of the change
    assert patch.read_text(encoding="utf-8") == CM_PATCH.read_text(encoding="utf-8"), (
        "--check never writes"
    )

    assert _sync("--health-dir", health, "--patch", patch).returncode == 0
    assert _sync("--check", "--health-dir", health, "--patch", patch).returncode == 0
    regenerated = yaml.safe_load(patch.read_text(encoding="utf-8"))["data"]
    assert regenerated["resource.customizations.health.vectorpipe.io_SlurmJob"] == script.read_text(
        encoding="utf-8"
    )

    # A hand edit of the patch is drift too.
    patch.write_text(
        patch.read_text(encoding="utf-8").replace("- /status", "- /spec"), encoding="utf-8"
    )
    assert _sync("--check", "--health-dir", health, "--patch", patch).returncode == 1


def test_sync_refuses_text_a_block_scalar_would_change(tmp_path: Path) -> None:
    health = tmp_path / "health"
    shutil.copytree(HEALTH_DIR, health)
    (health / "vectorpipeline.lua").write_text("return {}\n\n", encoding="utf-8")
    proc = _sync("--check", "--health-dir", health, "--patch", tmp_path / "p.yaml")
    assert proc.returncode == 2
    assert "exactly one newline" in proc.stderr


# --- the CRDs' sync wave --------------------------------------------------------


def _readme_wave(what: str) -> int:
    """The wave charts/argocd/README.md's "Sync order" table gives the row about `what`."""
    readme = (ARGOCD / "README.md").read_text(encoding="utf-8")
    rows = [
        line for line in readme.splitlines() if re.match(r"\|\s*-?\d+\s*\|", line) and what in line
    ]
    assert len(rows) == 1, f"README sync-order rows about {what!r}: {rows}"
    return int(rows[0].split("|")[1])


def test_every_chart_crd_carries_the_readme_sync_wave() -> None:
    """Every CRD the chart ships (ours, generated by hack/gen_crds.py, and any
    static one) syncs in the README's CRD wave, before the controllers and the
    pipelines, and Argo CD never prunes or deletes it."""
    wave = _readme_wave("the CRDs")
    assert (
        wave < _readme_wave("operator and slurm-bridge") < _readme_wave("`VectorPipeline` objects")
    )
    kinds = set()
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert crd["kind"] == "CustomResourceDefinition", path.name
        ann = crd["metadata"].get("annotations", {})
        assert ann.get("argocd.argoproj.io/sync-wave") == str(wave), path.name
        options = [o.strip() for o in ann.get("argocd.argoproj.io/sync-options", "").split(",")]
        assert {"Prune=false", "Delete=false"} <= set(options), path.name
        kinds.add(crd["spec"]["names"]["kind"])
    assert {"VectorPipeline", "SlurmJob"} <= kinds


def test_crd_generator_sets_the_sync_wave() -> None:
    """hack/gen_crds.py itself puts the annotation on (regenerating never drops it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_crds", REPO / "hack" / "gen_crds.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    wave = str(_readme_wave("the CRDs"))
    for crd in (gen.vectorpipeline_crd(), gen.slurmjob_crd()):
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == wave
