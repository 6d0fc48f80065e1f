#!/usr/bin/env python3
"""Print the part of requirements.lock one image needs, hashes and all.

    python3 images/lock_subset.py --extra operator [--exclude PKG ...] \
        [--add-lock images/ray-worker/ray-default.lock] \
        [--pyproject pyproject.toml] [--lock requirements.lock] > requirements.txt

requirements.lock pins every extra of the `vectorpipe` distribution together
(`uv pip compile --all-extras --generate-hashes`). An image installs only the
core dependencies plus the extra it needs: the roots are read from
pyproject.toml, and the lock's own `# via` annotations (which package pulled in
which) give the transitive closure. The output is a hash-pinned requirements
file for `pip install --require-hashes --no-deps`, so nothing is resolved or
left unpinned at build time; `pip check` afterwards proves the subset is closed.
`--add-lock` merges in a second hash-pinned lock for what one image needs beyond
the project's extras (the ray-worker's `ray[default]`), compiled with
requirements.lock as constraints: a package both pin must have the same version
in both, so the two cannot drift apart unnoticed.

Standard library only: it runs in the image's builder stage before anything is
installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str
    lines: list[str] = field(default_factory=list)  # the requirement + hash lines
    via: set[str] = field(default_factory=set)  # canonical names; "" = the project itself

    @property
    def version(self) -> str:
        return self.lines[0].split("==", 1)[1].split()[0].split(";")[0]


def parse_lock(text: str, project: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.rstrip()
        match = _PIN.match(line)
        if match:
            current = Pin(canonical(match.group(1)), [line])
            pins[current.name] = current
            in_via = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash="):
            current.lines.append(line)
        elif stripped.startswith("# via"):
            rest = stripped[len("# via") :].strip()
            in_via = not rest
            if rest:
                current.via.add(_via_name(rest, project))
        elif in_via and stripped.startswith("#   "):
            current.via.add(_via_name(stripped[1:].strip(), project))
        elif stripped and not stripped.startswith("#"):
            in_via = False
    return pins


def _via_name(entry: str, project: str) -> str:
    # "vectorpipe (/path/pyproject.toml)", "-r requirements.in" -> the project itself
    if entry.startswith("-r ") or entry.startswith("-c "):
        return ""
    name = canonical(entry.split()[0].split("[")[0])
    return "" if name == project else name


def roots(pyproject: dict[str, Any], extras: list[str]) -> set[str]:
    project = pyproject["project"]
    name = canonical(project["name"])
    optional = project.get("optional-dependencies", {})
    out: set[str] = set()
    for extra in extras:
        if extra not in optional:
            raise SystemExit(
                f"lock_subset: pyproject.toml has no extra {extra!r} (has {sorted(optional)})"
            )
    todo = [("", project.get("dependencies", []))]
    todo += [(extra, optional[extra]) for extra in extras]
    seen_extras = set(extras)
    while todo:
        _, reqs = todo.pop()
        for req in reqs:
            match = _NAME.match(req)
            if not match:
                raise SystemExit(f"lock_subset: cannot parse requirement {req!r}")
            req_name = canonical(match.group(1))
            if req_name == name:  # self-reference such as vectorpipe[workloads]
                for extra in (match.group(2) or "[]")[1:-1].split(","):
                    extra = extra.strip()
                    if extra and extra not in seen_extras:
                        seen_extras.add(extra)
                        todo.append((extra, optional[extra]))
                continue
            out.add(req_name)
    return out


def subset(pins: dict[str, Pin], wanted: set[str], exclude: set[str]) -> list[Pin]:
    missing = sorted(wanted - set(pins) - exclude)
    if missing:
        raise SystemExit(f"lock_subset: not in the lock (run `make lock`): {', '.join(missing)}")
    chosen = set(wanted) - exclude
    changed = True
    while changed:
        changed = False
        for pin in pins.values():
            if pin.name not in chosen and pin.name not in exclude and pin.via & chosen:
                chosen.add(pin.name)
                changed = True
    return [pins[n] for n in sorted(chosen)]


def merge(
    chosen: list[Pin], locked: dict[str, Pin], added: dict[str, Pin], exclude: set[str], source: str
) -> list[Pin]:
    """The chosen pins plus every pin of a second lock, which must agree with the first."""
    out = {pin.name: pin for pin in chosen}
    for name, pin in added.items():
        if name in exclude:
            continue
        known = locked.get(name)
        if known is not None and known.version != pin.version:
            raise SystemExit(
                f"lock_subset: {source} pins {name}=={pin.version} but the lock has "
                f"{name}=={known.version}; regenerate {source} (hack/images/lock-ray-default.sh)"
            )
        out.setdefault(name, known or pin)
    return [out[n] for n in sorted(out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--extra", action="append", default=[], help="extra to include (repeatable)"
    )
    parser.add_argument(
        "--exclude", action="append", default=[], help="locked package to leave out"
    )
    parser.add_argument(
        "--add-lock",
        type=Path,
        action="append",
        default=[],
        help="second hash-pinned lock whose pins are all added (repeatable)",
    )
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    args = parser.parse_args(argv)

    pyproject = tomllib.loads(args.pyproject.read_text())
    project = canonical(pyproject["project"]["name"])
    pins = parse_lock(args.lock.read_text(), project)
    exclude = {canonical(e) for e in args.exclude}
    chosen = subset(pins, roots(pyproject, args.extra), exclude)
    extras = ",".join(args.extra) or "(core)"
    sys.stdout.write(
        f"# {project}[{extras}]: {len(chosen)} of {len(pins)} pins from {args.lock.name}\n"
    )
    for path in args.add_lock:
        before = len(chosen)
        chosen = merge(chosen, pins, parse_lock(path.read_text(), project), exclude, path.name)
        sys.stdout.write(f"# + {len(chosen) - before} pins from {path.name}\n")
    for pin in chosen:
        lines = list(pin.lines)
        lines[-1] = lines[-1].rstrip(" \\")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
