"""Registry of external, user-supplied checkpoints (``models/registry.yaml``) with checksums.

Weights that cannot ship with twinflow (Stable Diffusion, wav2vec2, SMPL-X, ...) are listed with
their licence and source. A stage calls :func:`resolve` before it reads one; that checks the file
exists and matches its recorded sha256, so a truncated download or a wrong file fails with a clear
message instead of a shape error deep inside a model.

CLI: ``python -m twinflow.models list | verify [NAME...] | record NAME | checksum PATH``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from twinflow.errors import ModelFileError
from twinflow.sheets import load_schema

REGISTRY = Path("models/registry.yaml")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str | None
    licence: str
    source: str
    used_by: tuple[str, ...]
    description: str = ""


def load_registry(path: str | Path = REGISTRY) -> dict[str, ModelEntry]:
    """Parse and schema-check the registry."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    try:
        jsonschema.validate(data, load_schema("models"))
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.path))
        raise ModelFileError(f"invalid registry at '{where}': {err.message}", path=path) from err
    return {
        name: ModelEntry(name=name, **{**e, "used_by": tuple(e["used_by"])})
        for name, e in (data.get("models") or {}).items()
    }


def checksum(path: str | Path) -> str:
    """sha256 of a file, or of a folder's sorted ``"<sha256>  <relative path>"`` lines."""
    path = Path(path)
    if path.is_dir():
        lines = sorted(
            f"{checksum(f)}  {f.relative_to(path).as_posix()}"
            for f in path.rglob("*")
            if f.is_file()
        )
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name: str, registry: str | Path = REGISTRY) -> Path:
    """The verified path of model ``name``; :class:`ModelFileError` if missing or mismatching."""
    registry = Path(registry)
    entries = load_registry(registry)
    if name not in entries:
        raise ModelFileError(f"model '{name}' is not in the registry", path=registry)
    entry = entries[name]
    path = registry.parent / entry.file
    if not path.exists():
        raise ModelFileError(
            f"model '{name}' is not supplied: put it at {path} (source: {entry.source}; "
            f"licence: {entry.licence}), then run `python -m twinflow.models record {name}`",
            path=path,
        )
    if entry.sha256 is None:
        raise ModelFileError(
            f"model '{name}' has no recorded checksum; run `python -m twinflow.models record {name}`",
            path=path,
        )
    actual = checksum(path)
    if actual != entry.sha256:
        raise ModelFileError(
            f"checksum mismatch for model '{name}': expected {entry.sha256}, got {actual}",
            path=path,
        )
    return path


def record(name: str, registry: str | Path = REGISTRY) -> str:
    """Compute the supplied file's checksum and write it into the registry; returns it."""
    registry = Path(registry)
    entries = load_registry(registry)
    if name not in entries:
        raise ModelFileError(f"model '{name}' is not in the registry", path=registry)
    digest = checksum(registry.parent / entries[name].file)
    data = yaml.safe_load(registry.read_text())
    data["models"][name]["sha256"] = digest
    registry.write_text(yaml.safe_dump(data, sort_keys=False))
    return digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.models", description=__doc__)
    p.add_argument("--registry", default=str(REGISTRY))
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    v = sub.add_parser("verify")
    v.add_argument("names", nargs="*")
    r = sub.add_parser("record")
    r.add_argument("name")
    c = sub.add_parser("checksum")
    c.add_argument("path")
    args = p.parse_args(argv)
    try:
        if args.cmd == "list":
            for e in load_registry(args.registry).values():
                path = Path(args.registry).parent / e.file
                state = "present" if path.exists() else "not supplied"
                print(f"{e.name:24s} {state:13s} {e.licence:28s} used by {', '.join(e.used_by)}")
        elif args.cmd == "verify":
            names = args.names or [
                n
                for n, e in load_registry(args.registry).items()
                if (Path(args.registry).parent / e.file).exists()
            ]
            for n in names:
                print(f"{n}: ok ({resolve(n, args.registry)})")
        elif args.cmd == "record":
            print(record(args.name, args.registry))
        else:
            print(checksum(args.path))
    except ModelFileError as err:
        print(f"twinflow error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
