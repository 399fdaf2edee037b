// The canvas page: every change to the drawing goes to the server (coalesced while a stroke is
// under way, always at its end), and every result comes back over MJPEG in order.

import { encodeFrame, newUserId, streamUrl } from "/static/api.js";
import { showConnection } from "/static/connection.js";
import { Drawing, pointFromEvent } from "/static/drawing.js";
import { hydrateIcons } from "/static/icons.js";
import { MjpegReader } from "/static/mjpeg.js";
import { ParamsForm } from "/static/params.js";
import { LatencyMeter, ResultView, showTarget } from "/static/results.js";
import { Session } from "/static/session.js";
import { loadSettings } from "/static/settings.js";
import {
  Badge,
  Notices,
  downloadName,
  el,
  formatMs,
  formatShare,
  saveBlob,
  setText,
  toggleFullscreen,
} from "/static/ui.js";

const MODE = "canvas";
/** At most one drawing per this many ms while a stroke is under way. */
const STROKE_INTERVAL_MS = 150;
const STREAM_RETRY_MS = 1000;
const BACKGROUND = "#ffffff";
const SWATCHES = ["#1e293b", "#ef4444", "#f59e0b", "#22c55e", "#3b82f6", "#a855f7", "#ec4899", "#8b5a2b"];
const $ = (selector) => document.querySelector(selector);

const ui = {
  canvas: $("#drawing"),
  view: $("#drawing-view"),
  cursor: $("#brush-cursor"),
  brush: $("#tool-brush"),
  eraser: $("#tool-eraser"),
  color: $("#brush-color"),
  swatches: $("#swatches"),
  size: $("#brush-size"),
  sizeValue: $("#brush-size-value"),
  undo: $("#undo"),
  redo: $("#redo"),
  clear: $("#clear"),
  upload: $("#upload"),
  saveDrawing: $("#save-drawing"),
  saveResult: $("#save-result"),
  fullscreen: $("#fullscreen"),
  outputPane: $("#output-pane"),
  output: $("#output"),
  params: $("#params"),
  modelInfo: $("#model-info"),
  workState: $("#work-state"),
  sent: $("#stat-sent"),
  received: $("#stat-received"),
  latency: $("#stat-latency"),
  misses: $("#stat-misses"),
  missesBox: $("#stat-misses-box"),
};

const badge = new Badge($("#badge"));
const notices = new Notices($("#notices"));
const userId = newUserId();
const session = new Session(MODE, userId, { retryAfterTimeout: false });
const view = new ResultView(ui.output);
const latency = new LatencyMeter(Infinity);
const reader = new MjpegReader(() => streamUrl(MODE, userId, session.sessionKey), { onFrame, onEnd: onStreamEnd });
showConnection(session, badge, notices, {
  reconnect: { label: "Reconnect", run: () => session.open() },
  pausedHint: "Drawing again reconnects.",
});

let info = null;
let targetMs = null;
let form = null;
let drawing = null;
let tool = "brush";
let paramsVersion = 0;
/** What the last drawing sent showed: `${drawing.version}:${paramsVersion}`. */
let lastSentKey = null;
let encoding = false;
let flushAgain = false;
let strokeTimer = null;
let sent = 0;
let streamRetry = null;
let pointerId = null;

init();

async function init() {
  hydrateIcons();
  badge.set("connecting", "Checking…");
  session.addEventListener("state", onSessionState);
  session.addEventListener("message", onMessage);
  // Leaving the page frees the server's slot at once; coming back from the back/forward cache
  // reconnects (and sends the drawing only if it changed since).
  addEventListener("pagehide", () => session.close());
  addEventListener("pageshow", (event) => {
    if (event.persisted && drawing) session.open();
  });
  setInterval(showStats, 250);
  const settings = await loadSettings(MODE, badge, notices);
  info = settings.info;
  targetMs = showTarget(settings.performance, ui.missesBox);
  ui.canvas.width = info.width;
  ui.canvas.height = info.height;
  document.documentElement.style.setProperty("--frame-aspect", `${info.width} / ${info.height}`);
  ui.modelInfo.textContent = [info.model_id, `${info.width}×${info.height}`].filter(Boolean).join(" · ");
  form = new ParamsForm(ui.params, settings.input_params, `sd.params.${MODE}`);
  form.addEventListener("change", () => {
    paramsVersion += 1;
    if (drawing && drawing.version > 0) flush();
  });
  drawing = new Drawing(ui.canvas, BACKGROUND);
  drawing.addEventListener("change", onDrawingChange);
  setupTools();
  setupPointer();
  setupKeys();
  session.open();
}

