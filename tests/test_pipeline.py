"""Synthesis end to end (pipeline.py, `newsanchor synthesize`) with the tiny anchor of the synthetic
actor (no ../shared needed); the lip-sync evaluation also reads real GRID clips."""

from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor.bundle import load_bundle
from newsanchor.cli import app
from newsanchor.composite.overlay import DisclosureConfig, label_rect
from newsanchor.errors import NewsanchorError
from newsanchor.pipeline import AnchorPipeline, SynthesisSettings
from newsanchor.synthesis import VideoRequest, make_video

pytestmark = [pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def anchor(actor_anchor_bundle):
    """The synthetic actor's tiny anchor (read only here)."""
    return actor_anchor_bundle


@pytest.fixture(scope="module")
def speech_wav(anchor):
    """Speech ``[S]`` float32 at 16 kHz, ~6 s, longer than the anchor's template (it must loop)."""
    from newsanchor.speech import synthesize_speech

    wav = synthesize_speech("Good evening. The council met today to discuss the budget for next year, "
                            "and the vote is expected on Friday.").waveform
    assert len(wav) > 640 * load_bundle(anchor).template_arrays["landmarks"].shape[0]
    return wav


def test_a_video_as_long_as_its_speech_with_label_and_tag(anchor, speech_wav, tmp_path):
    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    out = tmp_path / "news.mp4"
    result = pipeline.synthesize(speech_wav, out)
    assert result["frames"] == math.ceil(len(speech_wav) / 640) > 30
    assert abs(result["duration_s"] - result["audio_duration_s"]) <= 1 / 25
    with av.open(str(out)) as container:
        assert container.metadata["comment"].startswith("AI-generated")
        assert container.metadata["newsanchor_ai_generated"] == "true"
        video = container.streams.video[0]
        height, width = next(iter(load_bundle(anchor).template_frames())).shape[:2]
        assert (video.codec_context.width, video.codec_context.height) == (width, height)
        assert container.streams.audio
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_precision_is_the_callers_and_is_written_into_the_video(anchor, speech_wav, tmp_path, precision):
    """Precision is chosen by the caller (or by the hardware for auto), never by a timing: two
    pipelines give the same frames, and the video says which arithmetic made it."""
    frames = []
    for run in range(2):
        pipeline = AnchorPipeline(load_bundle(anchor), settings=SynthesisSettings(precision=precision), device="cpu")
        assert pipeline.runner.path == precision
        frames.append(np.stack(list(pipeline.frames(pipeline.mouth_trajectory(speech_wav[:16000])))))
    np.testing.assert_array_equal(frames[0], frames[1])
    pipeline.synthesize(speech_wav[:8000], tmp_path / "a.mp4")
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert container.metadata["newsanchor_precision"] == precision
    with pytest.raises(ValueError, match="fp16"):
        SynthesisSettings(precision="fp16")


def test_frames_stream_and_only_the_face_and_label_change(anchor, speech_wav):
    bundle = load_bundle(anchor)
    pipeline = AnchorPipeline(bundle, settings=SynthesisSettings(batch_size=4), device="cpu")
    mouth = pipeline.mouth_trajectory(speech_wav)
    frames = pipeline.frames(mouth)
    first = next(frames)  # produced without rendering the whole video
    template = next(iter(bundle.template_frames()))
    changed = np.abs(first.astype(int) - template.astype(int)).max(axis=-1) > 12
    x, y, w, h = (int(v) for v in bundle.template_arrays["crop_box"])
    lx, ly, lw, lh = label_rect(first.shape, position="bottom-right")
    outside = changed.copy()
    outside[max(y, 0):y + h, max(x, 0):x + w] = False
    outside[ly:ly + lh, lx:lx + lw] = False
    assert changed.any() and not outside.any()
    assert changed[ly:ly + lh, lx:lx + lw].any()  # the label is there


def test_the_label_can_be_moved_or_left_out(anchor, speech_wav):
    bundle = load_bundle(anchor)
    mouth = np.zeros((3, 10), np.float32)
    plain = AnchorPipeline(bundle, settings=SynthesisSettings(label=DisclosureConfig(enabled=False)), device="cpu")
    moved = AnchorPipeline(bundle, settings=SynthesisSettings(label=DisclosureConfig(position="top-left")), device="cpu")
    a, b = next(plain.frames(mouth)), next(moved.frames(mouth))
    lx, ly, lw, lh = label_rect(a.shape, position="top-left")
    assert np.abs(a[ly:ly + lh, lx:lx + lw].astype(int) - b[ly:ly + lh, lx:lx + lw]).max() > 50
    assert np.array_equal(a[ly + lh:], b[ly + lh:])


def test_synthesize_command_reads_text_and_writes_captions(anchor, tmp_path):
    result = CliRunner().invoke(app, ["synthesize", "--anchor", str(anchor), "--text", "Good evening. Here is the news.",
                                      "--out", str(tmp_path / "a.mp4"), "--captions", str(tmp_path / "a.vtt"),
                                      "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"video", "frames", "fps", "duration_s", "audio_duration_s"} <= set(summary)
    assert abs(summary["duration_s"] - summary["audio_duration_s"]) <= 1 / 25
    assert (tmp_path / "a.vtt").read_text().startswith("WEBVTT") and "Here is the news." in (tmp_path / "a.vtt").read_text()


@pytest.mark.parametrize("args, message", [
    ([], "exactly one"),
    (["--text", "Hi.", "--audio", "x.wav"], "exactly one"),
    (["--audio", "missing.wav"], "missing.wav"),
    (["--text", "Hi.", "--captions", "c.txt"], "c.txt"),
    (["--text", "   "], "empty"),
    (["--text", "Hi.", "--precision", "fp16"], "--precision 'fp16'"),
])
def test_synthesize_command_refuses_bad_input_in_one_line(anchor, tmp_path, args, message):
    result = CliRunner().invoke(app, ["synthesize", "--anchor", str(anchor), "--out", str(tmp_path / "a.mp4"), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "a.mp4").exists()


def test_studio_background_and_lower_third(anchor, tmp_path):
    bundle = load_bundle(anchor)
    frame = next(iter(bundle.template_frames())).copy()
    frame[:20] = (0, 177, 64)  # a green screen above the presenter's head
    studio = np.zeros((100, 200, 3), np.uint8)
    studio[..., 2] = 255  # blue studio
    plain = AnchorPipeline(bundle, device="cpu").finish(frame)
    keyed = AnchorPipeline(bundle, settings=SynthesisSettings(background=studio, key_colour=(0, 177, 64)),
                           device="cpu").finish(frame)
    # keyed with the screen's colour, the corner becomes the studio's
    assert keyed[5, 5, 2] > 200 and keyed[5, 5, 1] < 60 and not np.array_equal(plain[5, 5], keyed[5, 5])
    titled = AnchorPipeline(bundle, settings=SynthesisSettings(lower_third=("Evening news", "Live")),
                            device="cpu").finish(frame)
    assert np.abs(titled.astype(int) - plain).max() > 50
    result = CliRunner().invoke(app, ["synthesize", "--anchor", str(anchor), "--text", "Hello.", "--out",
                                      str(tmp_path / "a.mp4"), "--subtitle", "Live"])
    assert result.exit_code == 1 and "--subtitle needs --title" in result.output


def test_streamed_mouth_trajectory_equals_one_pass(anchor, speech_wav):
    from newsanchor.audio2mouth.infer import mouth_from_audio
    from newsanchor import pipeline as pipeline_module

    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    one_pass = mouth_from_audio(pipeline.mouth_model, speech_wav, pipeline.stats, closed_mouth=pipeline.closed_mouth)
    chunk = pipeline_module.AUDIO_CHUNK
    try:
        pipeline_module.AUDIO_CHUNK = 16000  # 1-s pieces: several chunk borders inside the 6 s
        streamed = pipeline.mouth_trajectory(speech_wav)
    finally:
        pipeline_module.AUDIO_CHUNK = chunk
    assert streamed.shape == one_pass.shape
    np.testing.assert_allclose(streamed, one_pass, atol=1e-4)


def _invoke_synthesize(anchor, out, *args):
    return CliRunner().invoke(app, ["synthesize", "--anchor", str(anchor), "--out", str(out), "-q", *args])


def test_a_script_over_the_limit_is_refused_before_any_work(anchor, tmp_path):
    script = tmp_path / "bulletin.txt"
    sentence = "The council met on Tuesday to discuss the budget. "
    script.write_text(sentence * (50_000 // len(sentence) + 1), encoding="utf-8")
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--text-file", str(script))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "bulletin.txt" in result.output and "50,0" in result.output and "--max-chars" in result.output
    assert not (tmp_path / "a.mp4").exists()


def test_letters_the_voice_cannot_read_are_named_with_their_place(anchor, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("Good evening.\nThe minister said 谢谢 to the crowd.\n", encoding="utf-8")
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--text-file", str(script))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "script.txt" in result.output and "line 2, column 19" in result.output
    assert not (tmp_path / "a.mp4").exists()


def test_invisible_characters_and_emoji_still_give_a_video(anchor, tmp_path):
    text = "Good\u200b evening \U0001F600.\x00 Prices rose 5% \u2014 \u20ac3.20 a caf\u00e9."
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--text", text, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] > 25 and abs(summary["duration_s"] - summary["audio_duration_s"]) <= 1 / 25


def test_silent_audio_gives_a_closed_mouth_video(anchor, tmp_path):
    import wave

    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(np.zeros(16000 * 2, np.int16).tobytes())
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--audio", str(silence), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["frames"] == 50
    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    mouth = pipeline.mouth_trajectory(np.zeros(16000 * 2, np.float32))
    np.testing.assert_allclose(mouth, np.broadcast_to(pipeline.closed_mouth, mouth.shape), atol=1e-5)


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10, b"not audio at all"])
def test_unreadable_audio_is_one_line_error_naming_the_file(anchor, tmp_path, content):
    broken = tmp_path / "speech.wav"
    broken.write_bytes(content)
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--audio", str(broken))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "speech.wav" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "a.mp4").exists()


def test_burned_in_captions_show_while_the_words_are_spoken(anchor, tmp_path):
    args = ["--text", "Good evening. Here is the news.", "--json"]
    plain = _invoke_synthesize(anchor, tmp_path / "plain.mp4", *args)
    burned = _invoke_synthesize(anchor, tmp_path / "burned.mp4", *args, "--burn-captions")
    assert plain.exit_code == 0 and burned.exit_code == 0, burned.output
    with av.open(str(tmp_path / "plain.mp4")) as a, av.open(str(tmp_path / "burned.mp4")) as b:
        frames = [(x.to_ndarray(format="rgb24").astype(int), y.to_ndarray(format="rgb24").astype(int))
                  for x, y in zip(a.decode(video=0), b.decode(video=0))]
    middle_rows = [np.abs(x - y)[int(0.6 * x.shape[0]):].max() for x, y in frames]
    assert max(middle_rows) > 100  # the caption is drawn in the lower part of the picture
    assert middle_rows[0] < 40  # not before the first word (the voice starts after a short silence)
    refused = _invoke_synthesize(anchor, tmp_path / "c.mp4", "--audio", "x.wav", "--burn-captions")
    assert refused.exit_code == 1 and "--burn-captions needs a script" in refused.output


def test_make_video_reports_its_stages_and_gives_the_pipeline_back_as_it_was(anchor, tmp_path):
    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    shared = pipeline.settings
    stages, frames = [], []
    request = VideoRequest(text="Good evening.", title="Evening news", subtitle="Live", burn_captions=True,
                           captions=tmp_path / "a.srt")
    summary = make_video(pipeline, request, tmp_path / "a.mp4", on_stage=lambda f, s: stages.append((f, s)),
                         on_frames=lambda done, total: frames.append((done, total)))
    assert [s for _, s in stages] == ["speaking the script", "rendering", "writing captions"]
    assert [f for f, _ in stages] == sorted(f for f, _ in stages) and stages[-1][0] < 1
    assert frames[-1] == (summary["frames"], summary["frames"])
    assert summary["captions"] == str(tmp_path / "a.srt") and "Good evening." in (tmp_path / "a.srt").read_text()
    assert pipeline.settings is shared and pipeline.caption_burner is None  # the lower third was this video's only

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a caller stopping the frames (the worker's cancel) stops the video
        make_video(pipeline, VideoRequest(text="Good evening.", title="Stopped"), tmp_path / "b.mp4", on_frames=stop)
    assert pipeline.settings is shared and not (tmp_path / "b.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_same_script_gives_the_same_video(anchor, tmp_path):
    """The voice speaks a sentence the same way every time (its noise is repeatable), so text →
    video is reproducible byte for byte, captions included."""
    pipeline = AnchorPipeline(load_bundle(anchor), settings=SynthesisSettings(precision="fp32"), device="cpu")
    script = "Good evening. Rain is expected across the north tonight."
    videos = []
    for k in range(2):
        make_video(pipeline, VideoRequest(text=script, captions=tmp_path / f"{k}.srt"), tmp_path / f"{k}.mp4")
        videos.append(((tmp_path / f"{k}.mp4").read_bytes(), (tmp_path / f"{k}.srt").read_text()))
    assert videos[0] == videos[1]


def test_make_video_refuses_in_one_line_before_any_speech(anchor, tmp_path):
    import wave

    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    stages = []
    with pytest.raises(NewsanchorError, match=r"^title/subtitle: title 'Caf\xe9'"):
        make_video(pipeline, VideoRequest(text="Hi.", title="Caf\u00e9"), tmp_path / "a.mp4", on_stage=lambda f, s: stages.append(s))
    assert stages == [] and pipeline.settings.lower_third is None
    with pytest.raises(NewsanchorError, match="must end in .mp4"):
        make_video(pipeline, VideoRequest(text="Hi."), tmp_path / "a.avi")
    short = tmp_path / "short.wav"
    with wave.open(str(short), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(np.zeros(1000, np.int16).tobytes())
    with pytest.raises(NewsanchorError, match=f"^{short}: less than 0.1 s of sound$"):
        make_video(pipeline, VideoRequest(recording=short), tmp_path / "a.mp4")
    with pytest.raises(NewsanchorError, match="^audio: less than 0.1 s"):
        make_video(pipeline, VideoRequest(recording=short, input_name="audio"), tmp_path / "a.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.wav"]


@pytest.mark.slow
def test_evaluate_lipsync_scores_the_anchor_beside_the_real_recording(anchor, grid10, tmp_path):
    recordings = [c["source"] for c in grid10.clips[4:6]]  # real GRID clips: speech and the speaker saying it
    result = CliRunner().invoke(app, ["evaluate", "lipsync", str(anchor), *recordings,
                                      "--out-video", str(tmp_path / "lips.mp4"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["output"]["frames"] == report["real"]["frames"] == 150
    assert report["real"]["face_found"] == 1.0 and report["real"]["correlation"] > 0.2
    assert set(report["checks"]) == {"face_found", "correlation", "closed_in_pauses"}
    assert [r["output"]["frames"] for r in report["per_recording"]] == [75, 75]
    assert all(r["real"]["face_found"] == 1.0 for r in report["per_recording"])
    assert (tmp_path / "lips.mp4").is_file()


@pytest.mark.slow  # compiling takes ~40 s
def test_synthesize_with_a_compiled_renderer_gives_the_same_video_length(anchor, tmp_path):
    result = _invoke_synthesize(anchor, tmp_path / "a.mp4", "--text", "Good evening.", "--compile", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert abs(summary["duration_s"] - summary["audio_duration_s"]) <= 1 / 25
    assert set(summary["stage_seconds"]) == {"mouth", "maps", "render", "composite", "encode"}



def test_synthesis_encodes_reproducibly(anchor, speech_wav, tmp_path):
    """Videos are encoded without x264's macroblock-tree rate control, with which libx264 coded the
    same frames of some videos in one of two ways from run to run (benchmarks/RESULTS.md,
    *Reproducible videos*): the encoder's own options string in the stream says so, and the same
    speech gives the same bytes."""
    pipeline = AnchorPipeline(load_bundle(anchor), settings=SynthesisSettings(precision="fp32"), device="cpu")
    outputs = []
    for k in range(3):
        pipeline.synthesize(speech_wav[:32000], tmp_path / f"{k}.mp4")
        outputs.append((tmp_path / f"{k}.mp4").read_bytes())
    assert b"mbtree=0" in outputs[0] and b"mbtree=1" not in outputs[0]
    with av.open(str(tmp_path / "0.mp4")) as first, av.open(str(tmp_path / "2.mp4")) as last:
        assert [bytes(p) for p in first.demux(video=0)] == [bytes(p) for p in last.demux(video=0)]
