"""The batch job the bridge builds from a SlurmJob: launch lines, quoting, the request.

The hostile-string tests do not only look at the text: they run the generated
script with the real bash (launcher `none`, command `printf`) and check that
every argument arrives byte for byte and that nothing the strings try to do
(command substitution, backticks, `;`, newlines, globbing) happens.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge.client.models import check_script
from slurm_bridge.script import (
    Identity,
    ScriptOptions,
    build_request,
    job_key,
    job_name,
    launch_argv,
    render_script,
    time_limit_minutes,
)
from vectorpipe_api.slurmjob import SlurmJobSpec

UID = "6c1e0f7a-2b1d-4b8e-a1f0-5d9e2c7b4a31"
IDENT = Identity("ns1", "r42-kmeans", UID, 1)


def spec(**kw: Any) -> SlurmJobSpec:
    return SlurmJobSpec.model_validate(kw)


def hostile(tmp: Path) -> list[str]:
    pwned = tmp / "pwned"
    return [
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        f"; touch {pwned}; rm -rf {tmp}/nothing",
        f"a\ntouch {pwned}\n",
        f"' ; touch {pwned} ; '",
        f'" ; touch {pwned} ; "',
        "${HOME} $PATH *",
        f"&& touch {pwned} || true | cat > {pwned}",
        "-n",
        "",
        "tab\there\\back\\slash",
        "ünïcödé ✓",
    ]


def run_bash(script: str, tmp: Path, env: dict[str, str] | None = None) -> str:
    path = tmp / "job.sh"
    path.write_text(script)
    proc = subprocess.run(
        ["bash", str(path)], capture_output=True, text=True, cwd=tmp, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_mpirun_line_quotes_every_word_and_uses_the_rank_count() -> None:
    s = spec(command=["python", "-m", "app", "--out", "s3://b/x y/"], nodes=2, ntasksPerNode=4)
    assert launch_argv(s, ScriptOptions()) == [
        "mpirun", "-n", "8", "python", "-m", "app", "--out", "s3://b/x y/",
    ]  # fmt: skip
    script = render_script(s, IDENT, ScriptOptions())
    assert script.startswith("#!/bin/bash\n")
    assert script.splitlines()[-1] == "exec mpirun -n 8 python -m app --out 's3://b/x y/'"
    check_script(script)


def test_allow_run_as_root_only_when_the_bridge_is_told_so() -> None:
    s = spec(command=["true"], launcherArgs=["--oversubscribe"])
    assert "--allow-run-as-root" not in render_script(s, IDENT, ScriptOptions())
    line = render_script(s, IDENT, ScriptOptions(mpirun_allow_run_as_root=True)).splitlines()[-1]
    assert line == "exec mpirun -n 1 --allow-run-as-root --oversubscribe true"


def test_srun_and_no_launcher() -> None:
    srun = spec(command=["./app", "x"], launcher="srun", launcherArgs=["--cpu-bind=cores"])
    assert launch_argv(srun, ScriptOptions()) == [
        "srun",
        "--mpi=pmix",
        "--cpu-bind=cores",
        "./app",
        "x",
    ]
    none = spec(command=["hostname"], launcher="none")
    assert render_script(none, IDENT, ScriptOptions()).splitlines()[-1] == "exec hostname"


def test_a_given_script_is_used_verbatim() -> None:
    text = "#!/bin/bash\n#SBATCH --exclusive\necho $(hostname) `date`\n"
    assert render_script(spec(script=text), IDENT, ScriptOptions()) == text


@pytest.mark.faults
def test_hostile_command_words_reach_the_program_verbatim(tmp_path: Path) -> None:
    words = hostile(tmp_path)
    s = spec(command=["printf", "<%s>\\n", *words], launcher="none")
    script = render_script(s, IDENT, ScriptOptions())
    out = run_bash(script, tmp_path)
    assert out == "".join(f"<{w}>\n" for w in words)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.faults
def test_hostile_launcher_args_are_quoted_too(tmp_path: Path) -> None:
    words = hostile(tmp_path)
    s = spec(command=["<end>"], launcher="none", launcherArgs=["printf", "<%s>\\n", *words])
    out = run_bash(render_script(s, IDENT, ScriptOptions()), tmp_path)
    assert out == "".join(f"<{w}>\n" for w in [*words, "<end>"])
    assert not (tmp_path / "pwned").exists()


def test_every_launch_line_word_is_one_shell_word(tmp_path: Path) -> None:
    words = hostile(tmp_path)
    s = spec(command=["app", *words], launcherArgs=words)
    line = render_script(s, IDENT, ScriptOptions()).split("\nexec ", 1)[1]
    assert shlex.split(line) == ["mpirun", "-n", "1", *words, "app", *words]


@pytest.mark.faults
def test_environment_never_enters_the_script(tmp_path: Path) -> None:
    env = {"EVIL": f"$(touch {tmp_path}/pwned)", "MULTI": "a\nb; rm -rf /"}
    s = spec(command=["printenv", "EVIL"], launcher="none", environment=env)
    req = build_request(s, IDENT, ScriptOptions())
    assert "touch" not in req.script and "rm -rf" not in req.script
    assert req.environment == env
    # What Slurm does with the environment field: plain variables, no evaluation.
    out = run_bash(req.script, tmp_path, env={"PATH": "/usr/bin:/bin", **env})
    assert out == env["EVIL"] + "\n"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.faults
def test_identity_in_the_header_cannot_break_out_of_the_comment() -> None:
    ident = Identity("ns\nrm -rf /", "x`id`", "u$(id)", 2)
    script = render_script(spec(command=["true"]), ident, ScriptOptions())
    lines = script.splitlines()
    assert len(lines) == 4 and lines[1].startswith("# ") and lines[2].startswith("# ")
    assert "`" not in lines[1] and "$(" not in lines[1]


def test_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        render_script(spec(command=["echo", "a\x00b"]), IDENT, ScriptOptions())


def test_request_carries_uid_in_name_and_comment_and_the_sizes() -> None:
    s = spec(
        command=["app"],
        nodes=2,
        ntasksPerNode=3,
        cpusPerTask=2,
        partition="compute",
        timeLimit="1-00:00:30",
        account="proj",
        qos="high",
        environment={"A": "spec"},
        workingDirectory="/fsx/run",
        output="/fsx/run/%j.out",
        error="/fsx/run/%j.err",
    )
    opts = ScriptOptions(job_environment={"A": "site", "PATH": "/opt/bin:/usr/bin"})
    req = build_request(s, Identity("ns1", "r42-kmeans", UID, 3), opts)
    assert req.comment == f"vectorpipe.io/slurmjob={UID}/attempt=3" == job_key(UID, 3)
    assert UID in req.name and req.name == job_name(Identity("ns1", "r42-kmeans", UID, 3))
    assert (req.nodes, req.ntasks, req.ntasks_per_node, req.cpus_per_task) == (2, 6, 3, 2)
    assert (req.partition, req.account, req.qos) == ("compute", "proj", "high")
    assert req.time_limit == 24 * 60 + 1
    assert req.environment == {"A": "spec", "PATH": "/opt/bin:/usr/bin"}
    assert req.current_working_directory == "/fsx/run"
    assert (req.standard_output, req.standard_error) == ("/fsx/run/%j.out", "/fsx/run/%j.err")
    assert req.requeue is False  # retries are the SlurmJob's backoffLimit, never Slurm's requeue


def test_default_working_directory_applies_only_when_the_spec_has_none() -> None:
    opts = ScriptOptions(default_working_directory="/tmp")
    assert build_request(spec(command=["a"]), IDENT, opts).current_working_directory == "/tmp"
    s = spec(command=["a"], workingDirectory="/w")
    assert build_request(s, IDENT, opts).current_working_directory == "/w"


def test_keys_differ_per_attempt_and_per_uid() -> None:
    assert len({job_key(UID, 1), job_key(UID, 2), job_key("other", 1)}) == 3


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("30", 30),
        ("0", 1),
        ("01:00:00", 60),
        ("00:00:01", 1),
        ("00:01:01", 2),
        ("2-03:04:00", 3064),
    ],
)
def test_time_limit_minutes(value: str, minutes: int) -> None:
    assert time_limit_minutes(value) == minutes


def test_the_operators_slurmjob_becomes_an_mpirun_kmeans_job() -> None:
    """What `vectorpipe_operator.builders.build_slurmjob` creates is what the bridge runs."""
    import yaml

    from vectorpipe_operator.builders import build_slurmjob
    from vectorpipe_operator.resources import Pipeline

    body = yaml.safe_load((Path(__file__).parents[2] / "examples" / "pipeline-s3.yaml").read_text())
    body["metadata"].update(uid=UID, namespace="team-a", generation=1)
    p = Pipeline.from_body(body)
    manifest = "s3://vectorpipe-runs/gut/r42/_manifest.json"
    sj = build_slurmjob(p, manifest)
    s = SlurmJobSpec.model_validate(sj["spec"])
    ident = Identity(p.namespace, sj["metadata"]["name"], UID, 1)
    req = build_request(s, ident, ScriptOptions(mpirun_allow_run_as_root=True))
    line = shlex.split(req.script.splitlines()[-1])
    assert line[:4] == ["exec", "mpirun", "-n", str(s.ranks)]
    assert line[4] == "--allow-run-as-root"
    assert line[5:] == sj["spec"]["command"]
    assert "--manifest" in line and manifest in line
    assert "--s3-region" in line and "AWS_REGION" not in (req.environment or {})
    assert (req.nodes, req.ntasks_per_node, req.partition) == (4, 16, "compute")
    assert req.time_limit == 120
