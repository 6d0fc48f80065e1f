"""The Argo CD health checks for VectorPipeline and SlurmJob, run by gopher-lua
(the Lua 5.1 VM Argo CD embeds) through hack/lua exactly as Argo CD runs them,
on a status fixture for every phase; Debian's lua5.1 gives a second opinion."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.argocd import FIXTURES, HEALTH_DIR, REPO, RunHealth, crd_validator

# The statuses Argo CD accepts from a health script (gitops-engine HealthStatusCode).
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

VP_PHASES = ["Pending", "Embedding", "Clustering", "Succeeded", "Failed"]
SJ_PHASES = ["Pending", "Submitted", "Running", "Succeeded", "Failed", "Cancelled"]

EXPECTED = yaml.safe_load((FIXTURES / "health_test.yaml").read_text(encoding="utf-8"))


def _cases() -> list[Any]:
    cases = []
    for spec in EXPECTED.values():
        for test in spec["tests"]:
            cases.append(
                pytest.param(
                    REPO / spec["script"],
                    FIXTURES / test["inputPath"],
                    test["healthStatus"],
                    id=test["inputPath"].removesuffix(".yaml"),
                )
            )
    return cases


CASES = _cases()


def _load(path: Path) -> dict[str, Any]:
    obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(obj, dict)
    return obj


@pytest.mark.parametrize(("script", "fixture", "expected"), CASES)
def test_health(
    run_health: RunHealth, script: Path, fixture: Path, expected: dict[str, str]
) -> None:
    raw = run_health(script, _load(fixture))
    # The script returns exactly {status, message}, both strings, a status Argo CD
    # accepts, so Argo CD records it unchanged.
    assert raw == expected
    assert expected["status"] in ARGO_STATUSES - {"Missing"}
    assert run_health(script, _load(fixture), "-argocd") == expected


@pytest.mark.parametrize(("script", "fixture", "expected"), CASES)
def test_health_with_open_libs_is_the_same(
    run_health: RunHealth, script: Path, fixture: Path, expected: dict[str, str]
) -> None:
    """Setting resource.customizations.useOpenLibs.* changes nothing."""
    assert run_health(script, _load(fixture), "-open-libs") == expected


def test_fixtures_cover_every_phase_and_edge_case() -> None:
    def phases(kind: str) -> set[str]:
        found = set()
        for test in EXPECTED[kind]["tests"]:
            status = _load(FIXTURES / test["inputPath"]).get("status") or {}
            found.add(status.get("phase"))
        return found

    assert set(VP_PHASES) | {None} <= phases("vectorpipeline")
    assert set(SJ_PHASES) | {None} <= phases("slurmjob")

    vp = {t["inputPath"] for t in EXPECTED["vectorpipeline"]["tests"]}
    sj = {t["inputPath"] for t in EXPECTED["slurmjob"]["tests"]}
    for must in ("no-status", "stale-generation", "failed", "unknown-phase"):
        assert f"vectorpipeline/{must}.yaml" in vp
    for must in ("no-status", "stale-generation", "failed-timeout", "failed-node-fail",
                 "held-user", "spec-suspend", "cancelled", "unknown-phase"):  # fmt: skip
        assert f"slurmjob/{must}.yaml" in sj
    # Every fixture file is listed (none silently untested) and exists.
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.yaml")}
    assert on_disk == vp | sj


def _schema_cases() -> list[Any]:
    return [
        pytest.param(
            test["inputPath"], test.get("offSchema"), id=test["inputPath"].removesuffix(".yaml")
        )
        for spec in EXPECTED.values()
        for test in spec["tests"]
    ]


@pytest.mark.parametrize(("input_path", "off_schema"), _schema_cases())
def test_fixture_matches_the_crd(input_path: str, off_schema: str | None) -> None:
    """The fixtures are statuses the controllers can write: each validates against
    the CRD's schema, except the robustness cases marked offSchema."""
    obj = _load(FIXTURES / input_path)
    validator = crd_validator(obj["kind"])
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]
    if off_schema:
        assert errors, f"{input_path} is marked offSchema ({off_schema}) but validates"
    else:
        assert not errors, errors


def test_every_argo_status_but_missing_is_reachable() -> None:
    seen = {t["healthStatus"]["status"] for spec in EXPECTED.values() for t in spec["tests"]}
    assert seen == ARGO_STATUSES - {"Missing"}


# --- statuses the real operator computes -----------------------------------------


