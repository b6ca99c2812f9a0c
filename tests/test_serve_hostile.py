"""The newsroom service against a hostile web and careless operators (issue 13): foreign Host and
Origin headers (DNS rebinding, cross-site forms), uploads that are playlists or concat scripts,
X-Forwarded-For against the rate limit, scripts the voice cannot read, starts that fail, a token
file that is a symbolic link, uploads orphaned by a dead server. Every refusal is asserted as its
status code, a one-line JSON error naming the input, and nothing partial left behind.

The first half needs no anchor and runs in seconds; what needs the real anchor bundle (a job
must name one) is marked slow."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import socket
import threading
import time
import unicodedata
import warnings
from contextlib import contextmanager
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from newsanchor.cli import app as cli_app
from newsanchor.errors import MediaError, NewsanchorError
from newsanchor.media import RECORDING_FORMATS, probe
from newsanchor.serve.app import create_app
from newsanchor.serve.security import resolve_token
from newsanchor.serve.service import listen, uvicorn_config
from newsanchor.serve.settings import DB_NAME, OUTPUTS_NAME, TOKEN_NAME, ServeSettings
from newsanchor.serve.sqlite_store import SqliteJobStore
from newsanchor.serve.submit import UPLOAD_PREFIX, sweep_orphaned_uploads
from newsanchor.speech import ScriptError, check_script, voice_letter_scripts

with warnings.catch_warnings():  # this Starlette wants httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LOCAL_URL = "http://localhost"
TOKEN = "a-test-token-long-enough"
FOREIGN = "https://evil.example.com"
ALL_PATHS = ("/", "/static/app.js", "/api/limits", "/api/anchors", "/api/jobs", "/docs", "/openapi.json")
CONCAT_SCRIPT = "ffconcat version 1.0\nfile {target}\n"
HLS_PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n"
# what starts a file FFmpeg would sniff as something: the hostile ones and real containers' magic
HEADERS = [b"ffconcat version 1.0\nfile ", b"#EXTM3U\n", b"<?xml version='1.0'?><MPD", b"v=0\r\no=- 0 0 IN IP4 ",
           b"RIFF\x24\x00\x00\x00WAVEfmt ", b"ID3\x04\x00", b"OggS\x00", b"fLaC", b"\x00\x00\x00\x18ftypmp42",
           b"\x1a\x45\xdf\xa3", b"\x89PNG\r\n\x1a\n", b"", b"WEBVTT\n\n"]


# ---------------------------------------------------------------- helpers

def one_line_error(answer: httpx.Response, status: int, *fragments: str) -> str:
    """Assert ``answer`` is ``status`` with exactly ``{"error": "one line"}`` holding every fragment."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert list(body) == ["error"], body
    message = body["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def tone_recording(fmt: str, codec: str, rate: int = 16000, seconds: float = 1.0) -> bytes:
    """A real recording (a voiced tone with a little noise) in one container, built with PyAV."""
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
               + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.size, frame_size):
            chunk = samples[start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
            frame.rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


RECORDINGS = {  # name → (container, codec, sample rate): what newsrooms upload
    "speech.wav": ("wav", "pcm_s16le", 16000), "speech.mp3": ("mp3", "libmp3lame", 16000),
    "speech.m4a": ("ipod", "aac", 16000), "speech.ogg": ("ogg", "libopus", 48000),
    "speech.flac": ("flac", "flac", 16000), "speech.webm": ("webm", "libopus", 48000),
}


@functools.cache
def recording_bytes(name: str) -> bytes:
    return tone_recording(*RECORDINGS[name])


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@contextmanager
def fifo_watch(fifo: Path):
    """Whether anything opened ``fifo`` for reading while the block ran: a FIFO opened for writing
    without blocking fails (ENXIO) until a reader has it open. The watcher's write end, once open,
    is closed at once, so a reader that did open it sees the end of the file and moves on."""
    opened, stop = threading.Event(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.001)
                continue
            opened.set()
            os.close(fd)
            return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield opened
    finally:
        stop.set()
        watcher.join(5)


@contextmanager
def uvicorn_serving(app, trusted_proxies: tuple[str, ...] = ()):
    """The app under uvicorn on a free loopback port, configured as ``newsanchor serve`` does it
    (``uvicorn_config``), in a thread → its base URL."""
    import uvicorn

    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, trusted_proxies))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def leftovers(folder: Path) -> list[str]:
    """Temporary uploads anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(f"{UPLOAD_PREFIX}*"))


# ---------------------------------------------------------------- without an anchor (fast)

@pytest.fixture
def bare(tmp_path):
    """A loopback service over an anchors folder without anchors: everything up to the anchor
    check, and every route that reads or changes existing jobs, is real."""
    folder = tmp_path / "anchors"
    folder.mkdir()
    app = create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite"), submissions_per_minute=10_000))
    yield app, TestClient(app, base_url=LOCAL_URL)
    app.state.store.close()


def queued_job(app) -> str:
    job, created = app.state.store.create(os.urandom(16).hex(), "grid-s1", {"input": "text", "text": "Hi."})
    assert created
    return job.id


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8000", "127.0.0.1.evil.example.com",
                                  "localhost.evil.example.com:80", "[::2]:8000", "10.0.0.1", "a b", "localhost:x",
                                  "[::1", "exa\u00e9mple.com"])
def test_a_foreign_host_is_refused_on_every_path(bare, host):
    app, client = bare
    host = host if host.isascii() else host.encode()  # sent as the raw bytes a hostile client chooses
    job_id = queued_job(app)
    for path in (*ALL_PATHS, f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/video"):
        one_line_error(client.get(path, headers={"Host": host}), 400, "Host", "not a name of this service")
    # a rebinding page cannot change jobs either, whatever its Origin claims
    one_line_error(client.delete(f"/api/jobs/{job_id}", headers={"Host": host, "Origin": "http://localhost"}), 400)
    one_line_error(client.post(f"/api/jobs/{job_id}/cancel", headers={"Host": host}), 400)
    assert app.state.store.get(job_id).status == "queued"


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST.", "127.0.0.1", "127.0.0.1:1",
                                  "127.8.9.10:8000", "[::1]:8000", "[0:0::1]"])
def test_loopback_names_are_answered(bare, host):
    _, client = bare
    assert client.get("/api/limits", headers={"Host": host}).status_code == 200
    assert client.get("/", headers={"Host": host}).status_code == 200


def test_an_operator_names_more_hosts_and_the_bound_address_is_one(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    app = create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite"), host="192.0.2.7", token=TOKEN,
                                   allowed_hosts=("news.example.com",)))
    client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
    for host in ("news.example.com", "NEWS.example.com:443", "192.0.2.7:8000", "localhost:8000"):
        assert client.get("/api/limits", headers={"Host": host}).status_code == 200, host
    one_line_error(client.get("/api/limits", headers={"Host": "evil.example.com"}), 400, "'evil.example.com'")
    assert client.post("/api/jobs", json={"anchor": "nobody", "text": "Hi."},
                       headers={"Host": "news.example.com", "Origin": "https://news.example.com"}).status_code == 404
    with pytest.raises(NewsanchorError, match=r"^--allowed-host 'https://news.example.com/': give a host name"):
        create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite"), allowed_hosts=("https://news.example.com/",)))
    app.state.store.close()


def test_bound_to_every_interface_any_host_passes_the_token_guards(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    app = create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite"), host="0.0.0.0", token=TOKEN))
    client = TestClient(app)
    assert client.get("/api/jobs", headers={"Host": "203.0.113.9:8000"}).status_code == 401
    assert client.get("/api/jobs", headers={"Host": "203.0.113.9:8000", "Authorization": f"Bearer {TOKEN}"}).status_code == 200
    job_id = queued_job(app)  # Origins are still checked: the page of another site never changes jobs
    one_line_error(client.delete(f"/api/jobs/{job_id}", headers={"Origin": FOREIGN, "Authorization": f"Bearer {TOKEN}"}),
                   403, f"Origin '{FOREIGN}'")
    assert client.delete(f"/api/jobs/{job_id}", headers={"Origin": "http://testserver",
                                                        "Authorization": f"Bearer {TOKEN}"}).status_code == 204
    app.state.store.close()


@pytest.mark.parametrize("headers, named", [
    ({"Origin": FOREIGN}, f"Origin '{FOREIGN}'"),
    ({"Origin": "null"}, "Origin 'null'"),  # sandboxed frames and file: pages
    ({"Origin": "http://localhost.evil.example.com"}, "Origin 'http://localhost.evil.example.com'"),
    ({"Origin": "ftp://localhost"}, "Origin 'ftp://localhost'"),
    ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site 'cross-site'"),
])
def test_another_sites_page_cannot_queue_cancel_or_delete(bare, headers, named):
    app, client = bare
    job_id = queued_job(app)
    # the classic attack: a form on another site posts multipart to the loopback service (no preflight)
    form = client.post("/api/jobs", data={"anchor": "grid-s1"}, files={"audio": ("a.wav", b"RIFF" + bytes(100), "audio/wav")},
                       headers=headers)
    one_line_error(form, 403, named, "only from this service's own page")
    one_line_error(client.post("/api/jobs", json={"anchor": "grid-s1", "text": "Hi."}, headers=headers), 403, named)
    one_line_error(client.post(f"/api/jobs/{job_id}/cancel", headers=headers), 403, named)
    one_line_error(client.delete(f"/api/jobs/{job_id}", headers=headers), 403, named)
    assert app.state.store.get(job_id).status == "queued" and len(app.state.store.recent(10)) == 1
    assert leftovers(app.state.settings.anchors_dir) == []
    assert client.get(f"/api/jobs/{job_id}", headers=headers).status_code == 200  # reading is not changing


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost:8000"}, {"Origin": "http://127.0.0.1:9"},
                                     {"Origin": "http://[::1]:8000"}, {"Sec-Fetch-Site": "same-origin"}])
def test_the_services_own_page_and_non_browser_clients_may_change_jobs(bare, headers):
    app, client = bare
    job_id = queued_job(app)
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=headers).json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job_id}", headers=headers).status_code == 204


def test_x_forwarded_for_does_not_defeat_the_rate_limit(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    app = create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite")))  # 30 a minute
    body = {"anchor": "nobody", "text": "Hi."}  # refused after the limit is counted: no job is made
    with uvicorn_serving(app) as url, httpx.Client(base_url=url) as client:
        codes = [client.post("/api/jobs", json=body, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                 for n in range(35)]
        assert codes == [404] * 30 + [429] * 5
        one_line_error(client.post("/api/jobs", json=body, headers={"X-Forwarded-For": "203.0.113.1"}),
                       429, "too many submissions: at most 30 a minute")
        # the real server checks Host too (httpx names 127.0.0.1:PORT itself)
        one_line_error(client.get("/api/jobs", headers={"Host": "evil.example.com"}), 400, "'evil.example.com'")
    app.state.store.close()
    # behind a proxy the operator names, the forwarded address is the client
    app = create_app(ServeSettings(folder, db=str(tmp_path / "jobs.sqlite")))
    with uvicorn_serving(app, trusted_proxies=("127.0.0.1",)) as url, httpx.Client(base_url=url) as client:
        codes = {client.post("/api/jobs", json=body, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                 for n in range(35)}
        assert codes == {404}
    app.state.store.close()


def test_a_concat_script_or_playlist_never_opens_the_file_it_names(tmp_path, monkeypatch):
    (tmp_path / "other").mkdir()
    fifo = tmp_path / "other" / "input"
    os.mkfifo(fifo)
    for name, text in (("concat", CONCAT_SCRIPT), ("playlist.m3u8", HLS_PLAYLIST)):
        upload = tmp_path / name
        upload.write_text(text.format(target="other/input"))
        for formats in (RECORDING_FORMATS, None):  # the service's list and the command line's default
            with fifo_watch(fifo) as opened, pytest.raises(MediaError) as caught:
                probe(upload, require_video=False, **({"formats": formats} if formats else {}))
            assert str(caught.value) == f"{upload}: not a media file"
            assert not opened.is_set(), f"{name}: the demuxer opened the file the script names"
    # a file whose name is an FFmpeg protocol is that file, not the protocol
    (tmp_path / "x.wav").write_bytes(tone_recording("wav", "pcm_s16le"))
    named_like_a_protocol = tmp_path / "concat:x.wav"
    named_like_a_protocol.write_bytes(b"not a recording at all\n" * 4)
    monkeypatch.chdir(tmp_path)  # so that "concat:x.wav" as a protocol would find x.wav
    with pytest.raises(MediaError, match="not a media file"):
        probe("concat:x.wav", require_video=False)


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_real_recordings_in_every_common_container_are_accepted(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(tone_recording(*RECORDINGS[name]))
    info = probe(path, require_video=False, formats=RECORDING_FORMATS)
    assert info.has_audio and info.audio_duration_s == pytest.approx(1.0, abs=0.1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=400), text_body=st.text(max_size=200))
def test_property_the_upload_probe_answers_any_bytes_with_one_line(tmp_path, header, body, text_body):
    path = tmp_path / "upload"
    path.write_bytes(header + body + text_body.encode())
    try:
        info = probe(path, require_video=False, formats=RECORDING_FORMATS)
    except MediaError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        return
    # accepted: only ever by a demuxer of self-contained recordings (never a script or a playlist)
    assert info.has_audio and not header.startswith((b"ffconcat", b"#EXTM3U", b"<?xml", b"v=0"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_property_the_script_check_accepts_or_says_why_in_one_line(text):
    scripts = ("LATIN",)
    try:
        sentences = check_script(text, scripts)
    except ScriptError as err:
        assert "\n" not in str(err) and ("nothing to speak" in str(err) or "latin letters only" in str(err))
        return
    assert sentences and all(s.strip() == s and s for s in sentences)
    assert all(not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN") for ch in text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(whitelist_categories=("Lo",), max_codepoint=0x9FFF, min_codepoint=0x4E00),
               min_size=1, max_size=20), st.text(alphabet="abc .,", max_size=20))
def test_property_letters_of_another_script_are_always_refused_with_their_place(chinese, latin):
    with pytest.raises(ScriptError, match=r"'.' \(line 1, column \d+\)"):
        check_script(latin + chinese + ".", ("LATIN",))


# ---------------------------------------------------------------- traversal and token variants

TRAVERSALS = ["../anchors/.newsanchor-jobs.sqlite", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "....//....//etc/passwd", "..\\..\\etc\\passwd", "%252e%252e%252fetc", "/etc/passwd", "%00", "a" * 5000]


@pytest.mark.parametrize("segment", TRAVERSALS)
def test_traversal_in_every_route_finds_nothing(bare, segment):
    app, client = bare
    job_id = queued_job(app)
    routes = [f"/api/jobs/{segment}", f"/api/jobs/{segment}/video", f"/api/jobs/{segment}/captions",
              f"/api/jobs/{job_id}/{segment}", f"/api/anchors/{segment}/thumbnail", f"/static/{segment}",
              f"/docs/assets/{segment}"]
    for route in routes:
        answer = client.get(route)
        assert answer.status_code in (404, 405), (route, answer.status_code)
        assert b"root:" not in answer.content and b"SQLite format" not in answer.content
    for route in (f"/api/jobs/{segment}/cancel",):
        assert client.post(route).status_code in (404, 405)
    assert client.delete(f"/api/jobs/{segment}").status_code in (404, 405)
    assert app.state.store.get(job_id).status == "queued"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", f"bearer{TOKEN}", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Bearer {TOKEN.upper()}",
                                           f"Token {TOKEN}", f"Bearer {TOKEN} {TOKEN}", "Bearer \u00e9" + TOKEN])
def test_only_the_exact_token_opens_a_closed_route(tmp_path, authorization):
    folder = tmp_path / "anchors"
    folder.mkdir()
    app = create_app(ServeSettings(folder, host="0.0.0.0", token=TOKEN, db=str(tmp_path / "jobs.sqlite")))
    client = TestClient(app, base_url=LOCAL_URL)
    headers = {} if authorization is None else {"Authorization": authorization.encode("utf-8")}
    for path in ("/api/jobs", "/api/anchors", "/openapi.json", "/docs"):
        one_line_error(client.get(path, headers=headers), 401, "token")
    one_line_error(client.post("/api/jobs", json={"anchor": "a", "text": "Hi."}, headers=headers), 401, "token")
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/jobs", headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200
    app.state.store.close()


# ---------------------------------------------------------------- the token file and orphaned uploads

def test_the_token_file_is_never_written_or_read_through_a_symbolic_link(tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("someone else's file\n")
    secret.chmod(0o644)
    link = tmp_path / TOKEN_NAME
    link.symlink_to(secret)
    said = []
    with pytest.raises(NewsanchorError, match=rf"^{link}: is a symbolic link; .* \(remove the link\)$"):
        resolve_token("0.0.0.0", None, link, announce=said.append)
    assert secret.read_text() == "someone else's file\n" and secret.stat().st_mode & 0o777 == 0o644 and said == []
    dangling = tmp_path / "dangling-token"
    dangling.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(NewsanchorError, match="is a symbolic link"):
        resolve_token("0.0.0.0", None, dangling, announce=said.append)
    assert not (tmp_path / "would-be-created").exists() and said == []
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(NewsanchorError, match=r"a-folder: cannot keep the access token there \(Is a directory\)$"):
        resolve_token("0.0.0.0", None, folder, announce=said.append)
    # a plain file: made private (600) from nothing, an empty one filled, a loosened one tightened
    plain = tmp_path / "token"
    token = resolve_token("0.0.0.0", None, plain, announce=said.append)
    assert plain.read_text() == token + "\n" and plain.stat().st_mode & 0o777 == 0o600
    plain.chmod(0o644)
    assert resolve_token("0.0.0.0", None, plain, announce=said.append) == token
    assert plain.stat().st_mode & 0o777 == 0o600
    plain.write_text("")
    assert resolve_token("0.0.0.0", None, plain, announce=said.append) not in ("", token)


def test_uploads_orphaned_by_a_dead_server_are_swept_at_start(tmp_path):
    outputs = tmp_path / OUTPUTS_NAME
    (outputs / "0123456789abcdef0123456789abcdef").mkdir(parents=True)
    started = time.time()
    orphan, fresh = outputs / f"{UPLOAD_PREFIX}dead1", outputs / f"{UPLOAD_PREFIX}inflight"
    job_input = outputs / "0123456789abcdef0123456789abcdef" / "input"
    for path in (orphan, fresh, job_input):
        path.write_bytes(b"x" * 100)
    os.utime(orphan, (started - 3600, started - 3600))
    os.utime(job_input, (started - 3600, started - 3600))
    os.utime(fresh, (started + 1, started + 1))  # another request of this server, still writing
    target = tmp_path / "not-in-outputs"
    target.write_text("keep")
    (outputs / f"{UPLOAD_PREFIX}link").symlink_to(target)
    assert sweep_orphaned_uploads(outputs, started) == [orphan]
    assert fresh.exists() and job_input.exists() and target.read_text() == "keep"
    assert sweep_orphaned_uploads(tmp_path / "no-such-folder", started) == []


# ---------------------------------------------------------------- starts that fail

def serve(*args: str):
    result = CliRunner().invoke(cli_app, ["serve", *args])
    lines = result.output.strip().splitlines()
    return result, lines


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_job_database_that_cannot_be_made_is_one_line(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    result, lines = serve("--anchors", str(folder), "--db", "/proc/x/y.sqlite", "--port", str(free_port()))
    assert result.exit_code == 1 and lines == ["newsanchor: /proc/x/y.sqlite: cannot open the job database "
                                               "(No such file or directory)"], result.output
    assert names_in(folder) == []


def test_a_port_in_use_stops_the_start_before_the_queue_is_touched(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, lines = serve("--anchors", str(folder), "--port", str(port))
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"newsanchor: 127.0.0.1:{port}: cannot listen there (Address already in use")
    assert names_in(folder) == []  # no job database, no outputs folder


def test_a_failed_start_removes_what_it_made_and_keeps_what_was_there(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    db = tmp_path / "new" / "deeper" / "jobs.sqlite"
    result, lines = serve("--anchors", str(folder), "--db", str(db), "--port", str(free_port()))
    assert result.exit_code == 1 and lines == [f"newsanchor: {folder}: no usable anchor bundle (each sub-folder with "
                                               f"an anchor.json; see the log lines above for why any were skipped)"]
    assert names_in(folder) == [] and not (tmp_path / "new").exists()
    # an existing queue is earlier data: kept with its jobs
    store = SqliteJobStore(folder / DB_NAME)
    store.create("0" * 32, "grid-s1", {"input": "text", "text": "Kept."})
    store.close()
    result, _ = serve("--anchors", str(folder), "--port", str(free_port()))
    assert result.exit_code == 1
    store = SqliteJobStore(folder / DB_NAME)
    assert store.get("0" * 32).request["text"] == "Kept."
    store.close()
    assert OUTPUTS_NAME not in names_in(folder)


def test_a_symbolic_link_at_the_token_file_stops_the_start_and_nothing_is_left(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (folder / TOKEN_NAME).symlink_to(target)
    result, lines = serve("--anchors", str(folder), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.exit_code == 1 and lines == [f"newsanchor: {folder / TOKEN_NAME}: is a symbolic link; the access "
                                               f"token is kept only in a plain file (remove the link)"]
    assert target.read_text() == "precious\n" and names_in(folder) == [TOKEN_NAME]


@pytest.mark.parametrize("option, value, message", [
    ("--allowed-host", "https://news.example.com", "--allowed-host 'https://news.example.com': give a host name"),
    ("--allowed-host", "news.example.com:443", "--allowed-host 'news.example.com:443': give a host name"),
    ("--trusted-proxy", "*", "--trusted-proxy '*': give the IP address"),
    ("--trusted-proxy", "proxy.example.com", "--trusted-proxy 'proxy.example.com': give the IP address"),
])
def test_bad_host_and_proxy_options_are_one_line(tmp_path, option, value, message):
    result, lines = serve("--anchors", str(tmp_path), option, value, "--port", str(free_port()))
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"newsanchor: {message}"), result.output
    assert names_in(tmp_path) == []


# ---------------------------------------------------------------- with the real anchor (slow)

@pytest.fixture(scope="module")
def anchored(grid_anchor_bundle, tmp_path_factory):
    """A loopback service offering the grid-s1 anchor, without workers: what is queued stays queued."""
    folder = tmp_path_factory.mktemp("hostile-newsroom")
    shutil.copytree(grid_anchor_bundle, folder / "grid-s1")
    app = create_app(ServeSettings(folder, submissions_per_minute=100_000))
    with TestClient(app, base_url=LOCAL_URL) as client:
        yield app, client
    app.state.store.close()


def job_count(app) -> int:
    return len(app.state.store.recent(100_000))


def upload(client, content: bytes, name: str = "speech.wav", **headers):
    return client.post("/api/jobs", data={"anchor": "grid-s1"}, files={"audio": (name, content, "audio/wav")},
                       headers=headers)


@pytest.mark.slow
def test_an_upload_that_names_another_jobs_recording_is_refused(anchored):
    app, client = anchored
    outputs = app.state.settings.outputs_dir
    first = upload(client, tone_recording("wav", "pcm_s16le", seconds=2.0))
    assert first.status_code == 201, first.text
    other = first.json()["id"]
    before = job_count(app)
    for name, text in (("speech.wav", CONCAT_SCRIPT), ("news.m3u8", HLS_PLAYLIST)):
        for target in (f"{other}/input", f"{outputs}/{other}/input", "../grid-s1/anchor.json"):
            answer = upload(client, text.format(target=target).encode(), name)
            one_line_error(answer, 415, "audio: not a usable audio recording (not a media file)")
    assert job_count(app) == before and leftovers(outputs) == []
    assert names_in(outputs / other) == ["input"]  # the recording it named is untouched


@pytest.mark.slow
def test_recordings_in_common_containers_are_queued(anchored):
    app, client = anchored
    before = job_count(app)
    for name, (fmt, codec, rate) in sorted(RECORDINGS.items()):
        answer = upload(client, tone_recording(fmt, codec, rate), name)
        assert answer.status_code == 201, (name, answer.text)
        assert app.state.store.get(answer.json()["id"]).request["audio_s"] == pytest.approx(1.0, abs=0.1)
    assert job_count(app) == before + len(RECORDINGS)


@pytest.mark.slow
@pytest.mark.parametrize("text, named", [
    ("今天的新闻很重要。", "'今' (line 1, column 1), '天' (line 1, column 2), '的' (line 1, column 3) and 5 more"),
    ("Good evening.\nСегодня новости.", "'С' (line 2, column 1)"),
    ("\u200b\u200b\x00 ... \ufeff", "nothing to speak: the script is empty"),
])
def test_a_script_the_voice_cannot_read_is_refused_before_it_is_queued(anchored, text, named):
    from newsanchor.speech import piper_engine

    app, client = anchored
    before = job_count(app)
    piper_engine._load.cache_clear()
    message = one_line_error(client.post("/api/jobs", json={"anchor": "grid-s1", "text": text}), 422, "text: ", named)
    with pytest.raises(ScriptError) as caught:  # the command line's check, word for word
        check_script(text, voice_letter_scripts())
    assert message == f"text: {caught.value}"
    assert job_count(app) == before
    assert piper_engine._load.cache_info().currsize == 0  # the app checked without loading the voice


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=6)
JOB_FIELDS = {
    "anchor": st.sampled_from(["grid-s1", "nobody", "", "../grid-s1"]) | JSON_VALUES,
    "text": st.text(max_size=120) | JSON_VALUES,
    "title": st.text(max_size=90) | st.none(), "subtitle": st.text(max_size=30) | st.none(),
    "captions": st.booleans() | JSON_VALUES, "burn_captions": st.booleans(), "extra": JSON_VALUES,
}
JOB_BODIES = (  # mostly well-formed jobs with hostile texts and titles, then anything at all
    st.fixed_dictionaries({"anchor": st.just("grid-s1"), "text": st.text(max_size=120)},
                          optional={"title": st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=90)})
    | st.fixed_dictionaries({}, optional=JOB_FIELDS) | JSON_VALUES)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JOB_BODIES, raw=st.none() | st.none() | st.binary(max_size=200))
def test_property_any_json_body_is_queued_whole_or_refused_in_one_line(anchored, body, raw):
    app, client = anchored
    before = job_count(app)
    content = raw if raw is not None else json.dumps(body).encode()
    answer = client.post("/api/jobs", content=content, headers={"Content-Type": "application/json"})
    event(f"HTTP {answer.status_code}")  # --hypothesis-show-statistics: how often each answer was tried
    if answer.status_code == 201:
        job = app.state.store.get(answer.json()["id"])
        assert raw is None and job.anchor == "grid-s1" and job.request["text"] == body["text"]
        assert check_script(body["text"], voice_letter_scripts())
        app.state.store.delete(job.id)
    else:
        one_line_error(answer, answer.status_code)
        assert answer.status_code in (404, 413, 422), answer.text
    assert job_count(app) == before


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.builds(bytes.__add__, st.sampled_from(HEADERS), st.binary(max_size=300))
       | st.builds(lambda name, keep: recording_bytes(name)[:keep], st.sampled_from(sorted(RECORDINGS)),
                   st.integers(0, 40_000)))
def test_property_any_uploaded_bytes_are_queued_as_audio_or_refused_in_one_line(anchored, content):
    app, client = anchored
    before = job_count(app)
    answer = upload(client, content)
    event(f"HTTP {answer.status_code}")
    if answer.status_code == 201:
        assert app.state.store.get(answer.json()["id"]).request["audio_s"] >= 0.1
        app.state.store.delete(answer.json()["id"])
    else:
        message = one_line_error(answer, answer.status_code, "audio: ")
        assert answer.status_code in (415, 422) and str(app.state.settings.anchors_dir) not in message
    assert job_count(app) == before and leftovers(app.state.settings.outputs_dir) == []


@pytest.mark.slow
def test_the_real_service_sweeps_orphans_checks_hosts_and_ignores_forwarded_addresses(serve_processes, newsroom_dir):
    outputs = newsroom_dir / OUTPUTS_NAME
    outputs.mkdir()
    orphan, later = outputs / f"{UPLOAD_PREFIX}killed-mid-request", outputs / f"{UPLOAD_PREFIX}not-yet"
    for path, when in ((orphan, time.time() - 3600), (later, time.time() + 3600)):
        path.write_bytes(b"half an upload")
        os.utime(path, (when, when))
    server = serve_processes(newsroom_dir, workers=1)
    assert not orphan.exists() and later.exists()
    with server.client() as client:
        one_line_error(client.get("/api/jobs", headers={"Host": "evil.example.com"}), 400, "'evil.example.com'")
        one_line_error(client.post("/api/jobs", json={"anchor": "grid-s1", "text": "Hi."}, headers={"Origin": FOREIGN}),
                       403, f"Origin '{FOREIGN}'")
        codes = [client.post("/api/jobs", json={"anchor": "nobody", "text": "Hi."},
                             headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(35)]
        assert codes == [404] * 30 + [429] * 5
    assert server.stop() == 0
