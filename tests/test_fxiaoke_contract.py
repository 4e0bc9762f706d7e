"""crmsync's connector contract suite, run against the Fxiaoke connector and the fake Fxiaoke
OpenAPI (real HTTP on 127.0.0.1; waits pass in the fake's time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke
from tests.fxiaoke_support import FxiaokeHarness


class TestFxiaokeContract(ConnectorContract):
    @pytest.fixture
    def harness(self) -> Iterator[FxiaokeHarness]:
        with FakeFxiaoke(records={"AccountObj": 450}, seed=5) as fx:
            yield FxiaokeHarness(fx)