def _operator_scenarios() -> dict[str, tuple[Any, str, list[str]]]:
    """name -> (list of Observed passes, expected health, message fragments)."""
    from vectorpipe_kopf.errors import Problem
    from vectorpipe_operator.status import ManifestView, Observed, RayJobView, SlurmJobView

    running = RayJobView("r42-etl", job_status="RUNNING", deployment_status="Running")
    done = RayJobView("r42-etl", job_status="SUCCEEDED", deployment_status="Complete")
    manifest = ManifestView(
        uri="s3://b/runs/r42/_manifest.json", rows=1000, shards=2, dim=136, format="parquet"
    )

    def stage2(phase: str, **kw: Any) -> Any:
        sj = SlurmJobView("r42-kmeans", phase=phase, job_id=77, **kw)
        return Observed(rayjob=done, manifest=manifest, slurmjob=sj)

    throttled = Problem("S3Throttled", "S3 SlowDown, retrying in 8s")
    bad_input = Problem("InvalidInput", "s3://b/reads/s7.fq record 12: truncated")
    return {
        "pending": ([Observed()], "Progressing", ["Pending: "]),
        "embedding": ([Observed(rayjob=running)], "Progressing", ["Embedding: ", "r42-etl"]),
        "embedding-waiting": (
            [Observed(rayjob=running), Observed(rayjob=running, waiting=throttled)],
            "Progressing",
            ["Embedding: ", "S3 SlowDown"],
        ),
        "clustering": (
            [Observed(rayjob=running), stage2("Running", state="RUNNING")],
            "Progressing",
            ["Clustering: ", "r42-kmeans", "77"],
        ),
        "succeeded": (
            [Observed(rayjob=running), stage2("Running"), stage2("Succeeded", exit_code=0)],
            "Healthy",
            [],
        ),
        "failed-input": (
            [Observed(rayjob=running), Observed(rayjob=running, failure=bad_input)],
            "Degraded",
            ["Failed: InvalidInput: ", "record 12"],
        ),
        "failed-slurm": (
            [stage2("Running"), stage2("Failed", state="NODE_FAIL", reason="NodeDown")],
            "Degraded",
            ["Failed: SlurmJobFailed: ", "NODE_FAIL"],
        ),
        "cancelled-slurm": (
            [stage2("Running"), stage2("Cancelled", state="CANCELLED")],
            "Degraded",
            ["Failed: SlurmJobCancelled: "],
        ),
    }


OPERATOR_SCENARIOS = [
    "pending",
    "embedding",
    "embedding-waiting",
    "clustering",
    "succeeded",
    "failed-input",
    "failed-slurm",
    "cancelled-slurm",
]


@pytest.mark.parametrize("name", OPERATOR_SCENARIOS)
def test_health_of_statuses_the_operator_computes(run_health: RunHealth, name: str) -> None:
    """The health script reads what vectorpipe_operator.status really writes."""
    from vectorpipe_operator.status import compute_status

    passes, expected, fragments = _operator_scenarios()[name]
    status: dict[str, Any] = {}
    for minute, observed in enumerate(passes):
        status = compute_status(
            generation=2,
            old=status,
            output_uri="s3://b/runs/r42/",
            observed=observed,
            now=f"2025-03-01T10:{minute:02d}:00Z",
        )
    obj = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": "r42", "generation": 2},
        "status": status,
    }
    health = run_health(HEALTH_DIR / "vectorpipeline.lua", obj)
    assert health["status"] == expected, health
    for fragment in fragments:
        assert fragment in health["message"], health


# --- the scripts under a sandbox exactly as strict as Argo CD's -----------------


_LUA_TOKENS = re.compile(
    r"""--\[(?P<eq>=*)\[.*?\](?P=eq)\]"""  # long comment
    r"""|--[^\n]*"""  # line comment
    r"""|\[(?P<eq2>=*)\[.*?\](?P=eq2)\]"""  # long string
    r"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""",  # short strings
    re.DOTALL,
)


def _code_only(source: str) -> str:
    """Lua source with comments removed and every string literal emptied."""
    return _LUA_TOKENS.sub(lambda m: "" if m.group(0).startswith("--") else '""', source)


