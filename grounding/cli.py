"""The command line: ``grounding ask "QUESTION"``, ``grounding serve`` and ``grounding bench``.

Progress goes to stderr, the answer and its numbered sources to stdout;
``--json`` prints the ChatCompletion JSON alone. Errors are one line on stderr
and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grounding",
        description="Answer questions with any chat model, grounded in web search, with citations.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ask = sub.add_parser("ask", help="answer a question with web search and citations",
                         description="Answer QUESTION with web search and numbered citations.")
    ask.add_argument("question", help="the question to answer")
    ask.add_argument("--model", "-m", help="model id, e.g. openai/gpt-4.1-mini (default: $GROUNDING_MODEL, "
                     "else a hosted model whose API key is set, else the embedded local model)")
    ask.add_argument("--engine", "-e", help="search engine: local, exa, tavily, brave, searxng, serper, google, "
                     "duckduckgo, perplexity, ... (default: $GROUNDING_ENGINE, else one whose key is set, else local)")
    ask.add_argument("--max-results", "-n", type=int, default=3, help="results fetched per search, 1-20 (default 3)")
    ask.add_argument("--max-steps", "-s", type=int, default=1, help="search rounds before answering, 1-5 (default 1)")
    ask.add_argument("--corpus", "-c", help="folder of HTML/Markdown/text files for the local engine "
                     "(default: $GROUNDING_CORPUS, else Python's own reference docs)")
    ask.add_argument("--verify", metavar="MODE",
                     help="check each citation against its page: repair (move or remove what the page does not "
                     "say; default), flag (keep, report), off (as the model wrote them)")
    ask.add_argument("--verifier", metavar="MODEL",
                     help="a model to judge citations with (default: the built-in judge; 'local' works offline)")
    scope = ask.add_mutually_exclusive_group()
    scope.add_argument("--domain", "-d", action="append", metavar="DOMAIN", dest="allowed_domains",
                       help="search only this domain and its subdomains (repeat for several)")
    scope.add_argument("--exclude-domain", "-x", action="append", metavar="DOMAIN", dest="excluded_domains",
                       help="never use results from this domain or its subdomains (repeat for several)")
    ask.add_argument("--max-total-results", type=int, help="results used across all search steps, 1-100")
    ask.add_argument("--context-size", choices=("low", "medium", "high"),
                     help="how much source text the model reads (default medium)")
    ask.add_argument("--country", help="the user's country (two letters, e.g. US) for engines that take one")
    ask.add_argument("--json", action="store_true", help="print the ChatCompletion JSON alone on stdout")
    serve = sub.add_parser("serve", help="run the OpenAI-compatible HTTP server",
                           description="Serve POST /v1/chat/completions, GET /v1/models, /v1/routers and "
                           "/health (OpenAI-compatible). API keys: server.api_keys in the config, "
                           "$GROUNDING_API_KEYS and $GROUNDING_ADMIN_KEYS (comma-separated); without any "
                           "key the server is open and listens on loopback only.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", "-p", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--config", help="config file, YAML or JSON (default: $GROUNDING_CONFIG)")
    serve.add_argument("--workers", "-w", type=int, default=None,
                       help="server processes sharing the port (default: the config's server.workers, else 1); "
                       "more than 1 needs redis_url (or $GROUNDING_REDIS_URL) to share routers, statistics, "
                       "limits and the cache")
    serve.add_argument("--preload-local", action="store_true",
                       help="load the embedded model before listening, so the first offline request does not "
                       "wait for it (loading holds the process for a few seconds)")
    sub.add_parser("bench", help="run a benchmark (from a clone): grounding bench list | NAME [--limit N] ...",
                   description="Run the benchmark suite of a clone of the repository: the same as "
                   "python -m benchmarks ARGS.", add_help=False)
    return parser


def _bench(argv: list[str]) -> int:
    """``grounding bench ...``: the suite in ``benchmarks/`` beside this package (a clone)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").exists():
        print("grounding: error: the benchmarks live in the repository; run this from an editable install "
              "of a clone (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.__main__ import bench_main

    return bench_main(argv)


def _serve(args: argparse.Namespace) -> int:
    # Imported here, so `grounding --help` and `grounding ask` never load starlette or uvicorn.
    from .server.app import serve

    serve(host=args.host, port=args.port, config=args.config, workers=args.workers,
          preload_local=args.preload_local)
    return 0


class _Progress:
    """Progress events as short lines on stderr, timestamped from the start of the command.

    Counted steps (joining the model's weight parts, indexing, fetching pages)
    print at most once a second per stage, and always their last one; every
    other event prints.
    """

    _THROTTLED = ("loading_model", "indexing", "reading", "fetched")

    def __init__(self, quiet: bool = False) -> None:
        self.t0 = time.perf_counter()
        self.quiet = quiet
        self._last: dict[str, float] = {}

    def __call__(self, event: object) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        stage = getattr(event, "stage", None)
        done, total = getattr(event, "done", None), getattr(event, "total", None)
        counting = done is not None and total is not None and done != total
        if stage in self._THROTTLED and counting and now - self._last.get(stage, -1e9) < 1.0:
            return  # a step of a count (part 3 of 22): at most one a second, and always the last
        self._last[str(stage)] = now
        print(f"[{now - self.t0:5.1f}s] {event}", file=sys.stderr, flush=True)


async def _ask(args: argparse.Namespace) -> int:
    import asyncio

    from .llm import own_loop

    own_loop(asyncio.get_running_loop())
    try:
        return await _answer(args)
    finally:
        from .llm import drain_logging

        await drain_logging()  # litellm's background logging, finished before the loop ends


def _check_first(request: dict) -> None:
    """The request's own settings (its engine's key, its model's key), checked before the rest of
    the library (and litellm) is imported: a missing key is reported at once."""
    from .preflight import check_request
    from .request import parse_request
    from .target import default_model

    check_request(parse_request(dict(request), default_model=default_model()))


async def _answer(args: argparse.Namespace) -> int:
    from providers.search import LocalSearchEngine, register_engine

    from .errors import InvalidRequestError

    progress = _Progress()
    if args.corpus and args.corpus != "python-docs" and not os.path.isdir(args.corpus):
        raise InvalidRequestError(f"--corpus: folder not found: {args.corpus}", param="corpus")
    if args.corpus:
        register_engine("local", LocalSearchEngine(args.corpus))
    if args.verify is not None and args.verify not in ("repair", "flag", "off"):
        raise InvalidRequestError(f"--verify must be repair, flag or off, not {args.verify!r}", param="verify")
    web_search: dict[str, object] = {"max_results": args.max_results, "max_steps": args.max_steps}
    for name in ("allowed_domains", "excluded_domains", "max_total_results"):
        if getattr(args, name) is not None:
            web_search[name] = getattr(args, name)
    if args.context_size:
        web_search["search_context_size"] = args.context_size
    if args.country:
        web_search["user_location"] = {"type": "approximate", "approximate": {"country": args.country}}
    if args.engine or args.corpus:
        web_search["engine"] = args.engine or "local"
    request = {
        "messages": [{"role": "user", "content": args.question}],
        "web_search": web_search,
        "stream": not args.json,
    }
    if args.model:
        request["model"] = args.model
    citations = {k: v for k, v in (("verify", args.verify), ("verifier", args.verifier)) if v}
    if citations:
        request["citations"] = citations
    _check_first(request)
    from .api import acompletion

    if args.json:
        result = await acompletion(progress=progress, **request)
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0

    final = None
    async for chunk in await acompletion(progress=progress, **request):
        for choice in chunk.choices:
            if choice.delta.content:
                sys.stdout.write(choice.delta.content)
                sys.stdout.flush()
        if chunk.metadata is not None:
            final = chunk.metadata
    print()
    if final is not None:
        _print_sources(final)
    return 0


def _print_sources(meta) -> None:
    numbered = [s for s in meta.sources if s.id is not None]
    if numbered:
        print("\nSources:")
        for s in numbered:
            mark = "" if s.cited else "  (not cited)"
            print(f"[{s.id}] {s.title or s.url}\n    {s.url}{mark}")
    failed = [s for s in meta.sources if s.status == "failed"]
    for s in failed:
        print(f"(skipped {s.url}: {s.error})", file=sys.stderr)
    for warning in meta.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``grounding`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import asyncio

    from .errors import GroundingError

    try:
        if args.command == "serve":
            return _serve(args)
        return asyncio.run(_ask(args))
    except GroundingError as exc:
        print(f"grounding: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("grounding: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
