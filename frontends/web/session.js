// One WebSocket session with the server, reconnecting with backoff when the connection drops.
//
// Events (CustomEvent, details in brackets):
//   state    {state: "connecting" | "connected" | "retrying" | "closed", delayMs?, attempt?}
//   message  the server's JSON object ({"status": ...})
// sessionKey: the key from the last "connected" message; it opens the session's MJPEG stream
// and is offered on reconnects, so a reconnect may replace this page's own session.
//   dropped  {code, reason, text, willRetry, delayMs}  the connection ended without close() being called

import { describeClose, socketUrl } from "/static/api.js";

const MAX_DELAY_MS = 15_000;

export class Session extends EventTarget {
  /**
   * options.retryAfterTimeout: reconnect after the server closed an idle session (a camera keeps
   * sending, so yes; a drawing page reconnects only when there is something new to send).
   */
  constructor(mode, userId, { retryAfterTimeout = true } = {}) {
    super();
    this.mode = mode;
    this.userId = userId;
    this.retryAfterTimeout = retryAfterTimeout;
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.timer = null;
    this.state = "closed";
    this.timeoutText = null;
    this.sessionKey = "";
    addEventListener("online", () => this.retryNow());
  }

  get connected() {
    return this.state === "connected";
  }

  /** Bytes queued in the socket but not yet on the wire. */
  get bufferedAmount() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  open() {
    if (this.wanted && this.state !== "closed") return;
    this.wanted = true;
    this.attempt = 0;
    this.connect();
  }

  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "closed by the page");
    this.setState("closed");
  }

  /** Skip the backoff wait (the person pressed "Retry now", or the network came back). */
  retryNow() {
    if (!this.wanted || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  send(data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  sendJson(object) {
    return this.send(JSON.stringify(object));
  }

  connect() {
    this.timeoutText = null;
    this.setState("connecting", { attempt: this.attempt });
    const ws = new WebSocket(socketUrl(this.mode, this.userId, this.sessionKey));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.status === "connected") {
        this.attempt = 0;
        this.sessionKey = typeof message.session_key === "string" ? message.session_key : "";
        this.setState("connected");
      } else if (message.status === "timeout") {
        this.timeoutText = message.message || "The session timed out.";
      }
      this.dispatchEvent(new CustomEvent("message", { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.onDropped(event.code, event.reason);
    });
  }

  onDropped(code, reason) {
    const described = describeClose(code, reason);
    const timedOut = this.timeoutText !== null || code === 4003;
    const text = this.timeoutText || described.text;
    let willRetry = this.wanted && described.retry === "auto";
    if (timedOut && !this.retryAfterTimeout) willRetry = false;
    if (!willRetry) {
      this.wanted = false;
      this.setState("closed");
      this.dispatchEvent(new CustomEvent("dropped", { detail: { code, reason, text, timedOut, willRetry } }));
      return;
    }
    const delayMs = backoff(this.attempt, described.slow);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.wanted) this.connect();
    }, delayMs);
    this.setState("retrying", { delayMs, attempt: this.attempt });
    this.dispatchEvent(
      new CustomEvent("dropped", { detail: { code, reason, text, timedOut, willRetry, delayMs } }),
    );
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }
}

/** Exponential backoff with jitter, so that many pages do not return at the same instant. */
function backoff(attempt, slow) {
  const base = slow ? 2000 : 500;
  const delay = Math.min(MAX_DELAY_MS, base * 2 ** attempt);
  return Math.round(delay * (0.8 + 0.4 * Math.random()));
}
