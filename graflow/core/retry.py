"""Retry budgets and backoff. State is plain dicts so it pickles into checkpoints."""

from __future__ import annotations

import random
from dataclasses import dataclass

from graflow.exceptions import RetryLimitExceededError


@dataclass
class RetryPolicy:
    """Backoff for retries: ``initial_interval × backoff_factor**k``, capped at ``max_interval``."""

    max_retries: int = 0
    initial_interval: float = 1.0
    backoff_factor: float = 2.0
    max_interval: float = 60.0
    jitter: bool = False

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        if self.initial_interval < 0 or self.max_interval < 0:
            raise ValueError("RetryPolicy intervals must be >= 0")

    def get_delay(self, retry_count: int) -> float:
        delay = min(self.initial_interval * self.backoff_factor**retry_count, self.max_interval)
        if self.jitter:
            delay = min(delay * random.uniform(0.5, 1.5), self.max_interval)
        return float(delay)


class RetryController:
    """Per base task id: retries consumed, budgets and policies, and the last error."""

    def __init__(self, default_max_retries: int = 0) -> None:
        self.default_max_retries = default_max_retries
        self.retry_counts: dict[str, int] = {}
        self.node_max_retries: dict[str, int] = {}
        self.node_policies: dict[str, RetryPolicy] = {}
        self.last_errors: dict[str, BaseException] = {}

    def set_node_max_retries(self, node_id: str, max_retries: int) -> None:
        self.node_max_retries[node_id] = max_retries

    def set_node_policy(self, node_id: str, policy: RetryPolicy) -> None:
        self.node_policies[node_id] = policy

    def get_policy_for_node(self, node_id: str) -> RetryPolicy | None:
        return self.node_policies.get(node_id)

    def get_max_retries_for_node(self, node_id: str) -> int:
        policy = self.node_policies.get(node_id)
        if policy is not None:
            return policy.max_retries
        return self.node_max_retries.get(node_id, self.default_max_retries)

    def get_retry_count(self, node_id: str) -> int:
        return self.retry_counts.get(node_id, 0)

    def accept_retry(self, node_id: str) -> bool:
        return self.get_retry_count(node_id) < self.get_max_retries_for_node(node_id)

    def increment(self, node_id: str, error: BaseException | None = None) -> int:
        """Count one retry of ``node_id`` (and remember ``error``); returns the new count."""
        count = self.retry_counts.get(node_id, 0) + 1
        self.retry_counts[node_id] = count
        if error is not None:
            self.last_errors[node_id] = error
        return count

    def get_last_error(self, node_id: str) -> BaseException | None:
        """The error of the last retried attempt of ``node_id``, if one was recorded."""
        return self.last_errors.get(node_id)

    def get_delay(self, node_id: str, retry_count: int | None = None) -> float:
        policy = self.node_policies.get(node_id)
        if policy is None:
            return 0.0
        k = self.get_retry_count(node_id) if retry_count is None else retry_count
        return policy.get_delay(k)

    def check_retry_limit(self, node_id: str, last_error: BaseException | None = None) -> None:
        """Raise ``RetryLimitExceededError`` when no retry is left (with ``last_error``, or
        the last error ``increment`` recorded)."""
        if not self.accept_retry(node_id):
            max_retries = self.get_max_retries_for_node(node_id)
            error = last_error if last_error is not None else self.last_errors.get(node_id)
            raise RetryLimitExceededError(node_id, max_retries + 1, max_retries, error)

    def __getstate__(self) -> dict[str, object]:
        # Errors are this process's diagnostics; one that cannot pickle must not break
        # ExecutionContext.save (checkpoints keep only retry_counts).
        state = self.__dict__.copy()
        state["last_errors"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("last_errors", {})


__all__ = ["RetryController", "RetryPolicy"]
