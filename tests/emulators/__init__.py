"""Emulators of the services ollmlx pulls from (an Ollama/OCI registry, the Hugging Face Hub),
started by the tests on 127.0.0.1 and speaking the real protocols."""
