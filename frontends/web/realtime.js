// The realtime page: the webcam goes to the server one frame per "send_frame", the generated
// stream comes back over MJPEG and is shown beside the camera.

import { encodeFrame, newUserId, streamUrl } from "/static/api.js";
import { Camera, CameraError } from "/static/camera.js";
import { showConnection } from "/static/connection.js";
import { hydrateIcons, icon } from "/static/icons.js";
import { MjpegReader } from "/static/mjpeg.js";
import { ParamsForm } from "/static/params.js";
import { LatencyMeter, RateMeter, ResultView, showTarget } from "/static/results.js";
import { Session } from "/static/session.js";
import { loadSettings } from "/static/settings.js";
import {
  Badge,
  Notices,
  downloadName,
  el,
  formatFps,
  formatMs,
  formatShare,
  saveBlob,
  setText,
  toggleFullscreen,
} from "/static/ui.js";

const MODE = "realtime";
const JPEG_QUALITY = 0.8;
const STREAM_RETRY_MS = 1000;
const $ = (selector) => document.querySelector(selector);

const ui = {
  start: $("#start"),
  cameraSelect: $("#camera-select"),
  mirror: $("#mirror"),
  video: $("#camera"),
  cameraPane: $("#camera-pane"),
  outputPane: $("#output-pane"),
  output: $("#output"),
  snapshot: $("#snapshot"),
  fullscreen: $("#fullscreen"),
  params: $("#params"),
  modelInfo: $("#model-info"),
  fps: $("#stat-fps"),
  latency: $("#stat-latency"),
  misses: $("#stat-misses"),
  missesBox: $("#stat-misses-box"),
  sent: $("#stat-sent"),
  received: $("#stat-received"),
};

const badge = new Badge($("#badge"));
const notices = new Notices($("#notices"));
const userId = newUserId();
const session = new Session(MODE, userId, { retryAfterTimeout: true });
const camera = new Camera(ui.video);
const view = new ResultView(ui.output);
const rate = new RateMeter();
const latency = new LatencyMeter(2);
const reader = new MjpegReader(() => streamUrl(MODE, userId, session.sessionKey), { onFrame, onEnd: onStreamEnd });
const connection = showConnection(session, badge, notices, {
  onGiveUp: () => stop("Disconnected"),
  reconnect: { label: "Start again", run: () => start() },
});

let info = null;
let targetMs = null;
let form = null;
let running = false;
let capturing = false;
let owed = 0;
let sent = 0;
let streamRetry = null;

init();

async function init() {
  hydrateIcons();
  ui.start.addEventListener("click", () => (running ? stop("Stopped") : start()));
  ui.snapshot.addEventListener("click", snapshot);
  ui.fullscreen.addEventListener("click", () => toggleFullscreen(ui.outputPane).catch(() => {}));
  ui.output.addEventListener("dblclick", () => toggleFullscreen(ui.outputPane).catch(() => {}));
  document.addEventListener("fullscreenchange", () => {
    const full = document.fullscreenElement === ui.outputPane;
    ui.fullscreen.setAttribute("aria-pressed", String(full));
    ui.fullscreen.title = full ? "Exit fullscreen" : "Fullscreen";
  });
  ui.cameraSelect.addEventListener("change", switchCamera);
  ui.mirror.checked = localStorage.getItem("sd.mirror") !== "false";
  applyMirror();
  ui.mirror.addEventListener("change", () => {
    localStorage.setItem("sd.mirror", String(ui.mirror.checked));
    applyMirror();
  });
  navigator.mediaDevices?.addEventListener?.("devicechange", listCameras);
  // Leaving the page frees the server's slot and the camera at once (and a page restored
  // from the back/forward cache comes back stopped, with Start ready).
  addEventListener("pagehide", () => {
    if (running) stop("Stopped");
    else session.close();
  });
  camera.onended = () => {
    stop("Camera stopped");
    badge.set("error", "Camera stopped");
    notices.show("camera", "error", "The camera stopped (unplugged or taken by another app). Press Start to continue.");
  };
  session.addEventListener("state", onSessionState);
  session.addEventListener("message", onMessage);
  setInterval(showStats, 250);
  badge.set("connecting", "Checking…");

  const settings = await loadSettings(MODE, badge, notices);
  info = settings.info;
  targetMs = showTarget(settings.performance, ui.missesBox);
  form = new ParamsForm(ui.params, settings.input_params, `sd.params.${MODE}`);
  form.addEventListener("change", (event) => {
    if (session.connected) session.sendJson({ status: "update_params", ...event.detail.values });
  });
  document.documentElement.style.setProperty("--frame-aspect", `${info.width} / ${info.height}`);
  ui.modelInfo.textContent = describeModel(info);
  ui.start.disabled = false;
  badge.set("idle", "Ready");
  await listCameras();
}

