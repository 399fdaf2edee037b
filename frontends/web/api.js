// The service's wire protocol as the pages speak it: settings, user ids, the binary frame
// envelope and what each close code means for the person in front of the page.

// The access token (server.security.access_token), when the server wants one: read from this
// page's ?token=, kept for the tab, and passed on to every API call and to the links between pages.
const TOKEN_KEY = "streamdiffusion.token";
const token = readToken();
carryTokenOnLinks();

function readToken() {
  const fromUrl = new URLSearchParams(location.search).get("token") || "";
  try {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl || sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return fromUrl; // storage can be switched off
  }
}

/** `path` with the access token appended when there is one. */
export function withToken(path) {
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

function carryTokenOnLinks() {
  if (!token || typeof document === "undefined") return;
  for (const link of document.querySelectorAll('a[href^="/"]')) {
    link.setAttribute("href", withToken(link.getAttribute("href")));
  }
}

/** GET /api/{mode}/settings → {info, input_params, performance}. */
export async function fetchSettings(mode) {
  let response;
  try {
    response = await fetch(withToken(`/api/${mode}/settings`), { cache: "no-store" });
  } catch {
    throw new Error("The server cannot be reached.");
  }
  if (!response.ok) {
    let detail = "";
    try {
      const body = await response.json();
      detail = body.error || body.message || "";
    } catch {
      // not JSON: the status line says enough
    }
    const reason = detail || `HTTP ${response.status}`;
    throw new Error(`The ${mode} service is not available (${reason}).`);
  }
  return response.json();
}

/** A user id the server accepts ([A-Za-z0-9_-]{1,64}); one per page load. */
export function newUserId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * sessionKey: the key of this page's previous session, so that a reconnect may replace it while
 * the server still holds it open (the server lets only the key's holder do that).
 */
export function socketUrl(mode, userId, sessionKey = "") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return withToken(withSessionKey(`${scheme}//${location.host}/api/${mode}/ws/${encodeURIComponent(userId)}`, sessionKey));
}

/** sessionKey: from the session's "connected" message; the server shows the stream only to its holder. */
export function streamUrl(mode, userId, sessionKey = "") {
  return withToken(withSessionKey(`/api/${mode}/stream/${encodeURIComponent(userId)}`, sessionKey));
}

function withSessionKey(path, sessionKey) {
  return sessionKey ? `${path}?session_key=${encodeURIComponent(sessionKey)}` : path;
}

const encoder = new TextEncoder();

/**
 * One binary WebSocket message: [4-byte big-endian JSON length][UTF-8 JSON][image bytes].
 * The JSON is {"status": "next_frame", ...params}.
 */
export function encodeFrame(params, imageBytes) {
  const json = encoder.encode(JSON.stringify({ status: "next_frame", ...params }));
  const image = new Uint8Array(imageBytes);
  const message = new Uint8Array(4 + json.length + image.length);
  new DataView(message.buffer).setUint32(0, json.length, false);
  message.set(json, 4);
  message.set(image, 4 + json.length);
  return message.buffer;
}

/**
 * What a close code means and whether trying again can help.
 * retry: "auto" reconnects with backoff, "never" waits for the person to act.
 */
export function describeClose(code, reason) {
  const said = reason ? ` (${reason})` : "";
  switch (code) {
    case 1000:
      return { retry: "auto", text: `The server ended the session${said}.` };
    case 1001:
      return { retry: "auto", text: "The server is restarting or shutting down." };
    case 1008:
      return { retry: "auto", text: `The server refused this page's messages${said || " (too many, or malformed)"}.` };
    case 1009:
      return { retry: "auto", text: "A picture was larger than the server accepts." };
    case 1011:
      return { retry: "auto", text: `The server hit an internal error${said}.` };
    case 1012:
    case 1013:
      return {
        retry: "auto",
        slow: true,
        text: "The server is full: every session slot is in use. Waiting for a free slot.",
      };
    case 4001:
      return {
        retry: "never",
        text: "This session was opened again in another tab or window, so this one was disconnected.",
      };
    case 4002:
      return { retry: "never", text: "This session is already open in another tab or window." };
    case 4003:
      return { retry: "auto", text: "The server closed the session after a period without activity." };
    default:
      return { retry: "auto", text: `Lost the connection to the server${code && code !== 1006 ? ` (code ${code})` : ""}.` };
  }
}
