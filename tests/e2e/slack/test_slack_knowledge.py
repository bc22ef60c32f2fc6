"""Who sees a restricted passage in Slack: the person allowed, in a DM — never a channel,
even when that person is the one asking there."""

from __future__ import annotations

from pathlib import Path

from adapters.ingest.pipeline import ingest
from bots.knowledge import ingest_options, knowledge_index
from tests.e2e.conftest import serving
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

