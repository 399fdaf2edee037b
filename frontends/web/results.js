// The generated picture: shows each MJPEG part in an <img>, keeps the last one for saving, and
// measures output rate and latency.

/** Parts per second over a sliding window. */
export class RateMeter {
  constructor(windowMs = 2000) {
    this.windowMs = windowMs;
    this.times = [];
  }

  tick(now) {
    this.times.push(now);
    this.trim(now);
  }

  rate(now) {
    this.trim(now);
    if (this.times.length < 2) return this.times.length === 1 ? 1000 / this.windowMs : 0;
    const span = Math.max(now - this.times[0], 1);
    return (this.times.length * 1000) / Math.max(span, this.windowMs / 2);
  }

  trim(now) {
    while (this.times.length && now - this.times[0] > this.windowMs) this.times.shift();
  }

  reset() {
    this.times = [];
  }
}

/**
 * Latency from sending a frame to the output it led to, as the median of recent samples.
 *
 * Every send is queued; every output is matched with the oldest queued send. `maxInFlight`
 * bounds the queue: a realtime server keeps only the newest waiting frame besides the one it is
 * working on and skips similar frames, so sends beyond the newest two never get an output of
 * their own and are forgotten (maxInFlight 2). A canvas server answers every drawing in order,
 * so the match is exact there (maxInFlight Infinity).
 */
export class LatencyMeter {
  constructor(maxInFlight, samples = 15, missWindow = 100) {
    this.maxInFlight = maxInFlight;
    this.samples = samples;
    this.missWindow = missWindow;
    this.pending = [];
    this.recent = [];
    this.history = [];
  }

  sent(now) {
    this.pending.push(now);
    if (this.pending.length > this.maxInFlight) this.pending.shift();
  }

  received(now) {
    if (!this.pending.length) return null;
    const sample = now - this.pending.shift();
    this.recent.push(sample);
    if (this.recent.length > this.samples) this.recent.shift();
    this.history.push(sample);
    if (this.history.length > this.missWindow) this.history.shift();
    return sample;
  }

  /**
   * Share of the last `missWindow` outputs that came later than `targetMs` (the service's
   * performance.target_latency_ms): the deadline-miss rate as this page sees it, network included.
   */
  missShare(targetMs) {
    if (!this.history.length || !Number.isFinite(targetMs)) return null;
    return this.history.filter((sample) => sample > targetMs).length / this.history.length;
  }

  /** The oldest waiting frame was answered without a picture (the server reported an error). */
  abandonOldest() {
    this.pending.shift();
  }

  /** Frames sent and not yet answered. */
  get inFlight() {
    return this.pending.length;
  }

  median() {
    if (!this.recent.length) return null;
    const sorted = [...this.recent].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  reset() {
    this.pending = [];
    this.recent = [];
    this.history = [];
  }

  /** A new connection answers nothing that was sent on the old one. */
  forgetPending() {
    this.pending = [];
  }
}

/**
 * The latency target from /api/{mode}/settings (performance.target_latency_ms), written into the
 * deadline readout's tooltip; returns it in ms (null when the service states none).
 */
export function showTarget(performance, node) {
  const target = Number(performance?.target_latency_ms);
  if (!Number.isFinite(target) || target <= 0) return null;
  node.title = `Share of the last 100 pictures that came later than the ${Math.round(target)} ms latency target`;
  node.dataset.targetMs = String(target);
  return target;
}

/** Shows parts in an <img>, revoking blob: URLs once a newer picture has loaded. */
export class ResultView {
  constructor(img) {
    this.img = img;
    this.urls = [];
    this.lastBlob = null;
    this.count = 0;
    img.addEventListener("load", () => this.release(img.currentSrc || img.src));
  }

  show(blob) {
    this.lastBlob = blob;
    this.count += 1;
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    this.img.src = url;
    this.img.dataset.frames = String(this.count);
    this.img.closest("[data-has-result]")?.setAttribute("data-has-result", "true");
  }

  /** Revoke every URL older than the one now on screen. */
  release(shown) {
    const index = this.urls.indexOf(shown);
    if (index <= 0) return;
    for (const url of this.urls.splice(0, index)) URL.revokeObjectURL(url);
  }
}
