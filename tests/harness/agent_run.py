"""An observer agent running in the test's event loop for the length of a ``async with``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from zastava.observer.agent import ObserverAgent

__all__ = ["running_agent"]


@contextlib.asynccontextmanager
async def running_agent(agent: ObserverAgent, *, settle: float = 0.5) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``agent`` until the block ends, then stop it and wait for it (10 s). ``settle``: the time given to
    its first list and event subscription before the block starts (0.5 s: both, loaded 2-core machine)."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(settle)
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
