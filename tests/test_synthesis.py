"""The one video request (synthesis.py): what it refuses before any model loads. make_video
itself runs end to end in test_pipeline.py (CLI), test_serve.py (worker) and test_demo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsanchor.errors import NewsanchorError
from newsanchor.synthesis import FRAMES_SHARE, SPEECH_SHARE, VideoRequest, frames_fraction


@pytest.mark.parametrize("fields, message", [
    ({}, "exactly one input"),
    ({"text": "Hi.", "recording": Path("news.wav")}, "exactly one input"),
    ({"recording": Path("news.wav"), "captions": Path("news.vtt")}, "news.wav: captions need a script"),
    ({"recording": Path("news.wav"), "burn_captions": True}, "news.wav: captions need a script"),
    ({"recording": Path("up"), "input_name": "audio", "burn_captions": True}, "audio: captions need a script"),
    ({"text": "Hi.", "subtitle": "Live"}, "subtitle 'Live': needs a title"),
    ({"text": "Hi.", "title": "", "subtitle": "Live"}, "needs a title"),
    ({"text": "Hi.", "captions": Path("news.txt")}, "news.txt: captions are written as .srt or .vtt"),
])
def test_a_request_that_cannot_make_a_video_is_refused_in_one_line(fields, message):
    with pytest.raises(NewsanchorError, match=message.replace(".", r"\.")) as refused:
        VideoRequest(**fields)
    assert "\n" not in str(refused.value)


def test_a_request_names_its_input_and_its_lower_third():
    assert VideoRequest(text="Hi.").name == "text"
    assert VideoRequest(text="Hi.", input_name="--text").name == "--text"
    assert VideoRequest(recording=Path("in/news.wav")).name == str(Path("in/news.wav"))
    assert VideoRequest(text="Hi.", title="Evening news", subtitle="Live").lower_third == ("Evening news", "Live")
    assert VideoRequest(text="Hi.", title="").lower_third is None


def test_frames_fill_the_share_between_speech_and_captions():
    assert frames_fraction(0, 100) == SPEECH_SHARE
    assert frames_fraction(100, 100) == pytest.approx(SPEECH_SHARE + FRAMES_SHARE) and SPEECH_SHARE + FRAMES_SHARE < 1
    assert frames_fraction(0, 0) == SPEECH_SHARE  # no frames yet known
