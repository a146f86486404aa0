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


# Where a sample's time goes, by the first of these frames found in its stack (outermost
# first), so each sample lands in one component. The labels name what issue 12 asks for.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("AsyncClient.send (httpx", "upstream HTTP call (httpx)"),
    ("Client.start_workflow (temporalio", "run start (Temporal client)"),
    ("ChatService.create (", "chat service (auth, limits, routing, prompts, cache)"),
    ("_ActivityWorker.", "activity (SDK, model check, breaker, metrics)"),
    ("_WorkflowWorker.", "workflow task (activation codec, workflow code, SDK)"),
    ("_WorkflowInstanceImpl.", "workflow task (activation codec, workflow code, SDK)"),
    ("RequestResponseCycle.", "HTTP front end (uvicorn, middleware, FastAPI)"),
)
# Leaf frames that are an event loop's or a pool's own native time, not Python work.
NATIVE_LEAVES = ("Runner.run (asyncio", "_worker (concurrent/futures", "_worker (futures")


def component_of(frames: list[str]) -> str | None:
    """The component a stack's time belongs to (None for loop/pool native time)."""
    if frames and frames[-1].startswith(NATIVE_LEAVES):
        return None
    for marker, label in COMPONENTS:
        if any(marker in frame for frame in frames):
            return label
    return "other Python (event loop callbacks, Temporal bridge polls, logging)"


def by_component(collapsed: Path, cpu_ms_per_call: float) -> list[str]:
    """Each component's share of the Python samples, and that share of the measured CPU."""
    counts: Counter[str] = Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            component = component_of([frame_name(frame) for frame in stack.split(";")])
            if component is not None:
                counts[component] += int(count_text)
    total = sum(counts.values())
    if total == 0:
        return []
    lines = [
        f"gateway Python time by component (share of {total} samples; ms = share x "
        f"{cpu_ms_per_call:.2f} ms of loop + workflow-thread CPU per call):"
    ]
    for label, count in counts.most_common():
        share = count / total
        lines.append(f"  {100 * share:5.1f}%  {share * cpu_ms_per_call:5.2f} ms  {label}")
    return lines


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
