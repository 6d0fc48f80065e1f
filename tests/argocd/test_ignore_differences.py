"""Argo CD's ignoreDifferences for VectorPipeline and SlurmJob: exactly what the controllers write.

The operator and the slurm-bridge are Kopf controllers that keep their state
in annotations under their own prefixes, add a finalizer and write status;
none of that is in Git, so Argo CD must ignore it or a synced pipeline shows
OutOfSync. The annotation keys are not repeated here: they are derived from
the controllers' own Kopf settings (`configure`, which takes the prefix and
keys from their modules) and handler registries (`register`), by letting
Kopf's storages write their records into a patch, the way a running
controller does mid-handling. The rules in argocd-cm-patch.yaml and in
pipelines-application.yaml must cover them exactly: a key the controllers
write and Argo CD does not ignore is drift, a rule for a key nobody writes is
stale (as `kopf.zalando.org/last-handled-configuration` was). Then an object
as Kopf leaves it is normalized the way Argo CD's ignore normalizer does it
(RFC 6901 pointer removals, missing paths skipped, empty maps dropped) and
must equal the Git manifest, while a real change still shows.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
from typing import Any

import kopf
import pytest
import yaml

from tests.support.argocd import ARGOCD, FIXTURES

KINDS = ("VectorPipeline", "SlurmJob")
PLURALS = {"VectorPipeline": "vectorpipelines", "SlurmJob": "slurmjobs"}


# -- what the controllers write ------------------------------------------------------------------
def _operator() -> tuple[kopf.OperatorSettings, kopf.OperatorRegistry]:
    from vectorpipe_operator import config, main

    settings, registry = kopf.OperatorSettings(), kopf.OperatorRegistry()
    config.configure(settings)
    main.register(registry)
    return settings, registry


def _bridge() -> tuple[kopf.OperatorSettings, kopf.OperatorRegistry]:
    from slurm_bridge import config, main
    from slurm_bridge.options import Options

    settings, registry = kopf.OperatorSettings(), kopf.OperatorRegistry()
    config.configure(settings)
    main.register(registry, Options())
    return settings, registry


CONTROLLERS = {"operator": _operator, "slurm-bridge": _bridge}


def _resource(kind: str) -> kopf.Resource:
    return kopf.Resource(
        group="vectorpipe.io",
        version="v1alpha1",
        plural=PLURALS[kind],
        kind=kind,
        singular=kind.lower(),
        namespaced=True,
        preferred=True,
        subresources=frozenset({"status"}),
        verbs=frozenset({"get", "list", "watch", "patch"}),
    )


def _changing_handler_ids(registry: kopf.OperatorRegistry, kind: str) -> list[str]:
    """Ids of the change handlers (create/update/resume/delete/field) on one kind,
    matched the way Kopf matches them (the handler's selector against the resource).

    These are the handlers whose progress Kopf persists; event handlers and
    timers/daemons keep no per-object state in annotations."""
    resource = _resource(kind)
    return [
        str(h.id)
        for h in registry._changing.get_all_handlers()
        if h.selector is not None and h.selector.check(resource)
    ]


def kopf_writes(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as it looks while every controller watching `kind` is mid-handling it.

    Every change handler of every controller on the kind has a progress record,
    the touch key is set, the diff base is stored, the finalizer is on and the
    status is written: a superset of any moment of a real run."""
    live = copy.deepcopy(body)
    now = datetime.datetime.now(datetime.UTC).isoformat()
    for make in CONTROLLERS.values():
        settings, registry = make()
        ids = _changing_handler_ids(registry, kind)
        if not ids:
            continue  # this controller never handles the kind
        progress = settings.persistence.progress_storage
        diffbase = settings.persistence.diffbase_storage
        patch = kopf.Patch()
        for hid in ids:
            record: kopf.ProgressRecord = {"started": now, "retries": 1, "delayed": now}
            progress.store(
                key=kopf.HandlerId(hid), record=record, body=kopf.Body(live), patch=patch
            )
        progress.touch(body=kopf.Body(live), patch=patch, value=now)
        essence = diffbase.build(body=kopf.Body(live))
        diffbase.store(body=kopf.Body(live), patch=patch, essence=essence)
        live.setdefault("metadata", {}).setdefault("annotations", {}).update(
            {k: v for k, v in dict(patch.metadata.annotations).items() if v is not None}
        )
        live["metadata"].setdefault("finalizers", []).append(settings.persistence.finalizer)
    live["status"] = {"phase": "Running", "observedGeneration": 1}
    return live


def written_annotations(kind: str) -> set[str]:
    before = set(_manifest(kind)["metadata"].get("annotations", {}))
    return set(kopf_writes(kind, _manifest(kind))["metadata"]["annotations"]) - before


# -- what Argo CD is told to ignore --------------------------------------------------------------
def _cm_rules(kind: str) -> list[str]:
    cm = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text(encoding="utf-8"))
    rules = yaml.safe_load(
        cm["data"][f"resource.customizations.ignoreDifferences.vectorpipe.io_{kind}"]
    )
    assert set(rules) == {"jsonPointers"}, rules
    return list(rules["jsonPointers"])


