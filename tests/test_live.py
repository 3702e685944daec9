"""The live display (mobexport/commands/live.py) is drawn from two threads: the pipeline's, which redraws at once
when a step starts or a count completes, and rich's refresh thread. Neither may wait on the other for ever."""

from __future__ import annotations

import threading

from mobexport.commands.live import LiveSteps


def test_redraws_from_the_pipeline_and_the_refresh_thread_never_deadlock(tmp_path):
    """Before: a step's redraw took the display's lock, then rich's; the refresh thread took rich's, then (to
    render) the display's — a CI run hung on it for good (``mobexport tensorrt`` on a terminal)."""
    with open(tmp_path / "terminal", "w") as terminal:
        steps = LiveSteps(terminal)
        steps._live.refresh_per_second = 1000  # the refresh thread redraws as often as it can

        def pipeline():
            for i in range(300):
                steps(f"model → target: step{i % 5}")
                steps.count("calibrate", i % 4 + 1, 4)
                steps.runs(i % 4 + 1, 4)

        steps.__enter__()
        worker = threading.Thread(target=pipeline, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the pipeline's redraw and rich's refresh thread deadlocked"
        steps.__exit__(None, None, None)
    drawn = (tmp_path / "terminal").read_text()
    assert "model → target" in drawn and "calibrate 4/4" in drawn
