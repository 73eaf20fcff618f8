"""orchard.aio.Client: the same things as the sync client, on asyncio."""
from __future__ import annotations

import asyncio

import pytest

import orchard
import orchard.aio
from orchard import Outcome, State


def run(coro):
    return asyncio.run(coro)


# This test verifies submit/wait/result, watch, subtasks, history, tasks
# paging, submit_many with a bad spec, idempotency and server_info on asyncio.
def test_async_client_does_the_same(running):
    async def main():
        async with orchard.aio.Client(running.address, timeout=15) as c:
            info = await c.server_info()
            assert info.api_version >= orchard.API_VERSION
            assert "sum" in await c.kinds()
            h = await c.submit("sum", range=(0, 1000), subtasks=4)
            task = await h.wait(timeout=60)
            assert task.state is State.TERMINATED and task.outcome is Outcome.SUCCEEDED
            assert await h.result() == {"sum": 499500}
            assert [s.index async for s in h.subtasks()] == [0, 1, 2, 3]
            assert State.TERMINATED in [e.to_state async for e in h.history()]
            seen = [t async for t in h.watch(timeout=10)]
            assert seen[-1].is_terminal

            out = await c.submit_many([{"kind": "noop", "range": (0, 1), "labels": {"s": "a"}}
                                       for _ in range(1200)] + [{"kind": "noop", "range": (5, 1)}])
            assert all(isinstance(h, orchard.aio.TaskHandle) for h in out[:-1])
            assert isinstance(out[-1], orchard.InvalidArgument) and out[-1].field == "range"
            ids = [t.id async for t in c.tasks(labels={"s": "a"})]
            assert len(ids) == 1200 and set(ids) == {h.id for h in out[:-1]}

            a = await c.submit("noop", range=(0, 3), request_id="same")
            b = await c.submit("noop", range=(0, 3), request_id="same")
            assert a.id == b.id

            f = await c.submit("flaky", range=(0, 10), subtasks=2, max_attempts=1,
                               params={"fail": {"0": -1}})
            with pytest.raises(orchard.TaskFailed) as e:
                await f.wait(timeout=60)
            assert [s.index for s in e.value.failed_subtasks] == [0]

            s = await c.submit("sleep", range=(0, 2), subtasks=2, params={"ms": 60000})
            async for t in s.watch(timeout=30):
                if t.subtasks.running > 0:
                    break
            await s.cancel("stop")
            with pytest.raises(orchard.TaskCancelled):
                await s.wait(timeout=30)

            with pytest.raises(orchard.InvalidArgument) as e:
                await c.submit("sum", range=(0, 10), max_attempts=1000)
            assert e.value.field == "policy.max_attempts"
            with pytest.raises(orchard.NotFound):
                await c.get("t-doesnotexist0000")
            with pytest.raises(orchard.WaitTimeout):
                await (await c.submit("nobody-runs-this", range=(0, 1))).wait(timeout=0.5)
    run(main())


# This test verifies the async watch across a server restart.
def test_async_watch_across_server_restart(running):
    async def main():
        async with orchard.aio.Client(running.address, timeout=15) as c:
            h = await c.submit("flaky", range=(0, 40), subtasks=4, params={"ms": 700},
                               parallelism=1)
            restarted = False
            last = None
            async for t in h.watch(timeout=120):
                last = t
                if not restarted and t.state is State.RUNNING:
                    running.kill_server()
                    running.start_server()
                    restarted = True
            assert restarted and last.result == {"sum": sum(range(40))}
    run(main())
