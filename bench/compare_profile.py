"""Sample the gateway's Python process with py-spy while a load runs; summarise the stacks.

py-spy is looked up on PATH, then in ~/.cache/pmp-bench/tools (`python -m venv` there and
`pip install py-spy`); it needs ptrace rights over the gateway (root, or the same user
with ptrace_scope 0). Its collapsed-stack output is kept beside the summary.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

TOOLS_BIN = Path.home() / ".cache" / "pmp-bench" / "tools" / "bin"


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = TOOLS_BIN / "py-spy"
    return str(candidate) if candidate.exists() else None


def start_recording(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording `pid` for `seconds` into `out` (collapsed stacks), or None."""
    executable = py_spy()
    if executable is None:
        return None
    argv = [executable, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    argv += ["--rate", "250", "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def frame_name(frame: str) -> str:
    """`function (path/to/module.py:line)` shortened to `function (module.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    marker = "site-packages/"
    short = path.split(marker, 1)[1] if marker in path else "/".join(path.split("/")[-2:])
    return f"{name} ({short})" if short else name


def summarise(collapsed: Path, top: int = 20) -> list[str]:
    """Top frames by self samples and by total (inclusive) samples, as percentages."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if samples == 0:
        return ["(no samples)"]
    lines = [
        f"{samples} samples of Python threads that were running (idle waits excluded)",
        "top by self samples:",
    ]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("top by total samples:")
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return lines
