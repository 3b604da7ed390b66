"""ollmlx: a drop-in replacement for Ollama on MLX."""

__version__ = "0.1.0"
