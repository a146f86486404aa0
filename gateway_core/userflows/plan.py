"""The walk through one step list: which step runs next after each step's action.

A list is walked from its first step; after a step, `continue` (or no action: every
step but a conditional) goes to the next one, `{"go_to_step": name}` to the named step
of the same list, `{"end_workflow": output}` stops the walk with that output (its
placeholders still to be resolved by the caller). Running past the last step ends the
walk with the last step's output. One walk starts at most `max_steps` steps, so a
`go_to_step` loop stops with a clear error instead of running forever.

The top level is the workflow; each `parallel` branch and each `for_each` item is a
walk of its own (an `end_workflow` there ends that branch or item, with that output).
Pure and deterministic: the workflow interpreter drives a `StepWalk` in workflow code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway_core.errors import InvalidRequestError
from gateway_core.userflows.definition import ActionValue, EndWorkflow, GoToStep, StepBase


class StepLimitError(InvalidRequestError):
    """A walk started more steps than the workflow's `max_steps` allows."""

    default_code = "max_steps_exceeded"


@dataclass(frozen=True)
class RunStep:
    """Run the step at `index` next."""

    index: int


@dataclass(frozen=True)
class EndWalk:
    """The walk is over; `explicit` when an `end_workflow` action ended it with `output`
    (else the output is the last step's)."""

    output: Any = None
    explicit: bool = False


Transition = RunStep | EndWalk


def step_index(steps: Sequence[StepBase], name: str) -> int:
    """The position of the step named `name` in `steps`."""
    for index, step in enumerate(steps):
        if step.name == name:
            return index
    raise InvalidRequestError(
        f"go_to_step names {name!r}, which is not a step of this list",
        param="go_to_step",
        code="unknown_step",
    )


def after_step(steps: Sequence[StepBase], index: int, action: ActionValue | None) -> Transition:
    """Where the walk goes after the step at `index` took `action`."""
    if isinstance(action, GoToStep):
        return RunStep(step_index(steps, action.go_to_step))
    if isinstance(action, EndWorkflow):
        return EndWalk(action.end_workflow, explicit=True)
    if index + 1 < len(steps):
        return RunStep(index + 1)
    return EndWalk()


class StepWalk:
    """One walk's position and how many steps it started; `start()` before each step."""

    def __init__(self, steps: Sequence[StepBase], max_steps: int) -> None:
        if not steps:
            raise ValueError("a step list has at least one step")
        self.steps = steps
        self.max_steps = max_steps
        self.started = 0
        self.position: Transition = RunStep(0)

    def start(self) -> StepBase:
        """The step to run now, counted against `max_steps` (StepLimitError past it)."""
        if not isinstance(self.position, RunStep):
            raise RuntimeError("the walk is over")
        if self.started >= self.max_steps:
            step = self.steps[self.position.index]
            raise StepLimitError(
                f"the workflow started {self.started} steps, its max_steps; step"
                f" {step.name!r} would be the next (a go_to_step loop that never ends?)",
                param="max_steps",
            )
        self.started += 1
        return self.steps[self.position.index]

    def finish(self, action: ActionValue | None = None) -> Transition:
        """Record the action of the step just run; the next position."""
        if not isinstance(self.position, RunStep):
            raise RuntimeError("the walk is over")
        self.position = after_step(self.steps, self.position.index, action)
        return self.position

    @property
    def done(self) -> bool:
        return isinstance(self.position, EndWalk)
