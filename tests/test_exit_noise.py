"""No noise at exit: litellm's background logging is finished on our loops, and its orphaned
worker tasks (one per loop it ran on) are not reported as "Task was destroyed but it is pending!"."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import asyncio, gc, sys
    import grounding
    base, = sys.argv[1:]
    kw = dict(model="openai/fake-direct", api_base=base, api_key="sk-test",
              messages=[{"role": "user", "content": "hi"}])
    print(grounding.completion(**kw).choices[0].message.content)        # the sync API's loop
    async def on_my_loop():
        r = await grounding.acompletion(**kw)                            # the caller's own loop
        return r.choices[0].message.content
    print(asyncio.run(on_my_loop()))
    print("".join(c.choices[0].delta.content or "" for c in grounding.completion(stream=True, **kw) if c.choices))
    gc.collect()
''')


def test_the_library_exits_quietly_across_loops(fake_llm, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, f"{fake_llm.url}/v1"], capture_output=True, text=True,
                          cwd=ROOT, timeout=180, env={**os.environ, "GROUNDING_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["I know this."] * 3
    for noise in ("Task was destroyed", "was never awaited", "Event loop is closed", "Traceback", "LoggingWorker"):
        assert noise not in proc.stderr, proc.stderr
