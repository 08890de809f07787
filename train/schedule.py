"""Learning-rate schedules and epochs: the LR of every step as a pure function of the step number.

`LrSchedule.lr_at(k)` is the rate of the optimizer update that makes step k (k = 1, 2, ...), so a
resumed run that knows its step and its recorded schedule sets exactly the rate an uninterrupted run
had; nothing but the schedule's own fields (saved in the checkpoint) is state.

Kinds:
  constant  the base rate throughout
  step      the base rate times gamma for every milestone already passed: updates after m steps use
            the reduced rate (PyTorch's MultiStepLR stepped once per update; Lee & Lee's "divide by 10
            at step 48K")
  cosine    half a cosine from the base rate down to `final_lr` over `decay_steps` (the run's length
            after the warm-up, fixed when the run starts: a resumed run raised past it keeps final_lr)
  linear    a straight line from the base rate down to `final_lr` over `decay_steps`
Every kind can start with a linear warm-up over `warmup_steps` (k / warmup_steps of its rate).

An epoch is one pass over the train split: ceil(samples / global batch) steps, the global batch
being the batch per process times the number of processes (`steps_per_epoch`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SCHEDULES = ("step", "cosine", "linear", "constant")


@dataclass(frozen=True)
class LrSchedule:
    kind: str
    base_lr: float
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_steps: int = 0
    # cosine / linear: steps (after the warm-up) over which the rate decays; later steps keep final_lr.
    decay_steps: int | None = None
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown LR schedule {self.kind!r}; choose from {', '.join(SCHEDULES)}")
        if not self.base_lr > 0:
            raise ValueError(f"the learning rate must be > 0, got {self.base_lr}")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"LR milestones must be increasing step numbers >= 1, got {list(self.milestones)}")
        if self.milestones and self.kind != "step":
            raise ValueError(f"LR milestones belong to the step schedule, not {self.kind}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"the LR gamma must be in (0, 1], got {self.gamma}")
        if self.warmup_steps < 0:
            raise ValueError(f"warm-up steps must be >= 0, got {self.warmup_steps}")
        if self.kind in ("cosine", "linear") and not self.decay_steps:
            raise ValueError(f"the {self.kind} schedule needs the number of steps it decays over")

    def lr_at(self, step: int) -> float:
        """The learning rate of the update that makes step `step` (1-based)."""
        if step < 1:
            raise ValueError(f"steps count from 1, got {step}")
        if self.warmup_steps and step <= self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            passed = sum(1 for milestone in self.milestones if step > milestone)
            return self.base_lr * self.gamma**passed
        # The first update after the warm-up uses the base rate (PyTorch's schedulers stepped per update).
        progress = min(1.0, (step - 1 - self.warmup_steps) / self.decay_steps)
        if self.kind == "cosine":
            return self.final_lr + (self.base_lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.base_lr + (self.final_lr - self.base_lr) * progress

    def to_dict(self) -> dict:
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LrSchedule:
        return cls(**{**data, "milestones": tuple(data.get("milestones", ()))})


def steps_per_epoch(samples: int, global_batch: int) -> int:
    """Steps in one pass over `samples` at `global_batch` samples per step (the last one topped up
    from the next pass, as the endless training stream does): ceil(samples / global_batch)."""
    if samples < 1:
        raise ValueError("the train split holds no samples")
    if global_batch < 1:
        raise ValueError(f"the global batch must be >= 1, got {global_batch}")
    return -(-samples // global_batch)


def parse_milestones(text: str) -> tuple[int, ...]:
    """`--lr-milestones`: comma-separated step numbers ("48000" or "110000,183000"); "none" or "" for none."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        values = tuple(int(part.strip().replace("_", "")) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--lr-milestones {text!r}: expected comma-separated step numbers, e.g. 48000 or 110000,183000") from None
    return values
