"""A parallel group's run is one per activation (and retry), whatever happens to its job.

A redelivered group start must find the run it began (and re-drive its members), not
start a second run beside the first: ``test_crash_points`` covers that with the
``group.before_handover`` crash point. This file covers the other way a group
activation comes back with the same spec id: resuming a checkpoint that lists the
group as pending, in the session where its first run happened. The group must run
again, in full, not be mistaken for a redelivery of its old run (which would complete
the resumed run without the group and its successor).
"""

from __future__ import annotations

from collections import Counter

import foflows as flows
import pytest
from fohelpers import FoPool

from graflow.distributed import WorkflowRun
from graflow.exceptions import WorkflowFailedError

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning"),  # the run's error
]


def test_resumed_pending_group_runs_again_in_full(redis_url: str) -> None:
    pool = FoPool(redis_url, 3)  # y, g1 and g2 side by side
    pool.env["FO_CKPT"] = f"{redis_url}/{pool.prefix}/ck"
    with pool:
        run = pool.submit(flows.group_beside_checkpoint(), initial_channel={"fail": True})
        with pytest.raises(WorkflowFailedError):
            run.wait(timeout=20)
        first = Counter(run.channel.get("ran"))
        assert first == Counter(["start", "x", "g1", "g2", "y", "end"]), first
        checkpoint = run.status().last_checkpoint
        assert checkpoint
        run.channel.set("fail", False)
        resumed = WorkflowRun.resume(checkpoint, redis_url)
        resumed.wait(timeout=20)
        status = resumed.status()
        again = Counter(run.channel.get("ran")) - first
        # The checkpoint had the group (running) and y (queued) pending: both run again,
        # and the group's successor after them; nothing completed before it re-runs.
        assert again == Counter(["g1", "g2", "y", "end"]), again
        assert status.state == "completed" and status.completed == 7, status
