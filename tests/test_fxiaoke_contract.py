"""crmsync's connector contract suite, run against the Fxiaoke connector and the fake Fxiaoke
OpenAPI (real HTTP on 127.0.0.1; waits pass in the fake's time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke
from tests.fxiaoke_support import FxiaokeHarness


class TestFxiaokeContract(ConnectorContract):
    """Three ways an admin may set it up: archive by a field on a preset object; the native
    void-only lifecycle on a preset object (invalid one id per call); and on a custom object
    (batch invalid, custom paths)."""

    @pytest.fixture(
        params=[("AccountObj", True), ("AccountObj", False), ("Visit__c", False)],
        ids=["preset-archive-field", "preset-void-only", "custom-void-only"],
    )
    def harness(self, request: pytest.FixtureRequest) -> Iterator[FxiaokeHarness]:
        module, archive = request.param
        with FakeFxiaoke(records={module: 320}, seed=5) as fx:
            yield FxiaokeHarness(fx, module, archive)