@pytest.mark.parametrize("script", sorted(HEALTH_DIR.glob("*.lua")), ids=lambda p: p.name)
def test_scripts_use_no_library_argo_cd_withholds(script: Path) -> None:
    """Static belt to the runtime braces above: branches a fixture misses would
    still fail in Argo CD if they reached for a library it does not open."""
    code = _code_only(script.read_text(encoding="utf-8"))
    for pattern in (
        r"\b(?:string|math|os|io|debug|coroutine|channel)\s*\.",  # a library Argo CD withholds
        r"\brequire\b",
        r"[\w\)\]\"]\s*:\s*[A-Za-z_]\w*\s*[\(\"{]",  # a method call, e.g. s:find(...)
        r"\bsetfenv\b|\bgetfenv\b|\bloadstring\b|\bdofile\b",
    ):
        found = re.search(pattern, code)
        assert found is None, f"{script.name} uses {found.group(0)!r}"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("VectorPipeline", "weird"),
        ("VectorPipeline", ["a", "list"]),
        ("VectorPipeline", {"phase": 3, "conditions": [1, "x", {"status": 5}]}),
        (
            "VectorPipeline",
            {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]},
        ),
        ("SlurmJob", 12),
        ("SlurmJob", {"phase": "Failed", "state": {"a": 1}, "exitCode": {"code": 2}}),
        (
            "SlurmJob",
            {"phase": "Submitted", "state": ["PENDING", 7, ""], "reason": ["JobHeldUser"]},
        ),
    ],
)
def test_malformed_status_never_raises(run_health: RunHealth, kind: str, status: Any) -> None:
    script = HEALTH_DIR / f"{kind.lower()}.lua"
    obj = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": kind,
        "metadata": {"generation": 1},
        "status": status,
    }
    out = run_health(script, obj)
    assert out["status"] in ARGO_STATUSES
    assert isinstance(out["message"], str)


@pytest.mark.parametrize("script", ["vectorpipeline.lua", "slurmjob.lua"])
def test_object_without_metadata(run_health: RunHealth, script: str) -> None:
    assert run_health(HEALTH_DIR / script, {})["status"] == "Progressing"


_words = st.sampled_from(["", "True", "False", "PENDING", "JobHeldUser", "Ready", 'x"y', "é"])
json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-1e3, 1e3) | _words
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["phase", "type", "status", "message", "a"]), inner, max_size=3
        )
    ),
    max_leaves=5,
)


@st.composite
def statuses(draw: st.DrawFn, phases: list[str]) -> dict[str, Any]:
    keys = ["observedGeneration", "conditions", "state", "reason", "message", "jobId", "exitCode", "ray", "slurm", "outputs"]  # fmt: skip
    status: dict[str, Any] = {"phase": draw(st.sampled_from([*phases, "Other", ""]) | json_values)}
    for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=5)):
        if key == "conditions":
            cond = st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["Ready", "EmbeddingComplete", "Submitted"]),
                    "status": st.sampled_from(["True", "False", "Unknown"]) | json_values,
                },
                optional={
                    "reason": json_values,
                    "message": json_values,
                    "lastTransitionTime": json_values,
                },
            )
            status[key] = draw(st.lists(cond | json_values, max_size=4))
        elif key == "observedGeneration":
            status[key] = draw(st.integers(0, 4) | json_values)
        else:
            status[key] = draw(json_values)
    return status


def _batch(lua_health: Path, script: Path, objects: list[dict[str, Any]]) -> list[Any]:
    proc = subprocess.run(
        [str(lua_health), "-batch", str(script), "-"],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(proc.stdout))


@pytest.mark.parametrize(
    ("kind", "phases"), [("VectorPipeline", VP_PHASES), ("SlurmJob", SJ_PHASES)]
)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_status_gives_a_valid_health(
    lua_health: Path, kind: str, phases: list[str], data: st.DataObject
) -> None:
    """Whatever the controllers write, the script never raises (Argo CD would show
    a Lua error instead of a health) and always returns a status Argo CD accepts."""
    objects = [
        {
            "kind": kind,
            "metadata": {"generation": data.draw(st.integers(1, 4) | json_values)},
            "spec": {"suspend": data.draw(json_values)},
            "status": data.draw(statuses(phases)),
        }
        for _ in range(12)
    ]
    results = _batch(lua_health, HEALTH_DIR / f"{kind.lower()}.lua", objects)
    for obj, res in zip(objects, results, strict=True):
        assert "error" not in res, (obj, res)
        assert set(res["result"]) == {"status", "message"}, (obj, res)
        assert res["result"]["status"] in ARGO_STATUSES - {"Missing"}
        assert isinstance(res["result"]["message"], str)


# --- the harness itself behaves like Argo CD's util/lua --------------------------


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "probe.lua"
    path.write_text(body, encoding="utf-8")
    return path