function describeModel(info) {
  const parts = [info.model_id, `${info.width}×${info.height}`];
  if (info.acceleration && info.acceleration !== "none") parts.push(info.acceleration);
  return parts.filter(Boolean).join(" · ");
}

async function listCameras() {
  const cameras = await Camera.list();
  const wanted = camera.deviceId || localStorage.getItem("sd.camera");
  const options = cameras.map((c) => el("option", { value: c.deviceId, text: c.label }));
  if (!options.length) options.push(el("option", { value: "", text: "Default camera" }));
  ui.cameraSelect.replaceChildren(...options);
  if (wanted && cameras.some((c) => c.deviceId === wanted)) ui.cameraSelect.value = wanted;
}

async function start() {
  if (running || !info) return;
  running = true;
  notices.clear("camera");
  showStartButton(true);
  badge.set("connecting", "Starting camera…");
  try {
    await camera.start(ui.cameraSelect.value || null, info.width, info.height);
  } catch (error) {
    stop("Camera unavailable");
    badge.set("error", "Camera unavailable");
    const text = error instanceof CameraError ? error.message : String(error);
    notices.show("camera", "error", text);
    return;
  }
  if (!running) {
    camera.stop();
    return;
  }
  ui.cameraPane.dataset.live = "true";
  await listCameras();
  session.open();
}

function stop(label) {
  running = false;
  owed = 0;
  connection.setIdleLabel(label);
  clearTimeout(streamRetry);
  reader.stop();
  session.close();
  camera.stop();
  latency.forgetPending();
  rate.reset();
  delete ui.cameraPane.dataset.live;
  showStartButton(false);
}

function showStartButton(isRunning) {
  ui.start.replaceChildren(icon(isRunning ? "stop" : "play"), el("span", { class: "btn-text", text: isRunning ? "Stop" : "Start" }));
  ui.start.dataset.icon = isRunning ? "stop" : "play";
  ui.start.classList.toggle("btn-primary", !isRunning);
  ui.start.classList.toggle("btn-danger", isRunning);
}

async function switchCamera() {
  localStorage.setItem("sd.camera", ui.cameraSelect.value);
  if (!running || ui.cameraSelect.value === camera.deviceId) return;
  try {
    await camera.start(ui.cameraSelect.value, info.width, info.height);
    notices.clear("camera");
  } catch (error) {
    notices.show("camera", "error", error instanceof CameraError ? error.message : String(error));
  }
}

function applyMirror() {
  camera.mirror = ui.mirror.checked;
  ui.video.classList.toggle("mirrored", ui.mirror.checked);
}

function onSessionState(event) {
  const { state } = event.detail;
  if (state === "connected") {
    owed = 0;
    startStream();
  } else {
    clearTimeout(streamRetry);
    reader.stop();
    latency.forgetPending();
  }
}

function onMessage(event) {
  if (event.detail.status === "send_frame" && running) {
    owed += 1;
    pump();
  }
}

/** Send one frame per outstanding send_frame, never more. */
async function pump() {
  if (capturing || owed === 0 || !running || !session.connected) return;
  capturing = true;
  try {
    const bytes = await camera.capture(info.width, info.height, JPEG_QUALITY);
    if (running && session.connected && owed > 0) {
      session.send(encodeFrame(form.values(), bytes));
      owed -= 1;
      sent += 1;
      latency.sent(performance.now());
    }
  } catch (error) {
    notices.show("camera", "error", `Could not capture a frame: ${error.message || error}`);
  } finally {
    capturing = false;
  }
  if (owed > 0) pump();
}

function startStream() {
  clearTimeout(streamRetry);
  reader.start();
}

function onFrame(blob, receivedAt) {
  view.show(blob);
  rate.tick(receivedAt);
  latency.received(receivedAt);
  showStats();
  notices.clear("server");
  ui.snapshot.disabled = false;
}

function onStreamEnd() {
  // The stream can end before the session does (a proxy timeout, a server restart); the
  // session notices the latter itself, so only the former needs a new request here.
  if (!running || !session.connected) return;
  clearTimeout(streamRetry);
  streamRetry = setTimeout(() => {
    if (running && session.connected) reader.start();
  }, STREAM_RETRY_MS);
}

function showStats() {
  const now = performance.now();
  const live = running && session.connected;
  setText(ui.fps, live ? formatFps(rate.rate(now)) : "–");
  setText(ui.latency, formatMs(latency.median()));
  setText(ui.misses, formatShare(latency.missShare(targetMs)));
  setText(ui.sent, String(sent));
  setText(ui.received, String(view.count));
}

function snapshot() {
  if (!view.lastBlob) return;
  const values = form ? form.values() : {};
  saveBlob(view.lastBlob, downloadName(MODE, values.prompt || "", values.seed, "jpg"));
}
