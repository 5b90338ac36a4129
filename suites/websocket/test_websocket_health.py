"""Runbook: "Check the WebSocket endpoint" - `websocat wss://app/ws` connects, answers a ping,
and replies to a test message."""

import pytest

from opscheck.probes import websocket as probes

pytestmark = [pytest.mark.websocket, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_websocket_handshake(websocket, limits):
    """The server accepts the WebSocket handshake (101 Switching Protocols)."""
    limits.check("websocket.handshake", probes.handshake(websocket))


@pytest.mark.applies_to("checks_reply", what="sends a message or expects one")
def test_websocket_reply_expected(websocket, limits):
    """A reply to `send` arrives within the timeout and holds `expect` (or matches
    `expect_regex`)."""
    limits.check("websocket.reply", probes.reply(websocket))