def _app_rules(kind: str) -> list[str]:
    app = yaml.safe_load((ARGOCD / "pipelines-application.yaml").read_text(encoding="utf-8"))
    (rule,) = [
        r
        for r in app["spec"]["ignoreDifferences"]
        if (r["group"], r["kind"]) == ("vectorpipe.io", kind)
    ]
    assert set(rule) == {"group", "kind", "jsonPointers"}, rule
    return list(rule["jsonPointers"])


RULES = {"argocd-cm": _cm_rules, "pipelines-application": _app_rules}


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _tokens(pointer: str) -> list[str]:
    assert pointer.startswith("/"), pointer
    return [_unescape(t) for t in pointer[1:].split("/")]


def ignored_annotations(pointers: list[str]) -> set[str]:
    out = set()
    for p in pointers:
        tokens = _tokens(p)
        if tokens[:2] == ["metadata", "annotations"]:
            assert len(tokens) == 3, f"{p}: one annotation per pointer, never all of them"
            out.add(tokens[2])
    return out


# -- Argo CD's ignore normalizer -----------------------------------------------------------------
def _remove(doc: Any, pointer: str) -> None:
    """One JSON-patch `remove`; a missing path raises KeyError (Argo CD then skips the rule)."""
    *parents, last = _tokens(pointer)
    node = doc
    for t in parents:
        node = node[int(t)] if isinstance(node, list) else node[t]
    if isinstance(node, list):
        del node[int(last)]
    else:
        del node[last]


def _drop_empty(obj: dict[str, Any]) -> None:
    """Argo CD's removeEmptyObjects: empty maps and lists left by the removals go too."""
    for key in list(obj):
        value = obj[key]
        if isinstance(value, dict):
            _drop_empty(value)
            if not value:
                del obj[key]
        elif isinstance(value, list) and not value:
            del obj[key]


