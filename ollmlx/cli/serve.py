"""`ollmlx serve`: the API server process."""

from __future__ import annotations

import logging
import os
import signal
import sys

import uvicorn

from ollmlx import __version__, config


def setup_logging() -> None:
    level = logging.DEBUG if config.debug_level() > 0 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s")
    # one line per runner call is noise; our own logs say what happened to a request
    logging.getLogger("httpx").setLevel(logging.WARNING)


def serve(hostfile: str | None = None) -> int:
    setup_logging()
    from ollmlx.api.app import create_app

    log = logging.getLogger("ollmlx")
    if hostfile:  # the flag wins over OLLMLX_HOSTFILE; runners read it from the environment
        os.environ["OLLMLX_HOSTFILE"] = os.path.abspath(hostfile)
    if config.hostfile():
        from ollmlx.runner.launch import read_hostfile

        try:
            hf = read_hostfile(str(config.hostfile()))
        except ValueError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            return 1
        log.info("MLX models run across %d ranks (%s): %s", hf.size, hf.backend, ", ".join(h.ssh for h in hf.hosts))
    addr = config.host()
    models = config.models_dir()
    models.mkdir(parents=True, exist_ok=True)
    (models / "blobs").mkdir(exist_ok=True)
    (models / "manifests").mkdir(exist_ok=True)
    log.info("ollmlx %s listening on %s:%s (models: %s)", __version__, addr.host, addr.port, models)
    app = create_app(models)
    if not config.noprune():
        store = app.state.services.store
        removed = store.prune(grace_seconds=3600)
        if removed:
            log.info("pruned %d unused blobs", removed)
    server = uvicorn.Server(uvicorn.Config(app, host=addr.host, port=addr.port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    # SIGTERM ends streams with an error line and stops every runner (lifespan shutdown).
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    return 0