/* ---------- sending ---------- */

function currentKey() {
  return `${drawing.version}:${paramsVersion}`;
}

function onDrawingChange(event) {
  updateHistoryButtons();
  if (event.detail.kind === "stroke") {
    // coalesce: one drawing per interval at most while the stroke goes on
    if (!strokeTimer) strokeTimer = setTimeout(strokeTick, STROKE_INTERVAL_MS);
    return;
  }
  clearTimeout(strokeTimer);
  strokeTimer = null;
  flush();
}

function strokeTick() {
  strokeTimer = null;
  // While the server is still working on an earlier drawing, wait: the stroke's end is always
  // sent, and a queue of half-finished strokes would only delay it.
  if (drawing.active && latency.inFlight === 0) flush();
}

/** Send the drawing if it differs from the last one sent; never two encodings at once. */
async function flush() {
  if (!drawing || drawing.version === 0) return;
  if (!session.connected) {
    if (session.state === "closed") session.open();
    return;
  }
  if (encoding) {
    flushAgain = true;
    return;
  }
  const key = currentKey();
  if (key === lastSentKey) return;
  encoding = true;
  try {
    const blob = await new Promise((resolve) => ui.canvas.toBlob(resolve, "image/png"));
    if (!blob) throw new Error("the browser could not encode the drawing");
    const bytes = await blob.arrayBuffer();
    if (session.send(encodeFrame(form.values(), bytes))) {
      lastSentKey = key;
      sent += 1;
      latency.sent(performance.now());
    }
    showStats();
  } catch (error) {
    notices.show("drawing", "error", `Could not send the drawing: ${error.message || error}`);
  } finally {
    encoding = false;
  }
  if (flushAgain) {
    flushAgain = false;
    if (!drawing.active) flush();
  }
}

/* ---------- connection and results ---------- */

function onSessionState(event) {
  const { state } = event.detail;
  if (state === "connected") {
    clearTimeout(streamRetry);
    reader.start();
    flush();
    return;
  }
  clearTimeout(streamRetry);
  reader.stop();
  // Drawings sent on the lost connection will not be answered: send the current one again
  // on the next connection.
  if (latency.inFlight > 0) lastSentKey = null;
  latency.forgetPending();
}

function onMessage(event) {
  const message = event.detail;
  if (message.status === "error") latency.abandonOldest();
}

function onFrame(blob, receivedAt) {
  view.show(blob);
  latency.received(receivedAt);
  showStats();
  notices.clear("server");
  if (badge.node.dataset.state === "busy") badge.set("live", "Live");
  ui.saveResult.disabled = false;
  if (drawing.active && currentKey() !== lastSentKey && !strokeTimer) {
    strokeTimer = setTimeout(strokeTick, STROKE_INTERVAL_MS);
  }
}

function onStreamEnd() {
  if (!session.connected) return;
  clearTimeout(streamRetry);
  streamRetry = setTimeout(() => {
    if (session.connected) reader.start();
  }, STREAM_RETRY_MS);
}

function showStats() {
  setText(ui.sent, String(sent));
  setText(ui.received, String(view.count));
  setText(ui.latency, formatMs(latency.median()));
  setText(ui.misses, formatShare(latency.missShare(targetMs)));
  const working = latency.inFlight > 0 || encoding;
  ui.workState.classList.toggle("working", working);
  let text = "Waiting for a drawing";
  if (working) text = "Painting…";
  else if (view.count > 0) text = "Up to date";
  if (drawing && drawing.version > 0 && !session.connected && session.state !== "connected") {
    text = "Not sent: not connected";
  }
  setText(ui.workState, text);
}

/* ---------- tools ---------- */

