"""Which model an agent call uses: the run's `--model`, else the definition's `model:`, else the
default; aliases (`sonnet`, `opus`, `haiku`, `inherit`) name a model id. Kept apart from the loop
(which imports the SDK) so that the dry run's forecast names the same model without it."""

from __future__ import annotations

from tasks.agent.definitions import AgentDefinition

DEFAULT_MODEL = "claude-sonnet-5-5"
MODEL_ALIASES = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
    "inherit": DEFAULT_MODEL,
}


def model_id(override: str | None, definition: AgentDefinition) -> str:
    """The model id an agent call of ``definition`` sends, under the run's ``override``."""
    chosen = override or definition.model or DEFAULT_MODEL
    return MODEL_ALIASES.get(chosen.strip().lower(), chosen.strip())
