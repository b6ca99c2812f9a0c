"""``newsanchor anchor create|list|check``, ``bundle``, ``synthesize`` and ``demo``: making an anchor and making it speak."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NewsanchorError
from ..files import check_output_path, remove_stale_temporaries
from ..progress import done_of_total
from ..speech.text import MAX_SCRIPT_CHARS
from .common import (PRECISION_HELP, checked_precision, fail, frame_progress, overall_progress, stderr,
                     user_errors)

def bundle_command(
    dataset: Annotated[Path, typer.Option(help="Dataset directory the models were trained on.")],
    mouth: Annotated[Path, typer.Option(help="Audio→mouth run (`newsanchor train mouth`).")],
    renderer: Annotated[Path, typer.Option(help="Renderer run or snapshot (`newsanchor train renderer`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Anchor bundle directory to create.")],
    presenter: Annotated[str, typer.Option(help="The person this anchor shows.")],
    consent: Annotated[str, typer.Option(help="Who agreed to become this anchor, to what, and when.")],
    template: Annotated[Optional[str], typer.Option(help="CLIP or CLIP:START-STOP (frames) of a non-speaking stretch; default: found automatically.")] = None,
    template_frames: Annotated[int, typer.Option(help="Length of an automatically found template, in frames.")] = 100,
    background: Annotated[Optional[Path], typer.Option(help="Studio background image for green-screen recordings.")] = None,
) -> None:
    """Assemble an anchor bundle: models, PCA, jaw regression, template, consent — checksummed."""
    from ..bundle import Presenter, build_bundle
    from ..template import template_in_dataset

    with user_errors():
        choice = template_in_dataset(dataset, template, template_frames)
        path = build_bundle(dataset, mouth, renderer, out, presenter=Presenter(presenter, consent), template=choice,
                            background=background)
        stderr.print(f"{path}: anchor bundle for {presenter}; template {choice.clip} frames {choice.start}-{choice.stop}",
                     markup=False, soft_wrap=True)


def synthesize_command(
    anchor: Annotated[Path, typer.Option(help="Anchor bundle directory (`newsanchor bundle`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="mp4 file to write.")],
    text: Annotated[Optional[str], typer.Option(help="The script to read (spoken by the offline TTS voice).")] = None,
    text_file: Annotated[Optional[Path], typer.Option(help="A UTF-8 text file with the script.")] = None,
    audio: Annotated[Optional[Path], typer.Option(help="A speech recording to lip-sync instead (any audio or video file).")] = None,
    voice: Annotated[Optional[Path], typer.Option(help="Piper voice (.onnx with its .onnx.json) instead of the default.")] = None,
    captions: Annotated[Optional[Path], typer.Option(help="Also write captions of the script: .srt or .vtt (text input only).")] = None,
    burn_captions: Annotated[bool, typer.Option("--burn-captions", help="Also draw the captions into the picture (text input only).")] = False,
    no_mouth_closure: Annotated[bool, typer.Option("--no-mouth-closure", help="Do not ease the mouth shut in pauses.")] = False,
    background: Annotated[Optional[Path], typer.Option(help="Studio image to put behind a presenter recorded against a green screen (default: the bundle's, if it has one).")] = None,
    no_background: Annotated[bool, typer.Option("--no-background", help="Keep the recorded background even if the bundle has a studio image.")] = False,
    key_colour: Annotated[str, typer.Option(help="R,G,B of the screen behind the presenter, for --background.")] = "0,177,64",
    title: Annotated[Optional[str], typer.Option(help="Lower-third title, e.g. the presenter's name or the story.")] = None,
    subtitle: Annotated[Optional[str], typer.Option(help="Lower-third second line (needs --title).")] = None,
    label_position: Annotated[str, typer.Option(help="Corner of the AI-generated label: top-left, top-right, bottom-left, bottom-right.")] = "bottom-right",
    label_height: Annotated[float, typer.Option(help="Height of the label's text as a fraction of the frame height.")] = 0.035,
    no_disclosure_label: Annotated[bool, typer.Option("--no-disclosure-label", help="Leave out the visible AI-generated label (the metadata tag stays). Only for material that is labelled by other means.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    compile_renderer: Annotated[bool, typer.Option("--compile", help="Compile the renderer first: ~40 s once, then ~1.4× faster frames on CPUs (worth it beyond ~2 minutes of video).")] = False,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "auto",
    max_chars: Annotated[int, typer.Option(help="Longest script accepted, in characters (the default is about 20 minutes of speech).")] = MAX_SCRIPT_CHARS,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line describing the video.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Make the anchor speak: a script (or a speech recording) in, a finished, labelled mp4 out."""
    from ..bundle import load_bundle
    from ..composite.overlay import DisclosureConfig
    from ..pipeline import AnchorPipeline, SynthesisSettings
    from ..synthesis import VideoRequest, make_video

    with user_errors():
        # the arguments, the outputs and the script are checked before the models load
        if sum(x is not None for x in (text, text_file, audio)) != 1:
            raise NewsanchorError("give exactly one of --text, --text-file or --audio")
        checked_precision(precision)
        if captions is not None and audio is not None:
            raise NewsanchorError("--captions needs a script (--text or --text-file); a recording has no text")
        if burn_captions and audio is not None:
            raise NewsanchorError("--burn-captions needs a script (--text or --text-file); a recording has no text")
        if subtitle is not None and title is None:
            raise NewsanchorError("--subtitle needs --title")
        key = _checked_key_colour(key_colour)
        check_output_path(out, suffixes=(".mp4",))
        if captions is not None:
            check_output_path(captions, suffixes=(".srt", ".vtt"))
        remove_stale_temporaries(out)  # what a killed earlier run of this output left
        try:
            label = DisclosureConfig(enabled=not no_disclosure_label, position=label_position, relative_height=label_height)
        except ValueError as err:
            raise NewsanchorError(f"--label-*: {err}") from None
        if text_file is not None:
            try:
                text = text_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise NewsanchorError(f"{text_file}: cannot read the script ({err})") from None
        script_source = str(text_file) if text_file is not None else "--text"
        if text is not None and len(text) > max_chars:
            raise NewsanchorError(f"{script_source}: the script has {len(text):,} characters, more than the limit of "
                                  f"{max_chars:,}; split it into several videos or raise --max-chars")
        if text is not None:
            from ..speech import ScriptError, SpeechError, check_script, voice_letter_scripts

            try:
                check_script(text, voice_letter_scripts(voice))
            except (ScriptError, SpeechError) as err:
                raise NewsanchorError(f"{script_source}: {err}") from None
        studio = _studio_image(background) if background is not None and not no_background else None
        request = VideoRequest(text=text, recording=audio, title=title, subtitle=subtitle, burn_captions=burn_captions,
                               captions=captions, input_name=script_source if audio is None else None)
        bundle = load_bundle(anchor)
        if studio is None and not no_background:
            studio = bundle.background()
        settings = SynthesisSettings(close_mouth=not no_mouth_closure, label=label, background=studio, key_colour=key,
                                     compile_renderer=compile_renderer, precision=precision)
        pipeline = AnchorPipeline(bundle, settings=settings, device=device)
        with frame_progress("synthesize", not quiet) as progress:
            result = make_video(pipeline, request, out, voice=voice, on_frames=done_of_total(progress))
        if as_json:
            print(json.dumps(result))
        else:
            stderr.print(f"{out}: {result['frames']} frames, {result['duration_s']:.2f} s, "
                         f"{result['frames_per_s']:.1f} frames/s", markup=False, soft_wrap=True)


