// The newsroom page: choose an anchor, send a script or a recording, follow the job, watch the
// result; make a new anchor from a presenter's recordings, follow its training, read its quality
// report. Plain JavaScript against the service's REST API; nothing is loaded from elsewhere.
"use strict";

const TOKEN_KEY = "newsanchor-token";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;  // serve/anchors.py NAME_PATTERN

// until GET /api/limits answers
let limits = { max_text_chars: 20000, max_upload_bytes: 50 * 1024 * 1024, max_title_chars: 80,
  max_recordings_bytes: 4 * 1024 * 1024 * 1024, max_recordings: 20, trial_accept: ["speech_too_short", "no_quiet_stretch"] };
let tracked = null;       // id of the job shown in the progress panel
let pollTimer = null;
let pendingKey = null;    // Idempotency-Key of a submission not yet acknowledged: a retry reuses it
let lastStatus = "";
let trackedAnchor = null; // name of the anchor shown in the anchor panels
let anchorTimer = null;
let pendingAnchorKey = null;
let lastAnchorStatus = "";
let doneWaits = 0;        // polls of a finished anchor job whose bundle the service does not offer yet
const blobUrls = [];

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// Every API call: the token when there is one, the service's one-line error when it fails.
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token()) headers.set("Authorization", "Bearer " + token());
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, "The service cannot be reached. Check that it is running and try again.");
  }
  if (response.status === 401) {
    askForToken();
    throw new ApiError(401, "This service needs an access token: enter it in the Access token box.");
  }
  if (!response.ok) {
    let message = `The request failed (HTTP ${response.status}).`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (err) { /* not JSON: keep the generic message */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  return response.status === 204 ? null : response.json();
}

// <img>, <video> and download links cannot send a header: with a token, fetch the file and
// hand them a blob: URL instead of the API's.
async function mediaUrl(path) {
  if (!token()) return path;
  const url = URL.createObjectURL(await (await api(path)).blob());
  blobUrls.push(url);
  return url;
}

function showError(message) { $("messages").textContent = message; }
function clearError() { $("messages").textContent = ""; }

function askForToken() {
  $("token-section").hidden = false;
  $("token").focus();
}

function randomKey() {  // crypto.randomUUID needs a secure context; this works over plain http too
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function formatSeconds(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function formatBytes(bytes) {
  return bytes >= 1024 ** 3 ? `${+(bytes / 1024 ** 3).toFixed(1)} GB` : `${Math.round(bytes / (1024 * 1024))} MB`;
}

function cell(text, className) {
  return Object.assign(document.createElement("td"), { textContent: text, className: className || "" });
}

// --- anchors ---

// The anchors the script form offers (ready ones) and the Anchors table (every one, with its
// quality status, and those being made with their progress). Keeps the anchor chosen in the form.
async function loadAnchors() {
  const anchors = await apiJson("/api/anchors");
  const ready = anchors.filter((anchor) => anchor.state === "ready");
  const list = $("anchor-list");
  const chosen = document.querySelector('input[name="anchor"]:checked');
  const keep = chosen && ready.some((anchor) => anchor.name === chosen.value) ? chosen.value : null;
  list.replaceChildren();
  if (!ready.length) {
    list.innerHTML = '<p class="hint">No anchors are available on this service.</p>';
  }
  for (const [index, anchor] of ready.entries()) {
    const item = document.createElement("div");
    item.className = "anchor";
    const input = Object.assign(document.createElement("input"), {
      type: "radio", name: "anchor", id: `anchor-${index}`, value: anchor.name,
      checked: keep ? anchor.name === keep : index === 0,
    });
    const label = document.createElement("label");
    label.htmlFor = input.id;
    const img = Object.assign(document.createElement("img"), { alt: "", width: 320, height: 180 });
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: anchor.name });
    const presenter = Object.assign(document.createElement("span"), {
      className: "hint", textContent: `Presenter: ${anchor.presenter.name}`,
    });
    const quality = Object.assign(document.createElement("span"), {
      className: anchor.quality && !anchor.quality.met ? "hint not-met" : "hint", textContent: anchor.quality_status,
    });
    label.append(img, name, presenter, quality);
    item.append(input, label);
    list.append(item);
    mediaUrl(anchor.thumbnail).then((url) => { img.src = url; }).catch(() => { /* a thumbnail is not essential */ });
  }
  showAnchorTable(anchors);
}

function showAnchorTable(anchors) {
  const body = $("anchors").querySelector("tbody");
  body.replaceChildren();
  $("anchors-empty").hidden = anchors.length > 0;
  for (const anchor of anchors) {
    const row = document.createElement("tr");
    const made = anchor.created ? new Date(anchor.created).toLocaleString() : "";
    const quality = anchor.state === "ready" ? anchor.quality_status
      : `being made (${Math.round(anchor.job.progress * 100)} %)`;
    const actions = document.createElement("td");
    const verb = anchor.state === "ready" ? "Report" : "Progress";
    actions.append(actionButton(verb, `${verb} of anchor ${anchor.name}`, () => trackAnchor(anchor.name)));
    row.append(cell(anchor.name), cell(anchor.presenter.name), cell(made),
      cell(quality, anchor.quality && !anchor.quality.met ? "not-met" : ""), actions);
    body.append(row);
  }
}

async function submitAnchor(event) {
  event.preventDefault();
  clearError();
  const files = [...$("anchor-recordings").files];
  const name = $("anchor-name").value.trim();
  const presenter = $("anchor-presenter").value.trim();
  const consent = $("anchor-consent").value.trim();
  if (!files.length) return fail("Choose the presenter's recordings to upload.", $("anchor-recordings"));
  if (files.length > limits.max_recordings) {
    return fail(`Choose at most ${limits.max_recordings} recordings.`, $("anchor-recordings"));
  }
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  if (bytes > limits.max_recordings_bytes) {
    return fail(`The recordings are larger than ${formatBytes(limits.max_recordings_bytes)} in all.`, $("anchor-recordings"));
  }
  if (!NAME_PATTERN.test(name)) {
    return fail("Give the anchor a name of letters, digits, “.”, “_” or “-”, starting with a letter or digit.", $("anchor-name"));
  }
  if (!presenter) return fail("Write the presenter's name.", $("anchor-presenter"));
  if (!$("anchor-consent-given").checked) {
    return fail("An anchor is made only of a person who agreed to it: tick the consent box.", $("anchor-consent-given"));
  }
  if (!consent) return fail("Describe the consent: who agreed, to what, and when.", $("anchor-consent"));
  const body = new FormData();
  for (const file of files) body.append("recordings", file);
  body.append("name", name);
  body.append("presenter", presenter);
  body.append("consent", consent);
  body.append("consent_given", "true");
  if ($("anchor-trial").checked) for (const check of limits.trial_accept) body.append("accept", check);
  pendingAnchorKey = pendingAnchorKey || randomKey();
  const button = $("anchor-submit");
  button.disabled = true;
  try {
    const created = await apiJson("/api/anchors", { method: "POST", headers: { "Idempotency-Key": pendingAnchorKey }, body });
    pendingAnchorKey = null;
    trackAnchor(created.name);
  } catch (err) {
    if (err.status !== 0) pendingAnchorKey = null;
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// Follow an anchor: its training's progress, then its problems or its quality report.
function trackAnchor(name) {
  trackedAnchor = name;
  lastAnchorStatus = "";
  doneWaits = 0;
  $("anchor-label").textContent = name;
  for (const id of ["anchor-progress-section", "anchor-problems-section", "anchor-report-section"]) $(id).hidden = true;
  clearTimeout(anchorTimer);
  pollAnchor(true);
}

async function pollAnchor(first) {
  const name = trackedAnchor;
  let anchor;
  try {
    anchor = await apiJson(`/api/anchors/${encodeURIComponent(name)}`);
  } catch (err) {
    showError(err.message);
    if (err.status !== 404 && err.status !== 401 && name === trackedAnchor) anchorTimer = setTimeout(pollAnchor, POLL_MS * 3);
    return;
  }
  if (name !== trackedAnchor) return;
  if (anchor.state === "ready") {
    $("anchor-progress-section").hidden = !anchor.job || first === true;
    if (anchor.job) showAnchorProgress(anchor);
    $("anchor-cancel").hidden = true;
    await loadAnchors();
    showAnchorReport(anchor);
    return;
  }
  $("anchor-progress-section").hidden = false;
  if (first === true) $("anchor-progress-heading").focus();
  showAnchorProgress(anchor);
  // done but not offered yet: the service picks the new bundle up at its next look
  const waiting = anchor.state === "done" && ++doneWaits < 30;
  if (anchor.state === "queued" || anchor.state === "running" || waiting) {
    anchorTimer = setTimeout(pollAnchor, POLL_MS);
    if (first === true) loadAnchors();
    return;
  }
  $("anchor-cancel").hidden = true;
  loadAnchors();
  if (anchor.state === "failed") {
    if (anchor.problems.length) showAnchorProblems(anchor.problems);
    else showError(`The anchor could not be made: ${anchor.job.error || "unknown error"}`);
  }
  if (anchor.state === "done") showError("The anchor was made, but the service cannot offer it (its log says why).");
}

function showAnchorProgress(anchor) {
  const job = anchor.job;
  const percent = anchor.state === "ready" ? 100 : Math.round(job.progress * 100);
  $("anchor-progress").value = percent;
  $("anchor-percent").textContent = `${percent} %`;
  $("anchor-cancel").hidden = !(anchor.state === "queued" || anchor.state === "running");
  const words = { queued: "Waiting for a machine to train it.", ready: "Done: the anchor is ready.",
    done: "Done: the anchor is being put in place.", failed: "Failed.", cancelled: "Cancelled." };
  // announce a change of stage, not every training step
  const status = anchor.state === "running" ? `Working: ${job.stage.replace(/: step \d+ of \d+$/, "")}.` : words[anchor.state];
  if (status !== lastAnchorStatus) {
    $("anchor-status").textContent = status;
    lastAnchorStatus = status;
  }
  $("anchor-eta").textContent = anchor.state !== "running" ? ""
    : job.eta_s != null ? `About ${formatSeconds(job.eta_s)} left (${job.stage}).` : job.stage;
}

function showAnchorProblems(problems) {
  const list = $("anchor-problems");
  list.replaceChildren(...problems.map((problem) => Object.assign(document.createElement("li"), { textContent: problem.message })));
  $("anchor-problems-section").hidden = false;
  $("anchor-problems-heading").focus();
}

async function showAnchorReport(anchor) {
  $("anchor-report-name").textContent = anchor.name;
  const quality = $("anchor-quality");
  quality.textContent = `${anchor.presenter.name}: ${anchor.quality_status}.`;
  quality.classList.toggle("not-met", Boolean(anchor.quality && !anchor.quality.met));
  const verdicts = { true: "met", false: "NOT met", null: "not judged" };
  const body = $("quality-table").querySelector("tbody");
  body.replaceChildren(...anchor.measures.map((measure) => {
    const row = document.createElement("tr");
    row.append(cell(measure.label), cell(measure.anchor), cell(measure.recording), cell(measure.target),
      cell(verdicts[measure.met], measure.met === false ? "not-met" : ""));
    return row;
  }));
  $("quality-table").hidden = anchor.measures.length === 0;
  $("anchor-accepted").replaceChildren(...anchor.accepted_problems.map(
    (text) => Object.assign(document.createElement("li"), { textContent: text })));
  $("anchor-accepted-section").hidden = anchor.accepted_problems.length === 0;
  $("anchor-report-section").hidden = false;
  $("anchor-report-heading").focus();
  try {
    const preview = $("anchor-preview");
    preview.hidden = !anchor.preview;
    if (anchor.preview) preview.src = await mediaUrl(anchor.preview);
    const link = $("download-report");
    link.hidden = !anchor.report_markdown;
    if (anchor.report_markdown) {
      link.href = await mediaUrl(anchor.report_markdown);
      link.download = `${anchor.name}-quality.md`;
    }
  } catch (err) {
    showError(err.message);
  }
}

async function cancelAnchor() {
  if (!trackedAnchor) return;
  try {
    const anchor = await apiJson(`/api/anchors/${encodeURIComponent(trackedAnchor)}`);
    if (anchor.job) await apiJson(`/api/jobs/${anchor.job.id}/cancel`, { method: "POST" });
    clearTimeout(anchorTimer);
    pollAnchor();
  } catch (err) {
    showError(err.message);
  }
}

// --- the form ---

function updateCounter() {
  const length = $("script").value.length;
  const max = limits.max_text_chars;
  const counter = $("script-count");
  counter.textContent = `${length.toLocaleString()} of ${max.toLocaleString()} characters`;
  counter.classList.toggle("near", length > 0.9 * max);
}

function updateSource() {
  const audio = $("source-audio").checked;
  $("text-fields").hidden = audio;
  $("audio-fields").hidden = !audio;
}

function fail(message, field) {
  showError(message);
  if (field) field.focus();
}

async function submitJob(event) {
  event.preventDefault();
  clearError();
  const chosen = document.querySelector('input[name="anchor"]:checked');
  if (!chosen) return fail("Choose an anchor first.", document.querySelector('input[name="anchor"]'));
  const title = $("title").value.trim();
  const subtitle = $("subtitle").value.trim();
  if (subtitle && !title) return fail("A subtitle needs a title.", $("title"));
  if (/[^\x20-\x7e]/.test(title + subtitle)) {
    return fail("The title and subtitle can only use letters, digits and punctuation without accents.", $("title"));
  }
  let body;
  const headers = {};
  if ($("source-audio").checked) {
    const file = $("audio").files[0];
    if (!file) return fail("Choose a recording to upload.", $("audio"));
    if (file.size > limits.max_upload_bytes) {
      return fail(`The recording is larger than ${formatBytes(limits.max_upload_bytes)}.`, $("audio"));
    }
    body = new FormData();
    body.append("anchor", chosen.value);
    body.append("audio", file);
    if (title) body.append("title", title);
    if (subtitle) body.append("subtitle", subtitle);
  } else {
    const text = $("script").value;
    if (!text.trim()) return fail("Write or paste the script first.", $("script"));
    if (text.length > limits.max_text_chars) {
      return fail(`The script is ${text.length} characters; at most ${limits.max_text_chars} are read.`, $("script"));
    }
    headers["Content-Type"] = "application/json";
    body = JSON.stringify({
      anchor: chosen.value, text, title: title || null, subtitle: subtitle || null, captions: $("captions").checked,
      burn_captions: $("burn-captions").checked,
    });
  }
  pendingKey = pendingKey || randomKey();
  headers["Idempotency-Key"] = pendingKey;
  const button = $("submit");
  button.disabled = true;
  try {
    const created = await apiJson("/api/jobs", { method: "POST", headers, body });
    pendingKey = null;
    track(created.id);
    loadJobs();
  } catch (err) {
    if (err.status !== 0) pendingKey = null;  // only a lost answer is retried with the same key
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// --- following a job ---

function track(id) {
  tracked = id;
  lastStatus = "";
  $("result-section").hidden = true;
  $("progress-section").hidden = false;
  $("job-label").textContent = id.slice(0, 8);
  $("progress").value = 0;
  $("percent").textContent = "0 %";
  $("status").textContent = "Queued.";
  $("eta").textContent = "";
  $("cancel").hidden = false;
  $("progress-heading").focus();
  clearTimeout(pollTimer);
  poll();
}

async function poll() {
  const id = tracked;
  let job;
  try {
    job = await apiJson(`/api/jobs/${id}`);
  } catch (err) {
    showError(err.message);
    if (err.status !== 404 && err.status !== 401 && id === tracked) pollTimer = setTimeout(poll, POLL_MS * 3);
    return;
  }
  if (id !== tracked) return;
  showProgress(job);
  if (job.status === "queued" || job.status === "running") {
    pollTimer = setTimeout(poll, POLL_MS);
  } else {
    $("cancel").hidden = true;
    loadJobs();
    if (job.status === "done") showResult(job);
    if (job.status === "failed") showError(`The video could not be made: ${job.error || "unknown error"}`);
  }
}

function showProgress(job) {
  const percent = Math.round(job.progress * 100);
  $("progress").value = percent;
  $("percent").textContent = `${percent} %`;
  const words = { queued: "Waiting in the queue.", running: `Working: ${job.stage}.`, done: "Done.",
    failed: "Failed.", cancelled: "Cancelled." };
  // announce a change of state, not every frame count
  const status = job.status === "running" ? `Working: ${job.stage.replace(/ frame \d+ of \d+$/, "")}.` : words[job.status];
  if (status !== lastStatus) {
    $("status").textContent = status;
    lastStatus = status;
  }
  $("eta").textContent = job.eta_s != null ? `About ${formatSeconds(job.eta_s)} left (${job.stage}).` : job.stage;
}

async function showResult(job) {
  try {
    const video = $("video");
    video.replaceChildren();
    video.src = await mediaUrl(job.video);
    const link = $("download-video");
    link.href = video.src;
    link.download = `newsanchor-${job.id}.mp4`;
    const captionsLink = $("download-captions");
    captionsLink.hidden = !job.captions;
    if (job.captions) {
      const url = await mediaUrl(job.captions);
      captionsLink.href = url;
      captionsLink.download = `newsanchor-${job.id}.vtt`;
      const track = Object.assign(document.createElement("track"), {
        kind: "captions", src: url, srclang: "en", label: "English", default: true,
      });
      video.append(track);
    }
    $("result-section").hidden = false;
    $("result-heading").focus();
  } catch (err) {
    showError(err.message);
  }
}

async function cancelTracked() {
  if (!tracked) return;
  try {
    showProgress(await apiJson(`/api/jobs/${tracked}/cancel`, { method: "POST" }));
  } catch (err) {
    showError(err.message);
  }
}

// --- recent jobs ---

function actionButton(text, label, handler) {
  const button = Object.assign(document.createElement("button"), { type: "button", className: "small", textContent: text });
  button.setAttribute("aria-label", label);
  button.addEventListener("click", handler);
  return button;
}

async function loadJobs() {
  let jobs;
  try {
    jobs = await apiJson("/api/jobs");
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return;
  }
  jobs = jobs.filter((job) => job.kind !== "anchor");  // anchor jobs are followed in the Anchors section
  const body = $("recent").querySelector("tbody");
  body.replaceChildren();
  $("recent-empty").hidden = jobs.length > 0;
  for (const job of jobs) {
    const row = document.createElement("tr");
    const when = new Date(job.created).toLocaleString();
    const what = job.input === "audio" ? "recording" : `script, ${job.chars} characters`;
    const describe = `${job.title ? job.title + ", " : ""}${what}`;
    const status = document.createElement("td");
    status.textContent = job.status === "failed" ? `failed: ${job.error}` :
      job.status === "running" ? `running (${Math.round(job.progress * 100)} %)` : job.status;
    if (job.status === "failed") status.className = "failed";
    const actions = document.createElement("td");
    const name = `job of ${when}`;
    if (job.status !== "cancelled") actions.append(actionButton("Show", `Show ${name}`, () => track(job.id)));
    if (job.status === "queued" || job.status === "running") {
      actions.append(actionButton("Cancel", `Cancel ${name}`, async () => {
        try { await apiJson(`/api/jobs/${job.id}/cancel`, { method: "POST" }); } catch (err) { showError(err.message); }
        loadJobs();
      }));
    }
    actions.append(actionButton("Delete", `Delete ${name} and its files`, async () => {
      try { await apiJson(`/api/jobs/${job.id}`, { method: "DELETE" }); } catch (err) { showError(err.message); }
      if (tracked === job.id) {
        tracked = null;
        $("progress-section").hidden = true;
        $("result-section").hidden = true;
      }
      loadJobs();
      $("refresh").focus();  // the row and its buttons are gone: keep focus somewhere sensible
    }));
    const cells = [when, job.anchor, describe].map((text) => Object.assign(document.createElement("td"), { textContent: text }));
    row.append(...cells, status, actions);
    body.append(row);
  }
}

// --- start ---

async function start() {
  clearError();
  try {
    limits = await apiJson("/api/limits");
    $("script").maxLength = limits.max_text_chars;
    $("title").maxLength = limits.max_title_chars;
    $("subtitle").maxLength = limits.max_title_chars;
    $("upload-limit").textContent = formatBytes(limits.max_upload_bytes);
    $("recordings-limit").textContent = formatBytes(limits.max_recordings_bytes);
    updateCounter();
    await loadAnchors();
    await loadJobs();
  } catch (err) {
    showError(err.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("job-form").addEventListener("submit", submitJob);
  $("script").addEventListener("input", updateCounter);
  $("source-text").addEventListener("change", updateSource);
  $("source-audio").addEventListener("change", updateSource);
  $("cancel").addEventListener("click", cancelTracked);
  $("refresh").addEventListener("click", loadJobs);
  $("anchor-form").addEventListener("submit", submitAnchor);
  $("anchor-cancel").addEventListener("click", cancelAnchor);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return fail("Enter the access token.", $("token"));
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    $("token-section").hidden = true;
    start();
    $("job-form").querySelector("input, textarea").focus();
  });
  updateCounter();
  updateSource();
  start();
});
