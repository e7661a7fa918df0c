"""Cache benchmark: a cached answer's wall time against an uncached one, and cache memory per 1,000 pages.

Usage::

    python -m benchmarks.cache [--runs N] [--pages N] [--limit N] [--out DIR]

* **Wall time.** ``grounding.completion`` in this process against the fakes of
  ``benchmarks.overhead`` in their own process, at its latencies (model 300 ms
  per turn, search 200 ms, the 3 result pages 50-800 ms): the same request
  uncached (``web_search.cache: false``: it searches, fetches and extracts) and
  cached (the search and the pages come from the cache; the two model turns
  still run), alternating, ``--runs`` of each after a warm-up; medians, p90 and
  the critical paths (uncached: 2 turns + search + slowest page; cached: 2 turns).
* **Memory per 1,000 pages.** ``--pages`` real WCXB pages extracted (in the
  extraction pool), each stored as the tool loop stores it (title, text and
  fetch time, JSON, zlib-compressed over 512 bytes) in (a) the in-process
  backend: its own byte count and what ``tracemalloc`` sees allocated; (b) a
  redis-server started for the run: ``used_memory`` before and after. Scaled
  to 1,000 pages, next to the raw UTF-8 size of the extracted text.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.overhead import DEFAULT_OUT, QUESTION, SHAPES, Latencies, SubprocessFakes, configure, loadavg

NAME = "cache"


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(0.9 * len(ordered) + 0.999) - 1)]


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "p90": round(p90(values), 1),
            "min": round(min(values), 1), "max": round(max(values), 1)}


def wall_times(fakes: Any, lat: Latencies, runs: int) -> dict[str, Any]:
    import grounding
    from grounding.cache import get_cache

    shape = SHAPES["default"]
    configure(fakes, shape, lat)
    kwargs = dict(model=f"openai/fake-{shape.policy}", api_base=f"{fakes.llm_url}/v1", api_key="sk-bench",
                  messages=[{"role": "user", "content": QUESTION}])

    def once(cache: bool) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = grounding.completion(web_search={"engine": shape.engine, "max_results": shape.max_results,
                                             "cache": cache}, **kwargs)
        return (time.perf_counter() - t0) * 1000, r.metadata

    for cache in (False, True, False, True):  # warm-up (litellm's import, the pool, the first cached pass)
        once(cache)
    uncached, cached = [], []
    hits = 0
    for _ in range(runs):
        ms, meta = once(False)
        assert not meta.searches[0].cached
        uncached.append(ms)
        ms, meta = once(True)
        hits += bool(meta.searches[0].cached and all(s.cached for s in meta.sources))
        cached.append(ms)
    critical_uncached = 2 * lat.model_ms + lat.search_ms + lat.page_max_ms
    return {"uncached_ms": _stat(uncached), "cached_ms": _stat(cached), "runs": runs, "cached_runs_all_hits": hits,
            "critical_uncached_ms": critical_uncached, "critical_cached_ms": 2 * lat.model_ms,
            "speedup_median": round(statistics.median(uncached) / statistics.median(cached), 2),
            "cache_status": get_cache().status(), "raw": {"uncached": uncached, "cached": cached}}


def _pages(n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` WCXB pages as the tool loop caches them: (url, {ok, title, text, ms})."""
    from providers.extract_pool import get_pool
    from tests.fakes.web import page_html, wcxb_ids

    from benchmarks.common import progress

    ids = wcxb_ids()[:n]
    pool = get_pool()
    window = max(1, pool.settings.max_pending // 2)  # keep the pool's queue under its bound

    def submit(i: str) -> Any:
        return pool.submit(page_html(f"wcxb/{i}") or b"", f"https://example.org/wcxb/{i}")

    futures = [(i, submit(i)) for i in ids[:window]]
    out = []
    for k, (i, future) in enumerate(progress(futures, total=len(ids), desc="extracting", unit="page")):
        if window + k < len(ids):
            futures.append((ids[window + k], submit(ids[window + k])))
        try:
            page = future.result()
        except Exception:  # noqa: BLE001 (a page over the CPU deadline: not stored)
            continue
        if page.text.strip():
            out.append((f"https://example.org/wcxb/{i}", {"ok": True, "title": page.title, "text": page.text,
                                                           "ms": 12.3}))
    return out


def memory(n: int) -> dict[str, Any]:
    from grounding.cache import Cache, MemoryBackend, RedisBackend, page_key
    from grounding.cache import _encode  # the encoding the cache stores
    from tests.fakes.redis_server import RedisServer

    pages = _pages(n)
    stored = len(pages)
    text_bytes = sum(len(p["text"].encode()) + len((p["title"] or "").encode()) for _, p in pages)
    backend = MemoryBackend(max_entries=10 * stored, max_bytes=1 << 40)
    keys = [page_key(url) for url, _ in pages]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key, (_, value) in zip(keys, pages):  # what the cache allocates to keep each page: key, value, entry
        backend.set_now(key, _encode(value, time.time()), 3600)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    encoded = [(key, backend.get_now(key)) for key in keys]
    value_bytes = sum(len(v or b"") for _, v in encoded)

    redis: dict[str, Any] = {}
    try:
        with RedisServer() as server:
            import redis as redis_py

            client = redis_py.Redis.from_url(server.url)
            used0 = int(client.info("memory")["used_memory"])
            cache = Cache(RedisBackend(server.url))
            for key, value in encoded:
                cache.backend.set_now(key, value, 3600)
            used1 = int(client.info("memory")["used_memory"])
            redis = {"used_memory_delta_bytes": used1 - used0, "keys": client.dbsize(),
                     "version": client.info("server")["redis_version"]}
            cache.close()
            client.close()
    except RuntimeError as exc:  # no redis-server here
        redis = {"skipped": str(exc)}

    def per_1000(value: float) -> float:
        return round(value / stored * 1000 / (1024 * 1024), 2)

    out = {"pages": stored, "text_bytes": text_bytes, "stored_value_bytes": value_bytes,
           "memory_backend_accounted_bytes": backend.bytes, "memory_backend_traced_bytes": traced,
           "per_1000_pages_mib": {"extracted_text": per_1000(text_bytes), "stored_values": per_1000(value_bytes),
                                  "memory_backend_accounted": per_1000(backend.bytes),
                                  "memory_backend_traced": per_1000(traced)}}
    if "used_memory_delta_bytes" in redis:
        out["per_1000_pages_mib"]["redis_used_memory"] = per_1000(redis["used_memory_delta_bytes"])
    out["redis"] = redis
    return out


def markdown(report: dict[str, Any]) -> str:
    w, m = report["wall"], report["memory"]
    per = m["per_1000_pages_mib"]
    lines = [
        "# Cache: a cached answer against an uncached one, and memory per 1,000 pages",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; load average before {report['loadavg_before']}, after {report['loadavg_after']}.",
        "",
        f"Fakes (own process): model {report['latencies']['model_ms']:.0f} ms per turn, search "
        f"{report['latencies']['search_ms']:.0f} ms, pages {report['latencies']['page_min_ms']:.0f}-"
        f"{report['latencies']['page_max_ms']:.0f} ms; {w['runs']} runs of each, alternating.",
        "",
        "| request | wall median ms | p90 ms | critical path ms |",
        "| --- | ---: | ---: | ---: |",
        f"| uncached (`cache: false`) | {w['uncached_ms']['median']} | {w['uncached_ms']['p90']} | {w['critical_uncached_ms']:.0f} |",
        f"| cached (search and pages from the cache) | {w['cached_ms']['median']} | {w['cached_ms']['p90']} | {w['critical_cached_ms']:.0f} |",
        "",
        f"A cached answer takes **{w['speedup_median']}x less** wall time (median); "
        f"{w['cached_runs_all_hits']} of {w['runs']} cached runs had every lookup from the cache.",
        "",
        f"Memory, {m['pages']} WCXB pages extracted and stored (scaled to 1,000 pages):",
        "",
        "| what | MiB per 1,000 pages |",
        "| --- | ---: |",
        f"| extracted text (UTF-8) | {per['extracted_text']} |",
        f"| stored values (JSON, zlib over 512 B) | {per['stored_values']} |",
        f"| in-process backend, its own count | {per['memory_backend_accounted']} |",
        f"| in-process backend, tracemalloc | {per['memory_backend_traced']} |",
    ]
    if "redis_used_memory" in per:
        lines.append(f"| Redis {m['redis'].get('version')}, used_memory growth | {per['redis_used_memory']} |")
    else:
        lines.append(f"| Redis | not measured: {m['redis'].get('skipped')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import environment, seed_everything, write_outputs

    ap = argparse.ArgumentParser(prog="python -m benchmarks.cache", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs of each (uncached, cached), default 10")
    ap.add_argument("--pages", type=int, default=1000, help="pages stored for the memory figure (default 1000)")
    ap.add_argument("--limit", type=int, default=None, help="quick run: N runs, 20 x N pages")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--model-ms", type=float, default=300)
    ap.add_argument("--search-ms", type=float, default=200)
    ap.add_argument("--page-min-ms", type=float, default=50)
    ap.add_argument("--page-max-ms", type=float, default=800)
    args = ap.parse_args(argv)
    runs, n_pages = args.runs, args.pages
    if args.limit is not None:
        runs, n_pages = min(runs, args.limit), min(n_pages, 20 * args.limit)
    lat = Latencies(args.model_ms, args.search_ms, args.page_min_ms, args.page_max_ms)
    seed_everything()
    os.environ["GROUNDING_ALLOW_PRIVATE_NETWORKS"] = "1"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    for name in ("GROUNDING_CACHE", "GROUNDING_REDIS_URL", "GROUNDING_CONFIG", "GROUNDING_ENGINE", "GROUNDING_MODEL"):
        os.environ.pop(name, None)
    load_before = loadavg()
    print("[cache] starting the fakes ...", file=sys.stderr)
    fakes = SubprocessFakes()
    try:
        os.environ.update(fakes.env)
        print(f"[cache] {runs} uncached and {runs} cached answers ...", file=sys.stderr)
        wall = wall_times(fakes, lat, runs)
    finally:
        fakes.close()
    print(f"[cache] memory of {n_pages} pages ...", file=sys.stderr)
    mem = memory(n_pages)
    command = " ".join(["python -m benchmarks.cache", *(argv if argv is not None else sys.argv[1:])])
    report = {"benchmark": NAME, "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "environment": environment(("redis",)), "loadavg_before": load_before, "loadavg_after": loadavg(),
              "latencies": asdict(lat), "wall": wall, "memory": mem}
    write_outputs(args.out, NAME, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