def test_harness_sandbox_matches_argo_cd(run_health: RunHealth, tmp_path: Path) -> None:
    probe = _script(
        tmp_path,
        """
        local os_mod = require("os")
        return {
          string = type(string), math = type(math), io = type(io), os = type(os),
          debug = type(debug), table = type(table), require = type(require),
          os_time = type(os_mod.time), os_date = type(os_mod.date),
          os_exit = type(os_mod.exit), os_execute = type(os_mod.execute),
        }
        """,
    )
    assert run_health(probe, {}) == {
        "string": "nil", "math": "nil", "io": "nil", "os": "nil", "debug": "nil",
        "table": "table", "require": "function",
        "os_time": "function", "os_date": "function", "os_exit": "nil", "os_execute": "nil",
    }  # fmt: skip
    opened = run_health(probe, {}, "-open-libs")
    assert opened["string"] == opened["math"] == opened["os"] == "table"


def test_harness_strings_have_no_methods(run_health: RunHealth, tmp_path: Path) -> None:
    probe = _script(tmp_path, 'return {status = ("abc"):upper()}')
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_health(probe, {})
    assert "string" in err.value.stderr or "non-table" in err.value.stderr
    assert run_health(probe, {}, "-open-libs") == {"status": "ABC"}


def test_harness_decodes_obj_like_argo_cd(run_health: RunHealth, tmp_path: Path) -> None:
    probe = _script(
        tmp_path,
        """
        return {
          gen = type(obj.metadata.generation), gen1 = obj.metadata.generation + 1,
          ratio = obj.spec.tolerance * 2, list = #obj.spec.list, second = obj.spec.list[2],
          null = type(obj.spec.gone), bool = type(obj.spec.flag), nested = obj.spec.deep.er[1].x,
        }
        """,
    )
    obj = {
        "metadata": {"generation": 7},
        "spec": {"tolerance": 1e-4, "list": ["a", "b", "c"], "gone": None, "flag": False,
                 "deep": {"er": [{"x": "y"}]}},
    }  # fmt: skip
    out = run_health(probe, obj)
    assert out["gen"] == "number"
    assert out["gen1"] == 8
    assert math.isclose(out["ratio"], 2e-4)
    assert out == {**out, "list": 3, "second": "b", "null": "nil", "bool": "boolean", "nested": "y"}


def test_harness_result_rules(run_health: RunHealth, tmp_path: Path) -> None:
    # An invalid status is turned into Unknown by Argo CD.
    bad = _script(tmp_path, 'return {status = "Great", message = "hi"}')
    assert run_health(bad, {}) == {"status": "Great", "message": "hi"}
    assert run_health(bad, {}, "-argocd") == {
        "status": "Unknown",
        "message": "Lua returned an invalid health status",
    }
    # nil and an empty table give an empty health status.
    assert run_health(_script(tmp_path, "return nil"), {}, "-argocd") == {
        "status": "",
        "message": "",
    }
    assert run_health(_script(tmp_path, "return {}"), {}) == []
    assert run_health(_script(tmp_path, "return {}"), {}, "-argocd") == {
        "status": "",
        "message": "",
    }
    # A non-string message does not decode into Argo CD's HealthStatus: empty status.
    assert run_health(_script(tmp_path, 'return {status="Healthy", message=5}'), {}, "-argocd") == {
        "status": "",
        "message": "",
    }
    # A non-table result and a runtime error are errors.
    for body in ('return "Healthy"', 'error("boom")', "return obj.nope.deeper"):
        with pytest.raises(subprocess.CalledProcessError):
            run_health(_script(tmp_path, body), {})


def test_harness_enforces_the_one_second_deadline(run_health: RunHealth, tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_health(_script(tmp_path, "while true do end"), {})
    assert "context deadline exceeded" in err.value.stderr


def test_build_is_a_noop_when_built(lua_health: Path) -> None:
    before = lua_health.stat().st_mtime_ns
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "lua" / "build.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == str(lua_health)
    assert lua_health.stat().st_mtime_ns == before


# --- second opinion: the reference Lua 5.1 interpreter ---------------------------

LUA51 = shutil.which("lua5.1")


def _lua_literal(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            ch
            if 32 <= ord(ch) < 127 and ch not in '"\\'
            else "".join(f"\\{b:03d}" for b in ch.encode())
            for ch in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{_lua_literal(str(k))}] = {_lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(type(value))


@pytest.mark.skipif(LUA51 is None, reason="Debian's lua5.1 is not installed (second opinion only)")
@pytest.mark.parametrize(("script", "fixture", "expected"), CASES)
def test_health_under_reference_lua51(
    script: Path, fixture: Path, expected: dict[str, str], tmp_path: Path
) -> None:
    obj_file = tmp_path / "obj.lua"
    obj_file.write_text("return " + _lua_literal(_load(fixture)) + "\n", encoding="utf-8")
    proc = subprocess.run(
        [str(LUA51), str(Path(__file__).with_name("lua51_runner.lua")), str(script), str(obj_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
