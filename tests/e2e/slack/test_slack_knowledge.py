"""Who sees a restricted passage in Slack: the person allowed (by id, or through a group
kept with `switchboard groups`), in a DM — never a channel, even when that person is the
one asking there."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ingest.pipeline import ingest
from bots.knowledge import ingest_options, knowledge_index
from bots.settings import Settings
from tests.e2e.conftest import restricted_to_group, serving
from tests.e2e.slack.conftest import SlackSettings, fixture, mention, post_event, settled
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack

DM_USER = "slack:T111:W222"  # the sender of the recorded top-level DM


async def test_a_passage_allowed_to_a_person_reaches_their_dm_but_not_a_channel(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "plan.md").write_text(
        f"---\nvisibility: restricted\nallow_users: [{DM_USER}, slack:T111:U222]\n---\n"
        "# Reorganisation plan\n\nThe top-level DM team merges with the thread team.\n"
    )
    settings = slack_settings()
    async with knowledge_index(settings) as index:
        await ingest([folder], index, options=ingest_options(settings))
    llm.script(Reply("In the DM."), Reply("In the channel."))

    async with serving(settings) as app:
        await post_event(app, fixture("bolt_message_im_top_level_dm.json"))
        await slack.wait_for("chat.stopStream")
        await post_event(app, mention("top-level DM team thread team", ts="1700000009.000100"))
        await settled(app)

    dm_prompt, channel_prompt = (r.json["messages"][0]["content"] for r in llm.requests[:2])
    assert "merges with the thread team" in dm_prompt
    assert "merges with the thread team" not in channel_prompt
    assert "Reorganisation plan" not in str(slack.calls_to("chat.stopStream")[-1].body)



@pytest.mark.parametrize(("members", "sees"), [
    ([DM_USER], True),
    (["slack:T111:U999", "someone@example.com"], False),
])
async def test_a_passage_allowed_to_a_group_reaches_a_dm_only_of_a_member(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path,
    members: list[str], sees: bool,
) -> None:
    settings = slack_settings()
    prompt = await _dm_prompt(settings, slack, llm, tmp_path, members=members)
    assert ("two more desks" in prompt) is sees


@pytest.mark.parametrize(("slack_members", "disabled", "sees"), [
    (["U999", "W222"], False, True),
    (["U999"], False, False),
    (["W222"], True, False),  # a disabled user group grants nothing
])
async def test_a_slack_user_group_grants_what_is_allowed_to_its_handle(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path,
    slack_members: list[str], disabled: bool, sees: bool,
) -> None:
    slack.add_usergroup("planners", slack_members, disabled=disabled)
    settings = slack_settings()
    prompt = await _dm_prompt(settings, slack, llm, tmp_path, members=[])
    assert ("two more desks" in prompt) is sees
    assert len(slack.calls_to("usergroups.list")) == 1


async def _dm_prompt(
    settings: Settings, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path, *, members: list[str]
) -> str:
    """The prompt of a top-level DM, with one document only the group `planners` (these
    `members`, kept in SQL) may read in the knowledge base."""
    await restricted_to_group(
        settings, tmp_path / "kb", group="planners", members=members,
        text="# Budget\n\nThe top-level DM team gets two more desks next quarter.",
    )
    llm.script(Reply("In the DM."))
    async with serving(settings) as app:
        await post_event(app, fixture("bolt_message_im_top_level_dm.json"))
        await slack.wait_for("chat.stopStream")
        await settled(app)
    return str(llm.requests[0].json["messages"][0]["content"])
