"""Run llama-cpp-python's high-level `Llama` (raw engine, or `python -m llama_cpp.server`) with
weight repacking off, as ollmlx's llamacpp engine does on AMX CPUs: the 0.3.36 wheel segfaults in
llama_decode when it repacks weights for AMX (docs/supported-models.md).

    python bench/llamacpp_noamx.py raw --model FILE --tokens 64 --prompt TEXT
    python bench/llamacpp_noamx.py server --model FILE --port P [llama_cpp.server args]
"""

from __future__ import annotations

import json
import sys
import time

import llama_cpp

from ollmlx.runner.engines.llamacpp import host

_default_params = llama_cpp.llama_model_default_params


def _params():  # type: ignore[no-untyped-def]
    p = _default_params()
    p.use_extra_bufts = host.weight_repack()
    return p


llama_cpp.llama_model_default_params = _params
llama_cpp.llama_cpp.llama_model_default_params = _params


def raw(model: str, tokens: int, prompt: str) -> None:
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=host.threads(), n_threads_batch=host.threads(),
                          verbose=False)
    msgs = [{"role": "user", "content": prompt}]
    list(llm.create_chat_completion(msgs, max_tokens=4, temperature=0, stream=True))  # warm-up
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    for chunk in llm.create_chat_completion(msgs, max_tokens=tokens, temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
            n += 1
    print(json.dumps({"ttft_s": first - t0, "decode_tps": (n - 1) / (last - first) if n > 1 else 0.0,
                      "tokens": n, "threads": host.threads()}))


def main() -> None:
    mode, *rest = sys.argv[1:]
    if mode == "raw":
        args = dict(zip(rest[::2], rest[1::2]))
        raw(args["--model"], int(args.get("--tokens", "64")), args["--prompt"])
    else:
        from llama_cpp.server.__main__ import main as server_main

        sys.argv = ["llama_cpp.server", *rest, "--n_threads", str(host.threads())]
        server_main()


if __name__ == "__main__":
    main()
