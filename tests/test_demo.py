"""The offline demo end to end with a small plan: synthetic actor → prepare → train → bundle →
synthesize, then a second run that reuses every cached stage."""

from __future__ import annotations

import av
import pytest

from newsanchor.demo.build import TRAINING_SENTENCES, DemoHooks, DemoPlan, demo_cache, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SMALL = DemoPlan(sentences=TRAINING_SENTENCES[:20], clips=1, crop_size=64, mouth_max_steps=20,
                 renderer=(("ngf", 8), ("n_downsampling", 2), ("n_blocks", 1)), renderer_steps=4, renderer_batch=2,
                 template_frames=25)


def test_the_demo_builds_an_anchor_once_and_reads_the_news(tmp_path):
    stages: list[str] = []
    hooks = DemoHooks(stage=stages.append)
    result = run_demo(tmp_path / "demo.mp4", text="Good evening. Here is the news.", root=tmp_path / "cache",
                      hooks=hooks, plan=SMALL)
    assert any("training the renderer" in s for s in stages) and any("preparing" in s for s in stages)
    assert abs(result["duration_s"] - result["audio_duration_s"]) <= 1 / 25 and result["frames"] > 25
    with av.open(str(tmp_path / "demo.mp4")) as container:
        assert container.metadata["comment"].startswith("AI-generated")
        assert container.streams.video[0].codec_context.width == 384 and container.streams.audio
    cache = demo_cache(tmp_path / "cache", SMALL)
    assert (cache / "anchor" / "anchor.json").is_file()
    assert len(list((cache / "recordings").glob("*.mp4"))) == 1

    stages.clear()
    run_demo(tmp_path / "again.mp4", text="And now the weather.", root=tmp_path / "cache", hooks=hooks, plan=SMALL)
    assert stages == ["reading the news script"]  # nothing rebuilt
