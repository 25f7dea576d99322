"""An undo after shipment files a return and tells the shopper from the compensator: it may publish
to the shoppers' topic, and to nothing else."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synthesis
from tests.infra.test_functions import _access, _function_ids, _role_of

pytestmark = pytest.mark.xdist_group("infra")


def test_the_compensator_publishes_to_the_shoppers_topic_only(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    notifications = synthesis.stacks[brand_name].notifications
    topic = synthesis.logical_id(brand_name, notifications.topic)
    function_id = _function_ids(synthesis, brand_name)["compensator"]

    access = _access(resources, _role_of(resources, function_id))
    published = sorted(ref for ref, actions in access.items() if "sns:Publish" in actions)
    environment = resources[function_id]["Properties"]["Environment"]["Variables"]

    assert published == [topic]
    assert "NOTIFY_TOPIC_ARN" in environment and "STAFF_TOPIC_ARN" not in environment
