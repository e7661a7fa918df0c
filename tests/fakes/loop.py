"""One event loop for a test module, closed cleanly when the module is done.

litellm keeps loop-bound clients and a loop-bound logging worker between
calls, so a module that awaits litellm directly keeps one loop. Left open,
that loop's pending logging tasks are destroyed at exit ("Task was destroyed
but it is pending!"); :meth:`ModuleLoop.close` finishes them first.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

__all__ = ["ModuleLoop", "module_loop"]

T = TypeVar("T")


class ModuleLoop:
    """``run(coro)`` on one loop; ``close()`` drains litellm's logging, cancels the rest, closes."""

    def __init__(self) -> None:
        from grounding.llm import own_loop

        self.loop = asyncio.new_event_loop()
        own_loop(self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        from grounding.llm import drain_logging

        async def finish() -> None:
            await drain_logging()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.loop.run_until_complete(finish())
        self.loop.close()


def module_loop() -> tuple[ModuleLoop, Any]:
    """``(loop, fixture)``: assign both at a test module's top level
    (``_LOOP, _close_loop = module_loop()``); the autouse fixture closes the loop after the module."""
    loop = ModuleLoop()

    @pytest.fixture(scope="module", autouse=True)
    def _close_loop():  # type: ignore[no-untyped-def]
        yield
        loop.close()

    return loop, _close_loop
