"""The Microsoft Teams channel: Bot Framework activities in, Teams messages out."""
