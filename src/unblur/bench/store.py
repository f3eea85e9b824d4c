"""The results file of a run: one JSON object per line (JSONL), appended atomically per case.

Each finished case is one ``write`` of one line on a file opened with ``O_APPEND`` followed by
``fsync``, so an interrupted run leaves whole lines (a torn last line, if the machine died mid-write, is
ignored on reading).  ``--resume`` reads the file and runs only the cases whose id is not in it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return _clean(v.item())
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def append_record(path: str | Path, record: dict) -> None:
    """Append ``record`` as one line, atomically (one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``)."""
    line = (json.dumps(_clean(record), sort_keys=True, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str | Path) -> list[dict]:
    """All complete records of a results file (a torn last line is skipped); [] when there is no file."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_json_atomic(path: str | Path, obj) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=1, sort_keys=True))
    os.replace(tmp, p)
