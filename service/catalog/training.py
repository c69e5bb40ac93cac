"""Training parameters shared by every technique that trains: pruning recovery now, distillation and
QAT later. One model, so the names, defaults and limits are the same wherever a user trains."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Fewer held-out (or training) samples than this cannot tell one epoch from the next.
MIN_HELD_OUT = 2


def held_out_count(samples: int, fraction: float) -> int:
    """Samples the seeded split holds out of `samples` at `fraction`."""
    return round(samples * fraction)


def too_small_to_split(samples: int, fraction: float) -> bool:
    """Whether a split at `fraction` leaves fewer than MIN_HELD_OUT samples on either side."""
    if fraction == 0:
        return False
    held_out = held_out_count(samples, fraction)
    return held_out < MIN_HELD_OUT or samples - held_out < MIN_HELD_OUT


# Without `epochs` or `time_budget_s`: three passes, enough to recover most of what pruning took.
DEFAULT_EPOCHS = 3
MAX_EPOCHS = 1000


class TrainingParams(BaseModel):
    """A training run: data, length (epochs or seconds), optimizer, objective and held-out split."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(max_length=64, description="Dataset with the model's inputs, and `labels` if any")
    epochs: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description=f"Passes over the training split (default {DEFAULT_EPOCHS}; with `time_budget_s`, "
        "the most it may run)",
    )
    time_budget_s: float | None = Field(
        None,
        gt=0.0,
        le=86400.0,
        description="Train for this many seconds instead of a number of epochs; the learning-rate schedule "
        "follows the elapsed time",
    )
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam peak learning rate")
    warmup_fraction: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Share of training over which the learning rate rises linearly to its peak, before "
        "its cosine decay",
    )
    batch_size: int = Field(32, ge=1, le=65536, description="Samples per step")
    distillation: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="With labels: weight of matching the original model's softened class scores "
        "(0 = labels only); without labels training always distils",
    )
    temperature: float = Field(
        2.0, gt=0.0, le=20.0, description="Softening of the class scores the distillation term matches"
    )
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="Share of the dataset held out to pick the best epoch and stop early (0: keep the "
        "last epoch)",
    )
    patience: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="Stop after this many epochs without a better held-out score (default: never early)",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the split, the shuffling and the init")

    @model_validator(mode="after")
    def _patience_needs_a_split(self) -> Self:
        if self.patience is not None and self.validation_fraction == 0:
            raise ValueError("patience needs a held-out split: set validation_fraction above 0")
        return self

    @property
    def epoch_limit(self) -> int:
        """The most epochs to run: `epochs`, else the default, or the cap when a time budget rules."""
        if self.epochs is not None:
            return self.epochs
        return MAX_EPOCHS if self.time_budget_s is not None else DEFAULT_EPOCHS