function setupTools() {
  for (const color of SWATCHES) {
    const swatch = el("button", {
      type: "button",
      class: "swatch",
      title: color,
      "aria-label": `Colour ${color}`,
      "aria-pressed": String(color === ui.color.value),
      "data-color": color,
      onclick: () => pickColor(color),
    });
    swatch.style.background = color; // a style="" attribute would break the Content-Security-Policy
    ui.swatches.append(swatch);
  }
  ui.color.addEventListener("input", () => pickColor(ui.color.value));
  ui.brush.addEventListener("click", () => pickTool("brush"));
  ui.eraser.addEventListener("click", () => pickTool("eraser"));
  ui.size.addEventListener("input", () => setText(ui.sizeValue, ui.size.value));
  ui.undo.addEventListener("click", () => drawing.undo());
  ui.redo.addEventListener("click", () => drawing.redo());
  ui.clear.addEventListener("click", () => drawing.clear());
  ui.upload.addEventListener("change", uploadBackground);
  ui.saveDrawing.addEventListener("click", saveDrawing);
  ui.saveResult.addEventListener("click", saveResult);
  ui.fullscreen.addEventListener("click", () => toggleFullscreen(ui.outputPane).catch(() => {}));
  document.addEventListener("fullscreenchange", () => {
    ui.fullscreen.setAttribute("aria-pressed", String(document.fullscreenElement === ui.outputPane));
  });
  updateHistoryButtons();
}

function pickTool(name) {
  tool = name;
  ui.brush.setAttribute("aria-pressed", String(name === "brush"));
  ui.eraser.setAttribute("aria-pressed", String(name === "eraser"));
}

function pickColor(color) {
  ui.color.value = color;
  for (const swatch of ui.swatches.children) {
    swatch.setAttribute("aria-pressed", String(swatch.dataset.color === color));
  }
  pickTool("brush");
}

function updateHistoryButtons() {
  ui.undo.disabled = !drawing.canUndo;
  ui.redo.disabled = !drawing.canRedo;
  ui.clear.disabled = drawing.blank;
}

async function uploadBackground() {
  const file = ui.upload.files && ui.upload.files[0];
  ui.upload.value = "";
  if (!file) return;
  try {
    const image = await createImageBitmap(file);
    drawing.setBackground(image);
    notices.clear("upload");
  } catch {
    notices.show("upload", "error", `"${file.name}" could not be read as a picture. Try a JPEG, PNG or WebP file.`);
  }
}

function saveDrawing() {
  const values = form.values();
  ui.canvas.toBlob((blob) => {
    if (blob) saveBlob(blob, downloadName("drawing", values.prompt || "", null, "png"));
  }, "image/png");
}

function saveResult() {
  if (!view.lastBlob) return;
  const values = form.values();
  saveBlob(view.lastBlob, downloadName(MODE, values.prompt || "", values.seed, "jpg"));
}

/* ---------- pointer input ---------- */

function setupPointer() {
  const canvas = ui.canvas;
  canvas.addEventListener("pointerdown", (event) => {
    if (pointerId !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    pointerId = event.pointerId;
    canvas.setPointerCapture(event.pointerId);
    drawing.beginStroke(tool, ui.color.value, Number(ui.size.value), pointFromEvent(event, canvas));
  });
  canvas.addEventListener("pointermove", (event) => {
    moveCursor(event);
    if (event.pointerId !== pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const points = (events.length ? events : [event]).map((e) => pointFromEvent(e, canvas));
    drawing.extendStroke(points);
  });
  const end = (event) => {
    if (event.pointerId !== pointerId) return;
    pointerId = null;
    drawing.endStroke();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("lostpointercapture", end);
  canvas.addEventListener("pointerleave", () => {
    ui.cursor.hidden = true;
  });
}

/** A ring the size of the brush follows a mouse or a hovering pen. */
function moveCursor(event) {
  if (event.pointerType === "touch") {
    ui.cursor.hidden = true;
    return;
  }
  const rect = ui.canvas.getBoundingClientRect();
  const diameter = (Number(ui.size.value) * rect.width) / ui.canvas.width;
  ui.cursor.hidden = false;
  ui.cursor.style.width = ui.cursor.style.height = `${diameter}px`;
  ui.cursor.style.transform = `translate(${event.clientX - rect.left - diameter / 2}px, ${event.clientY - rect.top - diameter / 2}px)`;
}

function setupKeys() {
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (mod && key === "z") {
      event.preventDefault();
      if (event.shiftKey) drawing.redo();
      else drawing.undo();
    } else if (mod && key === "y") {
      event.preventDefault();
      drawing.redo();
    } else if (!mod && key === "b") {
      pickTool("brush");
    } else if (!mod && key === "e") {
      pickTool("eraser");
    } else if (!mod && (key === "[" || key === "]")) {
      const step = key === "]" ? 2 : -2;
      ui.size.value = String(Math.min(Number(ui.size.max), Math.max(Number(ui.size.min), Number(ui.size.value) + step)));
      setText(ui.sizeValue, ui.size.value);
    }
  });
}
