"""Bearer-token check."""

from __future__ import annotations

from chokepoint.collector.auth import BearerAuth


def test_no_token_allows_everything():
    auth = BearerAuth(None)
    assert not auth.enabled
    assert auth.allows(None) and auth.allows("Bearer anything")


def test_token_must_match_exactly():
    auth = BearerAuth("s3cret")
    assert auth.enabled
    assert auth.allows("Bearer s3cret") and auth.allows("bearer s3cret") and auth.allows(b"Bearer s3cret")
    assert not auth.allows(None)
    assert not auth.allows("")
    assert not auth.allows("Bearer s3cre")
    assert not auth.allows("Basic s3cret")
    assert not auth.allows("s3cret")
    assert not auth.allows("Bearer s3cret\u2603")
