"""ollmlx: a drop-in replacement for Ollama on MLX."""

__version__ = "0.1.0"

# The Ollama release whose API ollmlx reproduces (shared/spec/ollama-api.md: v0.32.7). GET
# /api/version reports it, because clients gate features on Ollama's version (VS Code Copilot
# Chat refuses servers below 0.6.4); ollmlx's own version rides along as an extra field.
OLLAMA_API_VERSION = "0.32.7"
