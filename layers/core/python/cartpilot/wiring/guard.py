"""The rollout guard's parts: the brand's rollout store, its audit trail and the operators' topic.

``OPS_TOPIC_ARN``: the stack's alarm topic, which the brand's operators already subscribe to.
"""

from __future__ import annotations

import functools
import os

from cartpilot.kernel.errors import MissingSetting
from cartpilot.rollout.guard import OperatorChannel

ENV_OPS_TOPIC = "OPS_TOPIC_ARN"


@functools.cache
def operators() -> OperatorChannel:
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.operators import SnsOperatorChannel

    topic = os.environ.get(ENV_OPS_TOPIC)
    if not topic:
        raise MissingSetting(f"environment variable {ENV_OPS_TOPIC} is not set")
    return SnsOperatorChannel(topic, clients.sns())