def _checked_key_colour(key_colour: str) -> tuple[int, int, int]:
    """``--key-colour R,G,B`` → (R, G, B), each 0-255."""
    try:
        key = tuple(int(v) for v in key_colour.split(","))
        if len(key) != 3 or not all(0 <= v <= 255 for v in key):
            raise ValueError
    except ValueError:
        raise NewsanchorError(f"--key-colour {key_colour!r}: expected R,G,B with values 0-255, e.g. 0,177,64") from None
    return key[0], key[1], key[2]


def _studio_image(path: Path):
    """``--background`` → ``[H, W, 3]`` uint8 RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise NewsanchorError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="mp4 file to write.")] = Path("demo.mp4"),
    text: Annotated[Optional[str], typer.Option(help="Another news script for the demo anchor to read.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where the demo anchor is built and kept (default: the user's cache directory).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line describing the video.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Offline demo: build an anchor from a synthetic actor (first run ~8 min on 2 idle cores, then cached) and make it read the news."""
    from ..demo.build import DEMO_SCRIPT, DemoHooks, run_demo

    started = time.perf_counter()

    def stage(name: str) -> None:
        if not quiet:
            elapsed = int(time.perf_counter() - started)
            stderr.print(f"demo [{elapsed // 60}:{elapsed % 60:02d}]: {name}", markup=False, soft_wrap=True)

    hooks = DemoHooks(stage=stage, frames=lambda label: frame_progress(label, not quiet),
                      progress=lambda label: overall_progress(label, not quiet))
    with user_errors(resumable=True):  # the demo anchor's finished stages are cached
        check_output_path(out, suffixes=(".mp4",))
        result = run_demo(out, text=text or DEMO_SCRIPT, root=cache_dir, hooks=hooks)
        result["total_seconds"] = round(time.perf_counter() - started, 1)
        if as_json:
            print(json.dumps(result))
        else:
            stderr.print(f"{out}: {result['duration_s']:.1f} s of the demo anchor reading the news "
                         f"({result['total_seconds']:.0f} s in all)", markup=False, soft_wrap=True)


