"""The agent's side of a 20 ms line: one frame of its voice (or silence while it thinks) every 20 ms.

Peers expect audio at the line's pace and hang up without it (Asterisk after about 2 s), and a caller hears a
frame sent late as a gap, so each call has a task that sends on an absolute schedule: a frame that goes out late
moves the next one no later. After a stall of more than ``RESYNC_S`` (the machine was starved), the schedule
restarts from now instead of bursting the backlog, and the late frames are counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

FRAME_S = 0.02
RESYNC_S = 0.2


async def pace(session, tick: Callable[[], Awaitable[None] | None], on_late=None) -> None:
    """Until the session ends, call ``tick`` every 20 ms (it sends the next frame of ``session.play``).
    ``on_late(count)`` is told of frames that could not go out on time."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not session.ended.is_set():
        sent = tick()
        if sent is not None:
            await sent
        due += FRAME_S
        behind = loop.time() - due
        if behind > RESYNC_S:
            if on_late is not None:
                on_late(int(behind / FRAME_S))
            due = loop.time()
        await asyncio.sleep(max(0.0, due - loop.time()))
