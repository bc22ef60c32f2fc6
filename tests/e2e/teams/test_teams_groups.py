"""A Teams sender's groups: a group kept with `switchboard groups` that lists their
verified email (from the Teams roster) lets their personal chat read a passage allowed
to that group; anyone outside it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import restricted_to_group, serving
from tests.e2e.teams.conftest import PERSONAL_AAD, TENANT, TeamsSettings, personal, post_activity
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector
from tests.fakes.openai_server import FakeOpenAI, Reply


@pytest.mark.parametrize(("members", "sees"), [
    (["tien@example.com"], True),  # the roster's email for PERSONAL_AAD
    ([f"teams:{TENANT}:{PERSONAL_AAD}"], True),
    ([f"teams:{TENANT}:someone-else", "dave@example.com"], False),
])
async def test_a_passage_allowed_to_a_group_reaches_its_members_in_teams(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, tmp_path: Path, members: list[str], sees: bool,
) -> None:
    settings = teams_settings()
    await restricted_to_group(
        settings, tmp_path / "kb", group="planners", members=members,
        text="# Desk budget\n\nThe planners get two more desks next quarter.",
    )
    llm.script(Reply("In the chat."))

    async with serving(settings) as app:
        response = await post_activity(app, identity, personal(connector, "desk budget?"))
        assert response.status in (200, 202)
        await connector.wait_for_text("In the chat")

    prompt = llm.requests[0].json["messages"][0]["content"]
    assert ("two more desks" in prompt) is sees
