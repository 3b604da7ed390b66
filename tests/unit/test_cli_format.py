"""Pure formatting helpers of the CLI (spec §23): Ollama's human sizes, numbers and times, the
tablewriter layout of list/ps/show, the --verbose timing lines, word wrap, progress bars, the
status-stream drawing of pull/push/create, argument handling and the embedding output."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from ollmlx.cli import tables
from ollmlx.cli.client import APIError
from ollmlx.cli.display import ResponsePrinter, WordWrap, render_tool_calls
from ollmlx.cli.humanize import (
    go_duration,
    human_bytes,
    human_duration,
    human_number,
    human_time,
    metrics_summary,
    parse_timestamp,
)
from ollmlx.cli.interactive import new_create_request
from ollmlx.cli.main import BY_NAME, bind_args, build_parser, normalize_argv
from ollmlx.cli.models_cmd import _metadata_value, list_rows, processor, ps_rows, show_info
from ollmlx.cli.progress import Bar, Progress, Spinner, format_eta
from ollmlx.cli.run_cmd import (
    RunOptions,
    extract_file_data,
    extract_file_names,
    go_json_float32,
    infer_think,
    normalize_file_path,
    parse_keepalive,
    parse_think,
)
from ollmlx.cli.transfer_cmd import StatusStream, push_destination


@pytest.mark.parametrize(("n", "want"), [
    (0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"), (98_000_000, "98 MB"),
    (97_620_000, "97 MB"), (2_000_000_000, "2 GB"), (1_250_000_000, "1.2 GB"), (10_500_000, "10 MB"),
    (3_000_000_000_000, "3 TB"),
])
def test_human_bytes(n: int, want: str) -> None:
    assert human_bytes(n) == want


@pytest.mark.parametrize(("n", "want"), [
    (134_515_008, "134.52M"), (7_000_000_000, "7B"), (1_500_000_000, "1.5B"), (2_000_000, "2M"),
    (12_345, "12K"), (999, "999"),
])
def test_human_number(n: int, want: str) -> None:
    assert human_number(n) == want


@pytest.mark.parametrize(("seconds", "want"), [
    (0.5, "Less than a second"), (1, "1 second"), (42, "42 seconds"), (61, "About a minute"),
    (240, "4 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (3 * 365 * 86400, "3 years"),
])
def test_human_duration(seconds: float, want: str) -> None:
    assert human_duration(seconds) == want


def test_human_time_past_future_forever_never() -> None:
    now = 1_700_000_000.0
    assert human_time(now - 2 * 86400, now=now) == "2 days ago"
    assert human_time(now + 4 * 60 + 30, now=now) == "4 minutes from now"
    assert human_time(now + 292 * 365 * 86400, now=now) == "Forever"
    assert human_time(0, "Never", now=now) == "Never"
    assert parse_timestamp("2024-05-01T10:00:00.123456789+02:00") == pytest.approx(1714550400.123456)
    assert parse_timestamp("0001-01-01T00:00:00Z") == 0.0


def test_verbose_summary_lines_match_ollama() -> None:
    final = {"total_duration": 1_234_567_891, "load_duration": 5_000_000, "prompt_eval_count": 12,
             "prompt_eval_duration": 150_000_000, "eval_count": 30, "eval_duration": 2_000_000_000}
    assert metrics_summary(final) == (
        "total duration:       1.234567891s\n"
        "load duration:        5ms\n"
        "prompt eval count:    12 token(s)\n"
        "prompt eval duration: 150ms\n"
        "prompt eval rate:     80.00 tokens/s\n"
        "eval count:           30 token(s)\n"
        "eval duration:        2s\n"
        "eval rate:            15.00 tokens/s\n"
    )
    # zero values are left out, as Summary does
    assert metrics_summary({"total_duration": 61_500_000_000, "eval_count": 1}) == (
        "total duration:       1m1.5s\neval count:           1 token(s)\n")
    assert go_duration(1500) == "1.5µs"


def test_list_table_layout() -> None:
    now = time.time()
    models = [{"name": "smollm2:135m", "digest": "00efad0112f7aa", "size": 98_000_000,
               "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3 * 86400))},
              {"name": "cloud:latest", "digest": "1234567890abff", "size": 400, "remote_model": "x",
               "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120))}]
    out = tables.render(list_rows(models, now=now), ["NAME", "ID", "SIZE", "MODIFIED"])
    assert out == (
        "NAME            ID              SIZE     MODIFIED      \n"
        "smollm2:135m    00efad0112f7    98 MB    3 days ago       \n"
        "cloud:latest    1234567890ab    -        2 minutes ago    \n"
    )
    assert [r[0] for r in list_rows(models, "SMOL", now=now)] == ["smollm2:135m"]


def test_ps_rows_processor_and_until() -> None:
    now = time.time()

    def ts(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"

    models = [
        {"name": "a:1", "digest": "a" * 64, "size": 100, "size_vram": 0, "context_length": 4096,
         "expires_at": ts(now + 4 * 60 + 30)},
        {"name": "b:1", "digest": "b" * 64, "size": 100, "size_vram": 100, "context_length": 2048,
         "expires_at": ts(now + 300 * 365 * 86400)},
        {"name": "c:1", "digest": "c" * 64, "size": 100, "size_vram": 60, "context_length": 8192,
         "expires_at": ts(now - 5)},
    ]
    rows = ps_rows(models, now=now)
    assert [r[3] for r in rows] == ["100% CPU", "100% GPU", "40%/60% CPU/GPU"]
    assert [r[5] for r in rows] == ["4 minutes from now", "Forever", "Stopping..."]
    assert rows[0][4] == "4096"
    assert processor(100, 200) == "Unknown"


def test_table_wraps_long_cells_like_tablewriter() -> None:
    text = "You are a helpful assistant who answers every question in one short sentence."
    out = tables.render([["", text]])
    lines = out.splitlines()
    assert len(lines) > 1 and all(len(line.strip()) <= 30 for line in lines)
    assert " ".join(line.strip() for line in lines) == text
    # tablewriter fills the short first column of continuation lines with two spaces
    assert lines[0].startswith("    You") and lines[1].startswith("      who")
    assert tables.wrap_string("a-very-long-single-word-that-does-not-fit-in-thirty", 30) == [
        "a-very-long-single-word-that-does-not-fit-in-thirty"]
    assert tables.title("context_length") == "CONTEXT LENGTH"


def test_show_info_sections() -> None:
    resp = {
        "details": {"parameter_size": "134.52M", "quantization_level": "Q4_1", "family": "llama"},
        "model_info": {"general.architecture": "llama", "llama.context_length": 8192,
                       "llama.embedding_length": 576, "tokenizer.ggml.tokens": ["a", "b", "c", "d", "e", "f"],
                       "general.file_type": 3, "llama.rope.freq_base": 100000.0},
        "capabilities": ["completion", "tools"],
        "parameters": 'stop                           "<|im_end|>"\ntemperature                    0',
        "system": "line one\nline two\nline three",
        "license": "MIT",
        "tensors": [{"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}],
    }
    out = io.StringIO()
    show_info(resp, False, out)
    text = out.getvalue()
    assert text.startswith(
        "  Model\n"
        "    architecture        llama      \n"
        "    parameters          134.52M    \n"
        "    context length      8192       \n"
        "    embedding length    576        \n"
        "    quantization        Q4_1       \n"
        "\n"
        "  Capabilities\n"
        "    completion    \n"
        "    tools         \n"
        "\n"
        "  Parameters\n"
        '    stop           "<|im_end|>"    \n'
        "    temperature    0               \n"
        "\n"
        "  System\n"
        "    line one    \n"
        "    line two    \n"
        "    ...         \n"
        "\n"
        "  License\n"
        "    MIT    \n"
        "\n")
    assert "Metadata" not in text and "Tensors" not in text
    out = io.StringIO()
    show_info(resp, True, out)
    text = out.getvalue()
    assert "  Metadata\n" in text and "  Tensors\n" in text
    assert "token_embd.weight    Q8_0    [576 49152]" in text
    assert "tokenizer.ggml.tokens     [a b c ...+3 more]" in text
    assert _metadata_value(100000.0) == "100000" and _metadata_value(1e6) == "1e+06"
    assert _metadata_value(True) == "true"


def test_word_wrap_moves_the_crossing_word() -> None:
    ww = WordWrap(20)
    out = ww.feed("hello world this is wrapping")
    # the word crossing column 15 is erased (cursor back, clear line) and written on the next line
    # (a line holds width - 5 cells)
    assert out == "hello world thi\x1b[3D\x1b[K\nthis is wrappin\x1b[7D\x1b[K\nwrapping"
    assert WordWrap(20, enabled=False).feed("hello world this is wrapping") == "hello world this is wrapping"
    # a word longer than width-10 is broken where it is
    assert WordWrap(20).feed("x" * 20) == "x" * 15 + "\n" + "x" * 5
    # newlines reset the line
    ww = WordWrap(20)
    assert "\x1b" not in ww.feed("0123456789\n0123456789\n")


def test_response_printer_thinking_block() -> None:
    out = io.StringIO()
    p = ResponsePrinter(out, wrap=False, plain=True, width=80)
    p.feed("", "Let me think")
    p.feed("", " about it.")
    p.feed("The answer", "")
    p.feed(" is 4.", "")
    assert out.getvalue() == "Thinking...\nLet me think about it.\n...done thinking.\n\nThe answer is 4."
    assert p.text == "The answer is 4." and p.thinking_text == "Let me think about it."
    out = io.StringIO()
    p = ResponsePrinter(out, wrap=False, hide_thinking=True, plain=True, width=80)
    p.feed("", "secret")
    p.feed("Shown", "")
    assert out.getvalue() == "Shown"
    out = io.StringIO()
    p = ResponsePrinter(out, wrap=False, plain=False, width=80)
    p.feed("", "hmm\n")
    p.feed("ok", "")
    assert out.getvalue() == ("\x1b[90m\x1b[1mThinking...\n\x1b[0m\x1b[90mhmm\n"
                              "\x1b[90m\x1b[1m...done thinking.\n\n\x1b[0mok")
    calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert render_tool_calls(calls, True) == (
        "  Model called a non-existent function 'get_weather()' with arguments: {\"city\":\"Paris\"}")


def test_progress_bar_render() -> None:
    bar = Bar("pulling 1a2b3c4d5e6f:", 100_000_000, 0, clock=0.0)
    bar.set(50_000_000, clock=2.0)
    line = bar.render(80)
    # Ollama's bar line is one cell narrower than the terminal
    assert line.startswith("pulling 1a2b3c4d5e6f:  50% ▕") and len(line) == 79
    assert line.endswith("▏  50 MB/100 MB   25 MB/s      2s")
    bar.set(100_000_000, clock=4.0)
    line = bar.render(80)
    assert line.startswith("pulling 1a2b3c4d5e6f: 100% ▕████") and line.endswith("▏ 100 MB" + " " * 25)
    assert format_eta(65) == "1m5s" and format_eta(3 * 3600 + 120) == "3h2m" and format_eta(4e6) == "99h+"


def _draw(kind: str, stream: list[dict[str, Any]]) -> str:
    err = io.StringIO()
    progress = Progress(err, tty=False)
    StatusStream(progress, kind).consume(stream)  # type: ignore[arg-type]
    progress.stop()
    return err.getvalue()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_stops_while_its_redraw_thread_waits_for_the_lock() -> None:
    """The redraw thread wakes for a frame just as stop_and_clear() takes the lock, and waits for
    it; stop_and_clear() must not wait for that thread while holding the lock (a CLI chat once
    hung on its spinner this way)."""
    import threading

    class WakesAsStopStarts:
        """The redraw thread's `done`: its first wait ends (for a frame) when the stopper, holding
        the lock, first asks whether progress is done."""

        def __init__(self) -> None:
            self.real, self.woken, self.first = threading.Event(), threading.Event(), True

        def wait(self, timeout: float | None = None) -> bool:
            if self.first:
                self.first = False
                self.woken.wait()
                return False
            return self.real.wait(timeout)

        def is_set(self) -> bool:
            if not self.woken.is_set():
                self.woken.set()
                time.sleep(0.05)  # the redraw thread now waits for the lock
            return self.real.is_set()

        def set(self) -> None:
            self.real.set()

    progress = Progress(_Tty(), tty=False)
    progress.tty = True
    progress.add(Spinner(""))
    progress.done = WakesAsStopStarts()  # type: ignore[assignment]
    progress.thread = threading.Thread(target=progress._loop, daemon=True)
    progress.thread.start()
    stopper = threading.Thread(target=progress.stop_and_clear, daemon=True)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive(), "stop_and_clear deadlocked with the redraw thread"
    assert not progress.thread.is_alive()


def test_status_stream_pull_and_push_lines() -> None:
    d1, d2 = "sha256:" + "1a2b3c4d5e6f" + "0" * 52, "sha256:" + "abcdef012345" + "1" * 52
    pull: list[dict[str, Any]] = [{"status": "pulling manifest"},
            {"status": "pulling 1a2b3c4d5e6f", "digest": d1, "total": 1000},
            {"status": "pulling 1a2b3c4d5e6f", "digest": d1, "total": 1000, "completed": 400},
            {"status": "pulling 1a2b3c4d5e6f", "digest": d1, "total": 1000, "completed": 1000},
            {"status": "pulling abcdef012345", "digest": d2, "total": 20, "completed": 20},
            {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
    lines = [line.rstrip() for line in _draw("pull", pull).splitlines()]
    assert lines[0] == "pulling manifest"
    assert lines[1].startswith("pulling 1a2b3c4d5e6f: 100% ▕") and lines[1].endswith("▏   1 KB")
    assert lines[2].startswith("pulling abcdef012345: 100% ▕") and lines[2].endswith("▏   20 B")
    assert lines[3:] == ["verifying sha256 digest", "writing manifest", "success"]
    push: list[dict[str, Any]] = [{"status": "retrieving manifest"},
            {"status": "pushing 1a2b3c4d5e6f", "digest": d1, "total": 1000, "completed": 0},
            {"status": "pushing 1a2b3c4d5e6f", "digest": d1, "total": 1000, "completed": 1000},
            {"status": "pushing manifest"}, {"status": "success"}]
    lines = [line.rstrip() for line in _draw("push", push).splitlines()]
    assert lines[0] == "retrieving manifest"
    assert lines[1].startswith("pushing 1a2b3c4d5e6f 100% ▕")
    assert lines[2:] == ["pushing manifest", "success"]
    # an MLX pull reports one "model" bar
    mlx = _draw("pull", [{"status": "pulling model", "digest": "sha256:model", "total": 5, "completed": 5}])
    assert mlx.startswith("pulling model: 100%")


def test_progress_on_a_terminal_redraws_and_clears() -> None:
    err = io.StringIO()
    progress = Progress(err, tty=True)
    spinner = Spinner("pulling manifest")
    progress.add(spinner)
    time.sleep(0.25)
    progress.stop()
    out = err.getvalue()
    assert "\x1b[?25l" in out and "pulling manifest" in out and out.endswith("\n")
    err = io.StringIO()
    progress = Progress(err, tty=True)
    progress.add(Spinner(""))
    time.sleep(0.15)
    progress.stop_and_clear()
    assert err.getvalue().endswith("\x1b[2K\x1b[1G\x1b[?25h")


def test_push_destination() -> None:
    assert push_destination("alice/mymodel") == "https://ollama.com/alice/mymodel"
    assert push_destination("alice/mymodel:v2") == "https://ollama.com/alice/mymodel:v2"
    assert push_destination("localhost:5000/ns/m") == "localhost:5000/ns/m:latest"


def test_run_flag_values() -> None:
    assert parse_think("") is True and parse_think("true") is True and parse_think("false") is False
    assert parse_think("high") == "high" and parse_think(None) is None
    with pytest.raises(APIError, match=r'invalid value for --think: "maybe" \(must be true, false'):
        parse_think("maybe")
    assert parse_keepalive("5m") == "5m0s" and parse_keepalive("-1s") == -1 and parse_keepalive(None) is None
    with pytest.raises(APIError, match="time: missing unit in duration"):
        parse_keepalive("10")
    assert infer_think(["completion", "thinking"], None, False) is True
    assert infer_think(["completion"], None, False) is None
    assert infer_think(["completion", "thinking"], False, True) is False


def test_argv_like_cobra() -> None:
    run = BY_NAME["run"]
    argv = normalize_argv(run, ["m", "--think", "why", "--verbose", "is", "--format=json", "--truncate=false"])
    args = build_parser(run).parse_intermixed_args(argv)
    bind_args(run, args)
    assert args.model == "m" and args.prompt == ["why", "is"] and args.think == "true"
    assert args.verbose is True and args.format == "json" and args.truncate is False
    args = build_parser(run).parse_intermixed_args(normalize_argv(run, ["m", "--think=low", "--dimensions", "8"]))
    bind_args(run, args)
    assert args.think == "low" and args.dimensions == 8 and args.truncate is None
    show = BY_NAME["show"]
    args = build_parser(show).parse_intermixed_args(normalize_argv(show, ["-v", "m"]))
    bind_args(show, args)
    assert args.verbose is True and args.model == "m"
    cp = BY_NAME["cp"]
    with pytest.raises(APIError, match=r"accepts 2 arg\(s\), received 1"):
        bind_args(cp, build_parser(cp).parse_intermixed_args(["a"]))
    rm = BY_NAME["rm"]
    with pytest.raises(APIError, match=r"requires at least 1 arg\(s\), only received 0"):
        bind_args(rm, build_parser(rm).parse_intermixed_args([]))
    assert BY_NAME["ls"] is BY_NAME["list"] and BY_NAME["start"] is BY_NAME["serve"]


def test_embedding_json_like_go() -> None:
    assert go_json_float32(0.1) == "0.1"
    assert go_json_float32(-0.0123456789) == "-0.012345679"
    assert go_json_float32(1.5e-7) == "1.5e-7"
    assert go_json_float32(3.0) == "3"
    assert go_json_float32(0.0) == "0"


def test_image_paths_in_a_prompt(tmp_path: Path) -> None:
    png = tmp_path / "my cat.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    escaped = str(png).replace(" ", "\\ ")
    assert extract_file_names(f"what is in {escaped} ?") == [escaped]
    assert normalize_file_path(escaped) == str(png)
    err = io.StringIO()
    text, images = extract_file_data(f"what is in {escaped}", err)
    assert text == "what is in" and len(images) == 1 and err.getvalue() == f"Added image '{png}'\n"
    # paths that do not exist are left in the text
    text, images = extract_file_data("see /nope/x.jpg", err)
    assert text == "see /nope/x.jpg" and images == []
    bad = tmp_path / "fake.jpg"
    bad.write_text("not an image")
    with pytest.raises(APIError, match="invalid file type: text/plain"):
        extract_file_data(f"look {bad}", err)


def test_save_request_from_session() -> None:
    opts = RunOptions(model="smollm2:135m", parent_model="", system="be brief",
                      options={"temperature": 0.0},
                      loaded_messages=[{"role": "user", "content": "hi"}],
                      messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"},
                                {"role": "assistant", "content": "a"}])
    req = new_create_request("mine", opts)
    assert req == {"model": "mine", "from": "smollm2:135m", "system": "be brief",
                   "parameters": {"temperature": 0.0},
                   "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"},
                                {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    opts.parent_model = "base:latest"
    assert new_create_request("mine", opts)["from"] == "base:latest"
