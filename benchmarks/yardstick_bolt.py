"""The yardstick: the smallest correct async Bolt bot that answers mentions with a model.

Verify the request's signature, ack, stream the model's answer, post it once in the
thread. No storage, no dedupe, no history: what Switchboard is compared against in
`slack_load.py`.

    SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=xoxb-… OPENAI_API_KEY=… SWITCHBOARD_MODEL=gpt-4o-mini \\
        python benchmarks/yardstick_bolt.py --port 3000

Optional: SLACK_API_URL (Slack Web API base URL), OPENAI_BASE_URL.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Any

from aiohttp import web
from openai import AsyncOpenAI
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
MODEL = os.environ["SWITCHBOARD_MODEL"]

logging.basicConfig(level=logging.WARNING)
# Request verification (the signing secret) and ignoring the bot's own events are Bolt's
# defaults. Our own WebClient, for SLACK_API_URL, holds the token: popped from the
# environment, or Bolt would warn that it found a second one there.
app = AsyncApp(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    client=AsyncWebClient(
        token=os.environ.pop("SLACK_BOT_TOKEN"),
        base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
    ),
)
llm = AsyncOpenAI()  # OPENAI_API_KEY and OPENAI_BASE_URL from the environment


@app.event("app_mention")  # Bolt acks first, then runs this (process_before_response=False)
async def answer(event: dict[str, Any], client: AsyncWebClient) -> None:
    question = MENTION.sub("", event.get("text", "")).strip()
    stream = await llm.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": question}]
    )
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    await client.chat_postMessage(
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event["ts"],
        text="".join(parts) or "(no answer)",
    )


async def ready(_: web.Request) -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the yardstick Bolt bot")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    server = app.server(port=args.port, path="/slack/events", host=args.host)
    server.web_app.router.add_get("/readyz", ready)
    server.start()
