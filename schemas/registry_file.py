"""The versioned registry file ``registry.json``: schema ids that never change.

For each subject it lists every version ever published, each with a globally unique id. The
``.avsc`` files are the current contract; ``--update`` appends a version for every subject whose
``.avsc`` changed, but only when the new schema still reads every earlier version
(BACKWARD_TRANSITIVE). ``--check`` fails when the two disagree.

    python -m schemas.registry_file --check
    python -m schemas.registry_file --update
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from schemas import catalog
from schemas.compatibility import backward_transitive_problems
from schemas.source import SchemaSourceError

REGISTRY_PATH = catalog.SCHEMA_DIR / "registry.json"


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    id: int
    schema: dict


class IncompatibleSchema(Exception):
    """A changed ``.avsc`` cannot read the data of an earlier version of its subject."""

    def __init__(self, subject: str, problems: list[str]):
        super().__init__(f"{subject}: not BACKWARD_TRANSITIVE compatible: " + "; ".join(problems))
        self.subject = subject
        self.problems = problems


def load(path: Path = REGISTRY_PATH) -> dict[str, list[SchemaVersion]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        subject: [SchemaVersion(v["version"], v["id"], v["schema"]) for v in versions]
        for subject, versions in raw.items()
    }


def save(registry: dict[str, list[SchemaVersion]], path: Path = REGISTRY_PATH) -> None:
    raw = {
        subject: [{"version": v.version, "id": v.id, "schema": v.schema} for v in versions]
        for subject, versions in registry.items()
    }
    text = json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    # Write beside the target and rename, so a crash never leaves half a registry behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def check(registry_path: Path = REGISTRY_PATH, schema_dir: Path = catalog.SCHEMA_DIR) -> list[str]:
    """Every way the registry file and the ``.avsc`` files disagree; empty when they agree."""
    registry = load(registry_path)
    problems = _integrity_problems(registry)
    for subject, cls in catalog.subjects().items():
        versions = registry.get(subject)
        if not versions:
            problems.append(f"{subject}: not in the registry file")
            continue
        current = catalog.load_schema(cls.__name__, schema_dir)
        if catalog.canonical(current) != catalog.canonical(versions[-1].schema):
            problems.append(
                f"{subject}: {cls.__name__}.avsc differs from its latest version "
                f"{versions[-1].version} (id {versions[-1].id})"
            )
    return problems


def update(registry_path: Path = REGISTRY_PATH, schema_dir: Path = catalog.SCHEMA_DIR) -> list[str]:
    """Append a version for every changed or new subject; all or nothing.

    Raises ``IncompatibleSchema`` (and writes nothing) when a changed schema cannot read an
    earlier version of its subject. Returns one line per appended version.
    """
    registry = load(registry_path)
    next_id = max((v.id for versions in registry.values() for v in versions), default=0) + 1
    appended = []
    for subject, cls in catalog.subjects().items():
        versions = registry.setdefault(subject, [])
        current = catalog.load_schema(cls.__name__, schema_dir)
        if versions and catalog.canonical(current) == catalog.canonical(versions[-1].schema):
            continue
        problems = backward_transitive_problems(
            current, ((f"version {v.version} (id {v.id})", v.schema) for v in versions)
        )
        if problems:
            raise IncompatibleSchema(subject, problems)
        versions.append(SchemaVersion(len(versions) + 1, next_id, current))
        appended.append(f"{subject}: version {len(versions)}, id {next_id}")
        next_id += 1
    if appended:
        save(registry, registry_path)
    return appended


def _integrity_problems(registry: dict[str, list[SchemaVersion]]) -> list[str]:
    problems = []
    seen: dict[int, str] = {}
    for subject, versions in registry.items():
        if [v.version for v in versions] != list(range(1, len(versions) + 1)):
            problems.append(f"{subject}: versions are not numbered 1, 2, 3, ...")
        for v in versions:
            if v.id in seen:
                problems.append(f"{subject}: id {v.id} is also used by {seen[v.id]}")
            seen[v.id] = subject
    return problems


class RegistryFile:
    """Schema source backed by ``registry.json``: the default when no registry is configured."""

    def __init__(self, path: Path = REGISTRY_PATH):
        registry = load(path)
        self._by_id = {v.id: v.schema for versions in registry.values() for v in versions}
        # Later versions win, so a schema that was published twice maps to its newest id.
        self._ids = {
            (subject, catalog.canonical(v.schema)): v.id
            for subject, versions in registry.items()
            for v in versions
        }

    def id_for(self, subject: str, schema: dict) -> int:
        try:
            return self._ids[subject, catalog.canonical(schema)]
        except KeyError:
            raise SchemaSourceError(
                f"subject {subject}: schema is not in the registry file "
                "(run: python -m schemas.registry_file --update)"
            ) from None

    def schema_for(self, schema_id: int) -> dict | None:
        return self._by_id.get(schema_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.registry_file", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="fail when the .avsc files and the registry file disagree")
    action.add_argument("--update", action="store_true", help="append a version for every changed schema")
    parser.add_argument("--registry", type=Path, default=REGISTRY_PATH, help="registry file (default: %(default)s)")
    parser.add_argument("--schemas", type=Path, default=catalog.SCHEMA_DIR, help="folder of .avsc files")
    args = parser.parse_args(argv)

    if args.check:
        problems = check(args.registry, args.schemas)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m schemas.registry_file --update", file=sys.stderr)
            return 1
        print(f"{args.registry.name} matches the .avsc files")
        return 0

    try:
        appended = update(args.registry, args.schemas)
    except IncompatibleSchema as refused:
        print(f"refused: {refused.subject}: the new schema is not BACKWARD_TRANSITIVE compatible", file=sys.stderr)
        for problem in refused.problems:
            print(f"  {problem}", file=sys.stderr)
        print("nothing was written; give new fields a default, and keep the type of existing fields", file=sys.stderr)
        return 1
    for line in appended:
        print(line)
    if not appended:
        print(f"{args.registry.name} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
