"""The dialogue core: turn context, grounding in the business's knowledge and tools, and the call flow."""
