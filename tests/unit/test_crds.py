"""The generated CRDs: up to date with the models, structural, and carrying the rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GEN = REPO / "hack" / "gen_crds.py"
CRDS = REPO / "charts" / "vectorpipe" / "crds"


def _load_gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_crds", GEN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_gen()


def crd(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CRDS / f"vectorpipe.io_{name}.yaml").read_text())
    return data


def schema(name: str) -> dict[str, Any]:
    (version,) = crd(name)["spec"]["versions"]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_generated_files_are_up_to_date() -> None:
    """Fails when a model changed and `hack/gen_crds.py` (make crds) was not run."""
    res = subprocess.run(
        [sys.executable, str(GEN), "--check"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr


def test_check_reports_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "OUT_DIR", tmp_path)
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert len(gen.check()) == 2  # nothing written yet: both files are stale
    assert gen.main([]) == 0
    assert gen.check() == []
    stale = tmp_path / "vectorpipe.io_slurmjobs.yaml"
    stale.write_text(stale.read_text().replace("maximum: 10000", "maximum: 9"))
    (drift,) = gen.check()
    assert "-                maximum: 9" in drift
    assert gen.main(["--check"]) == 1


@pytest.mark.parametrize("name", ["vectorpipelines", "slurmjobs"])
def test_schemas_are_structural(name: str) -> None:
    for path, node in walk(schema(name)):
        for bad in ("$ref", "anyOf", "allOf", "oneOf", "title", "$defs", "const"):
            assert bad not in node, f"{path} has {bad}"
        assert "type" in node, f"{path} has no type"
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert node["type"] == "object", path
            assert not ("additionalProperties" in node and "properties" in node), path
        if "default" in node:
            assert node["default"] is not None, path


def test_optional_subobjects_get_defaults_so_nested_defaults_apply() -> None:
    spec = schema("vectorpipelines")["properties"]["spec"]
    props = spec["properties"]
    # What `{}` becomes after defaulting: written out, because the API server
    # validates a default against the CEL rules without defaulting it first.
    assert props["embedding"]["default"] == {
        "method": "kmer",
        "k": 4,
        "canonical": True,
        "transform": "none",
        "seed": 0,
        "abundance": {"enabled": True, "k": 21, "scaled": 8, "tableBits": 22, "weight": 1.0},
    }
    assert props["embedding"]["properties"]["abundance"]["properties"]["tableBits"]["maximum"] == 28
    assert props["s3"]["default"] == {}
    assert props["ray"]["default"]["workers"] == props["ray"]["properties"]["workers"]["default"]
    assert props["ray"]["properties"]["workers"]["default"]["replicas"] == 1
    assert props["hpc"]["default"]["slurm"]["ntasksPerNode"] == 2
    assert props["hpc"]["default"]["app"]["clusters"] == 20
    assert props["hpc"]["default"]["app"]["nInit"] == 8
    # Required sub-objects, and those with required fields, get no default.
    assert "default" not in props["input"] and "default" not in props["output"]
    assert "default" not in props["hpc"]["properties"]["slurm"]["properties"]["tokenSecretRef"]
    assert spec["required"] == ["input", "output"]
    # Defaults, enums, bounds and patterns survive.
    emb = props["embedding"]["properties"]
    assert emb["k"] == {
        "description": "k-mer length (kmer: 2..8).",
        "type": "integer",
        "default": 4,
        "minimum": 2,
        "maximum": 31,
    }
    assert props["input"]["properties"]["format"]["enum"] == ["auto", "fastq", "fasta"]
    assert props["input"]["properties"]["uri"]["pattern"].startswith("^(s3://")


def test_cel_rules_from_the_models_and_immutability() -> None:
    root = schema("vectorpipelines")
    spec = root["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "self.input.uri != self.output.uri" in rules
    # Frozen within a run; a new spec.runId (a new run) may come with any edit.
    assert rules[-1] == (
        "(has(self.runId) ? self.runId : '') != (has(oldSelf.runId) ? oldSelf.runId : '')"
        " || self == oldSelf"
    )
    emb_rules = spec["properties"]["embedding"]["x-kubernetes-validations"]
    assert {r["message"] for r in emb_rules} >= {
        "kmer embeddings need 2 <= k <= 8",
        "transform is only valid for kmer",
    }
    assert [r["rule"] for r in root["x-kubernetes-validations"]] == [
        "self.metadata.name.size() + (has(self.spec.runId) ? self.spec.runId.size() + 1 : 0) <= 43",
        "self.metadata.name.matches('^[a-z]')",
    ]
    sj = schema("slurmjobs")["properties"]["spec"]
    assert sj["x-kubernetes-validations"][0]["message"] == (
        "exactly one of script or command must be set"
    )
    assert sj["x-kubernetes-validations"][-1]["rule"] == "self == oldSelf"


def test_names_columns_and_subresources() -> None:
    vp = crd("vectorpipelines")["spec"]
    assert vp["names"]["shortNames"] == ["vp", "vpipe"]
    assert "vectorpipe" in vp["names"]["categories"]
    (version,) = vp["versions"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == [
        "Phase",
        "Embedding",
        "Clustering",
        "Rows",
        "Age",
    ]
    sj = crd("slurmjobs")["spec"]
    assert sj["names"]["shortNames"] == ["sj"]
    assert sj["versions"][0]["subresources"] == {"status": {}}


def test_status_is_typed_with_standard_conditions() -> None:
    status = schema("vectorpipelines")["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == [
        "Pending",
        "Embedding",
        "Clustering",
        "Succeeded",
        "Failed",
    ]
    conds = status["properties"]["conditions"]
    assert conds["x-kubernetes-list-type"] == "map"
    assert conds["x-kubernetes-list-map-keys"] == ["type"]
    item = conds["items"]
    assert set(item["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    sj_status = schema("slurmjobs")["properties"]["status"]["properties"]
    assert sj_status["phase"]["enum"] == [
        "Pending",
        "Submitted",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]
    assert {"jobId", "state", "reason", "exitCode", "nodes", "startTime", "endTime"} <= set(
        sj_status
    )


def test_ambiguous_strings_are_quoted() -> None:
    text = (CRDS / "vectorpipe.io_vectorpipelines.yaml").read_text()
    assert "default: '01:00:00'" in text
    assert "default: '2.60.0'" in text


def test_structural_rejects_unions() -> None:
    with pytest.raises(gen.SchemaError):
        gen.structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {}, defaults=True)
    node = gen.structural(
        {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}], "default": None, "description": "d"},
        {"X": {"title": "X", "type": "object", "properties": {"a": {"const": "k", "title": "A"}}}},
        defaults=True,
    )
    assert node == {
        "type": "object",
        "properties": {"a": {"enum": ["k"]}},
        "description": "d",
    }
