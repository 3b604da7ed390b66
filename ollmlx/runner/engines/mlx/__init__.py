"""The MLX engine (the only package, with engines/llamacpp, allowed to import mlx)."""
