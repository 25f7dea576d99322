"""The approval page has one canonical URL; the trailing-slash form is sent there (issue 11, row 18)."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest

from cartpilot.approvals.urls import NoSuchPage, canonical_location

QUERY = {"exp": ["1796111200"], "kid": ["k1"], "sig": ["FIY5urv4R7-_x"]}


@pytest.mark.parametrize("stage", ["", "/v1"])
@pytest.mark.parametrize("route", ["/approvals/", "/staff/approvals/"])
def test_the_slash_form_resolves_to_the_canonical_url_with_its_query(stage: str, route: str):
    path = f"{route}a-123/"
    location = canonical_location(path, QUERY)
    assert location is not None
    # The browser sees the stage in the URL; the event's path does not carry it.
    page = f"https://api.example.com{stage}{path}?exp=1796111200&kid=k1&sig=FIY5urv4R7-_x"
    assert urljoin(page, location) == (
        f"https://api.example.com{stage}{route}a-123?exp=1796111200&kid=k1&sig=FIY5urv4R7-_x"
    )


@pytest.mark.parametrize("path", ["/approvals/a-123", "/goals/g-1/", "/approvals/", "/staff/approvals/"])
def test_a_canonical_or_other_path_is_left_alone(path: str):
    assert canonical_location(path, QUERY) is None


def test_a_link_without_a_query_keeps_none():
    assert canonical_location("/approvals/a-123/", None) == "../a-123"


def test_more_than_one_trailing_slash_is_no_page():
    with pytest.raises(NoSuchPage):
        canonical_location("/approvals/a-123//", QUERY)