def anchor_check_command(
    recordings: Annotated[list[Path], typer.Argument(help="The presenter's recordings (video files with sound).", show_default=False)],
    size: Annotated[int, typer.Option(help="Face crop side the anchor will be trained at: 256 (CPUs) or 512 (the paper's).")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurements and problems as one JSON line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Check recordings before an anchor is trained from them: every problem at once, with what to re-record. Writes nothing."""
    import dataclasses

    from ..recording_check import RecordingRequirements, check_recordings

    with user_errors():
        if size not in (256, 512):
            raise NewsanchorError(f"--size {size}: choose 256 or 512")
        with frame_progress("check recordings", not quiet) as factory:
            report = check_recordings(recordings, RecordingRequirements(crop_size=size), progress=done_of_total(factory))
        if as_json:
            print(json.dumps({"ok": report.ok, "total_speech_s": round(report.total_speech_s, 2),
                              "problems": [{"path": str(p.path) if p.path else None, "check": p.check, "message": p.message}
                                           for p in report.problems],
                              "recordings": [{k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(s).items()}
                                             for s in report.recordings]}, allow_nan=False))
        else:
            for line in report.lines():
                print(line)
        if not report.ok:
            raise typer.Exit(1)


def anchor_create_command(
    recordings: Annotated[list[Path], typer.Argument(help="The presenter's recordings (video files with sound, or folders of them).", show_default=False)],
    presenter: Annotated[str, typer.Option(help="The person this anchor shows.", show_default=False)],
    consent: Annotated[str, typer.Option(help="Who agreed to become this anchor, to what, and when.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Anchor bundle folder to create, e.g. anchors/jane.", show_default=False)],
    minutes: Annotated[float, typer.Option(help="Time budget for the whole job: the training stages get what checking, preparing and reporting leave. A 3-minute recording takes about an hour on a 2-core CPU; a GPU trains further in the same time.")] = 60.0,
    size: Annotated[Optional[int], typer.Option(help="Face crop side: 256 (CPUs, the default) or 512 (the paper's, for GPUs).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of the plan (newsanchor.create.CreatePlan: models, sizes, step caps); options given here override it.", show_default=False)] = None,
    accept: Annotated[Optional[list[str]], typer.Option(help="A recording check whose problem to note in the report instead of stopping (repeatable), e.g. speech_too_short for a trial anchor.", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    keep_work: Annotated[bool, typer.Option("--keep-work", help="Keep the work folder (OUT.work: dataset, training runs, held-out clips) after the anchor is made.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary and the quality report as one JSON line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Make an anchor from recordings in one step: check, prepare, train, bundle, report on held-out speech. Interrupted, the same command goes on where it stopped."""
    from ..bundle import Presenter
    from ..create import ACCEPTABLE, CreatePlan, RecordingsRejected, create_anchor, work_folder
    from ..create.quality import markdown_report

    from ..config import load_settings

    with user_errors(resumable=True):
        if size is not None and size not in (256, 512):
            raise NewsanchorError(f"--size {size}: choose 256 or 512")
        plan = load_settings(CreatePlan, config, {} if size is None else {"size": size}, "anchor create: ")
        unknown = [c for c in accept or [] if c not in ACCEPTABLE]
        if unknown:
            raise NewsanchorError(f"--accept {unknown[0]}: choose from {', '.join(ACCEPTABLE)}")
        person = Presenter(presenter, consent)
        try:
            with overall_progress("anchor create", not quiet) as on_progress:
                result = create_anchor(recordings, out, person, minutes=minutes, plan=plan,
                                       accept=accept or (), device=device, keep_work=keep_work, on_progress=on_progress)
        except RecordingsRejected as rejected:
            for problem in rejected.problems:
                print(problem.message, file=sys.stderr)
            fail(f"{len(rejected.problems)} problem{'s' if len(rejected.problems) != 1 else ''} with the recordings; "
                 f"nothing was written (record again, or --accept a check to go on regardless)")
        if as_json:
            print(json.dumps(result, allow_nan=False))
            return
        report = result["report"]
        print(markdown_report(report))
        stages = ", ".join(f"{stage} {seconds / 60:.1f} min" for stage, seconds in result["seconds"].items())
        print(f"\n{out}: anchor of {presenter} ({stages}); preview: {Path(out) / 'quality' / 'preview.mp4'}")
        if keep_work:
            print(f"work kept in {work_folder(out)}")


def anchor_list_command(
    folder: Annotated[Path, typer.Argument(help="Folder of anchor bundles.")] = Path("anchors"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the anchors as one JSON line.")] = False,
) -> None:
    """List the anchors in a folder: presenter, when made, and whether their quality report meets its targets."""
    from ..create.listing import list_anchors

    with user_errors():
        anchors = list_anchors(folder)
        if as_json:
            print(json.dumps(anchors, allow_nan=False))
            return
        if not anchors:
            print(f"{folder}: no anchors")
            return
        for entry in anchors:
            print(f"{entry['name']}: {entry['status']}")