def normalize(obj: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for p in pointers:
        # "Unable to remove nonexistent key": Argo CD skips a rule whose path is missing.
        with contextlib.suppress(KeyError, IndexError):
            _remove(out, p)
    _drop_empty(out)
    return out


# -- the manifests ------------------------------------------------------------------------------
def _manifest(kind: str) -> dict[str, Any]:
    """A Git manifest of `kind`: the example pipeline, or a SlurmJob fixture without status."""
    if kind == "VectorPipeline":
        (obj,) = yaml.safe_load_all(
            (ARGOCD / "pipelines" / "example-pipeline.yaml").read_text(encoding="utf-8")
        )
    else:
        obj = yaml.safe_load((FIXTURES / "slurmjob" / "running.yaml").read_text(encoding="utf-8"))
        obj = {k: v for k, v in obj.items() if k != "status"}
        obj["metadata"] = {"name": obj["metadata"].get("name", "r42-kmeans")}
    assert obj["kind"] == kind
    obj["metadata"]["namespace"] = "vectorpipe-system"
    return dict(obj)


@pytest.fixture(params=sorted(RULES), ids=sorted(RULES))
def rules(request: pytest.FixtureRequest) -> Any:
    return RULES[request.param]


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_ignored_annotations_are_exactly_what_the_controllers_write(rules: Any, kind: str) -> None:
    written = written_annotations(kind)
    ignored = ignored_annotations(rules(kind))
    assert written, "Kopf wrote no annotations: the derivation is broken"
    assert (sorted(written - ignored), sorted(ignored - written)) == ([], []), (
        "(written but not ignored: drift; ignored but never written: stale) "
        "-> fix IGNORE lists in hack/lua/sync_cm.py, run it, and copy them into "
        "charts/argocd/pipelines-application.yaml"
    )


def test_the_keys_are_the_controllers_own_constants() -> None:
    """The keys Argo CD ignores are the ones the controllers' modules define."""
    from slurm_bridge import config as bridge
    from slurm_bridge.finalize import FINALIZER
    from vectorpipe_operator import resources as op

    operator_keys = {
        f"{op.PERSISTENCE_PREFIX}/{op.DIFFBASE_KEY}",
        f"{op.PERSISTENCE_PREFIX}/{op.TOUCH_KEY}",
    }
    bridge_keys = {
        f"{bridge.PERSISTENCE_PREFIX}/{bridge.DIFFBASE_KEY}",
        f"{bridge.PERSISTENCE_PREFIX}/{bridge.TOUCH_KEY}",
    }
    for rules in RULES.values():
        assert operator_keys <= ignored_annotations(rules("VectorPipeline"))
        assert not bridge_keys & ignored_annotations(rules("VectorPipeline"))
        # The operator watches SlurmJobs too (status.phase), so both controllers' keys.
        assert operator_keys | bridge_keys <= ignored_annotations(rules("SlurmJob"))
        for kind in KINDS:
            pointers = rules(kind)
            assert "/status" in pointers and "/metadata/finalizers" in pointers
            assert not any("kopf.zalando.org" in p for p in pointers), "nobody writes that"
    # The bridge's finalizer is what /metadata/finalizers is there for.
    assert (
        kopf_writes("SlurmJob", _manifest("SlurmJob"))["metadata"]["finalizers"].count(FINALIZER)
        == 1
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_synced_object_shows_no_diff(rules: Any, kind: str) -> None:
    pointers = rules(kind)
    git = _manifest(kind)
    live = kopf_writes(kind, git)
    assert live != git
    assert normalize(live, pointers) == normalize(git, pointers)


@pytest.mark.parametrize("kind", KINDS)
def test_a_real_change_still_shows(rules: Any, kind: str) -> None:
    """The rules are narrow: a user's annotation or a spec edit is still a diff."""
    pointers = rules(kind)
    git = _manifest(kind)
    for mutate in (
        lambda o: o["metadata"].setdefault("annotations", {}).update({"team": "genomics"}),
        # A user annotation under the operator's own prefix, e.g. the bridge's escape hatch.
        lambda o: (
            o["metadata"]
            .setdefault("annotations", {})
            .update({"vectorpipe.io/skip-cancel": "true"})
        ),
        lambda o: o["metadata"].setdefault("labels", {}).update({"team": "genomics"}),
        lambda o: o["spec"].update({"extra": 1}),
    ):
        live = kopf_writes(kind, git)
        mutate(live)
        assert normalize(live, pointers) != normalize(git, pointers)


def test_argocd_cm_and_the_application_agree() -> None:
    for kind in KINDS:
        assert _cm_rules(kind) == _app_rules(kind), kind
