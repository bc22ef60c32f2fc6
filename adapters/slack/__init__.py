"""The Slack channel: Events API in, Web API out, and Slack's own text formats."""
