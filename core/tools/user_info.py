"""`get_user_info`: the sender's own profile, never anyone else's."""

from __future__ import annotations

from typing import Any

from core.tools.registry import ToolContext, tool


@tool(title="Looking up your profile")
async def get_user_info(ctx: ToolContext) -> dict[str, Any]:
    """Get the profile of the person you are talking to: name, email, job title,
    department, time zone and preferences. Fields that are unknown are left out."""
    stored = await ctx.services.profiles.get(ctx.sender.id)
    info: dict[str, Any] = {
        "id": ctx.sender.id,
        "name": ctx.sender.name,
        "email": ctx.sender.email,
        "groups": list(ctx.sender.groups),
    }
    if stored is not None:
        info.update(
            name=stored.name or ctx.sender.name,
            email=stored.email or ctx.sender.email,
            title=stored.title,
            department=stored.department,
            time_zone=stored.time_zone,
            preferences=stored.preferences,
        )
    return {k: v for k, v in info.items() if v not in (None, [], {})}
