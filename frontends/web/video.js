// The video page: upload a clip, follow its job (the job id lives in the URL, so a reload finds
// it again), show the newest frame as it is made and offer the result once it is done.

import { withToken } from "/static/api.js";
import { hydrateIcons } from "/static/icons.js";
import { Badge, Notices, setText } from "/static/ui.js";

const POLL_MS = 500;
const badge = new Badge(document.querySelector("#badge"));
const notices = new Notices(document.querySelector("#notices"));
const form = document.querySelector("#job-form");
const preview = document.querySelector("#preview");
const download = document.querySelector("#download");
const view = {
  progress: document.querySelector("#progress"),
  state: document.querySelector("#stat-state"),
  frames: document.querySelector("#stat-frames"),
  fps: document.querySelector("#stat-fps"),
  eta: document.querySelector("#stat-eta"),
  problems: document.querySelector("#problems"),
};
let shownFrames = -1;
let timer = 0;
let formTouched = false;

const jobId = new URLSearchParams(location.search).get("job");

hydrateIcons();
loadSettings();
form.addEventListener("input", () => {
  formTouched = true;
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload();
});
if (jobId) follow(jobId);
else badge.set("idle", "Ready");

async function answerOf(response) {
  try {
    return await response.json();
  } catch {
    return { message: `HTTP ${response.status}` };
  }
}

async function loadSettings() {
  try {
    const response = await fetch(withToken("/api/video/settings"), { cache: "no-store" });
    const settings = await answerOf(response);
    if (!response.ok) throw new Error(settings.message);
    const megabytes = (settings.max_upload_bytes / 1048576).toFixed(0);
    setText(document.querySelector("#limits"), `Up to ${megabytes} MB and ${settings.max_duration_s} s; ${settings.suffixes.join(" ")}.`);
    if (!jobId) document.querySelector("#prompt").value ||= settings.default_prompt;
    for (const option of document.querySelectorAll("#mode option")) option.disabled = !settings.modes.includes(option.value);
  } catch (error) {
    notices.show("settings", "error", `The video service is not available (${error.message}).`, { label: "Check again", run: loadSettings });
  }
}

async function upload() {
  const data = new FormData(form);
  if (!data.get("seed")) data.delete("seed");
  document.querySelector("#start").disabled = true;
  badge.set("connecting", "Uploading…");
  notices.clear("job");
  try {
    const response = await fetch(withToken("/api/video/jobs"), { method: "POST", body: data });
    const answer = await answerOf(response);
    if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
    const url = new URL(location.href);
    url.searchParams.set("job", answer.id);
    history.replaceState(null, "", url);
    follow(answer.id);
  } catch (error) {
    badge.set("error", "Not started");
    notices.show("job", "error", error.message);
    document.querySelector("#start").disabled = false;
  }
}

function follow(id) {
  clearTimeout(timer);
  shownFrames = -1;
  download.hidden = true;
  poll(id);
}

async function poll(id) {
  let job;
  try {
    const response = await fetch(withToken(`/api/video/jobs/${encodeURIComponent(id)}`), { cache: "no-store" });
    job = await answerOf(response);
    if (!response.ok) {
      badge.set("error", "No such job");
      notices.show("job", "error", job.message || `HTTP ${response.status}`);
      document.querySelector("#start").disabled = false;
      return;
    }
  } catch {
    badge.set("retrying", "Reconnecting…");
    timer = setTimeout(() => poll(id), POLL_MS * 4);
    return;
  }
  show(id, job);
  if (job.state === "running") timer = setTimeout(() => poll(id), POLL_MS);
  else document.querySelector("#start").disabled = false;
}

/** After a reload the form shows the job it follows, until the person edits it. */
function describe(job) {
  const info = document.querySelector("#job-info");
  setText(info, `${job.mode} · “${job.prompt}”`);
  info.hidden = false;
  if (formTouched) return;
  document.querySelector("#mode").value = job.mode;
  document.querySelector("#prompt").value = job.prompt;
}

function show(id, job) {
  describe(job);
  const progress = job.progress || { done: 0, total: 0, fps: 0, eta_s: null };
  view.progress.max = Math.max(1, progress.total);
  view.progress.value = progress.done;
  setText(view.state, job.state);
  setText(view.frames, progress.total ? `${progress.done} / ${progress.total}` : "–");
  setText(view.fps, progress.fps ? progress.fps.toFixed(1) : "–");
  setText(view.eta, progress.eta_s == null ? "–" : `${Math.ceil(progress.eta_s)} s`);
  view.problems.replaceChildren(...job.problems.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  if (job.has_preview && progress.done !== shownFrames) {
    shownFrames = progress.done;
    preview.src = withToken(`/api/video/jobs/${encodeURIComponent(id)}/preview?frame=${progress.done}`);
    preview.hidden = false;
    document.querySelector("#preview-empty").hidden = true;
  }
  if (job.state === "running") badge.set("live", `Restyling · ${job.mode}`);
  else if (job.state === "done") {
    badge.set("live", "Done");
    download.href = withToken(`/api/video/jobs/${encodeURIComponent(id)}/result`);
    download.hidden = false;
  } else {
    badge.set("error", job.state === "failed" ? "Failed" : "Stopped");
    notices.show("job", "error", job.error || "The job did not finish.");
  }
}
