"""Chat rows read from a ``messages`` column: each cell a list of ``{"role", "content"}`` turns, checked."""

from __future__ import annotations

import json
from typing import Any

from peftlab.errors import ConfigError

ROLES_HINT = "a list of {role, content} turns (roles: system, user, assistant, ...) with at least one assistant turn"


def conversation(value: Any, where: str, key: str, answered: bool = True) -> list[dict[str, str]]:
    """One cell of the messages column as a list of ``{"role", "content"}`` turns (a JSON string,
    as CSV cells hold them, is parsed), or a ConfigError on ``key`` naming ``where``.

    ``answered``: a training row needs an assistant turn (the loss reads only those); a conversation
    to predict (False) must end with a turn that awaits the assistant's reply instead."""
    hint = ROLES_HINT if answered else ROLES_HINT.split(" with ")[0]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(key, f"{where}: not JSON; each cell must be {hint}") from None
    if hasattr(value, "tolist"):  # parquet / arrow give arrays
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"{where}: got {type(value).__name__}; each cell must be {hint}")
    turns = []
    for turn in value:
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or not isinstance(turn.get("content"), str):
            raise ConfigError(key, f"{where}: turn {turn!r} is not {{role: str, content: str}}; each cell must be {hint}")
        turns.append({"role": turn["role"], "content": turn["content"]})
    if not answered:
        if turns[-1]["role"] == "assistant":
            raise ConfigError(key, f"{where}: the last turn is the assistant's; end each conversation with the turn the model should answer")
        return turns
    if not any(t["role"] == "assistant" for t in turns):
        raise ConfigError(key, f"{where}: no assistant turn (the loss reads only assistant turns); each cell must be {hint}")
    return turns
