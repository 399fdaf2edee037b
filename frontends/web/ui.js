// Small DOM helpers shared by the pages: the connection badge, the notice area, stat readouts
// and file names. Kept free of protocol knowledge so every page shows state the same way.

/** Create an element with attributes and children in one call. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

/** The header badge: one of a fixed set of states plus a short label. */
export class Badge {
  constructor(node) {
    this.node = node;
    this.label = node.querySelector(".badge-label");
  }

  /** state: idle | connecting | live | busy | retrying | stopped | error */
  set(state, text) {
    this.node.dataset.state = state;
    this.label.textContent = text;
    this.node.title = text;
  }
}

/**
 * The notice area under the header. Notices have a key so that a newer notice about the same
 * thing (the connection, the camera) replaces the older one instead of piling up.
 */
export class Notices {
  constructor(node) {
    this.node = node;
    this.byKey = new Map();
  }

  /** kind: info | warn | error; action: optional {label, run}. */
  show(key, kind, text, action) {
    this.clear(key);
    const body = el("p", { class: "notice-text", text });
    const buttons = el("div", { class: "notice-actions" });
    if (action) {
      buttons.append(
        el("button", {
          type: "button",
          class: "btn btn-small",
          text: action.label,
          onclick: () => {
            this.clear(key);
            action.run();
          },
        }),
      );
    }
    buttons.append(
      el("button", {
        type: "button",
        class: "btn-icon notice-close",
        "aria-label": "Dismiss",
        text: "×",
        onclick: () => this.clear(key),
      }),
    );
    const role = kind === "error" ? "alert" : "status";
    const notice = el("div", { class: `notice notice-${kind}`, role, "data-key": key }, body, buttons);
    this.node.append(notice);
    this.byKey.set(key, notice);
  }

  clear(key) {
    const old = this.byKey.get(key);
    if (old) old.remove();
    this.byKey.delete(key);
  }
}

/** Write a value into a readout node only when it changed (avoids layout churn at 30 fps). */
export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

/** A file-name-safe slug of free text, e.g. a prompt. */
export function slug(text, maxLength = 60) {
  const cleaned = String(text)
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return (cleaned.slice(0, maxLength).replace(/-+$/, "") || "untitled");
}

/** e.g. realtime_a-watercolor-painting_seed-2_20240131-142501.jpg */
export function downloadName(mode, prompt, seed, extension) {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const stamp =
    `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-` +
    `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  const seedPart = seed === undefined || seed === null ? "" : `_seed-${seed}`;
  return `${mode}_${slug(prompt)}${seedPart}_${stamp}.${extension}`;
}

/** Save a Blob under a file name through a temporary link. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Toggle fullscreen on a node; resolves once the browser has switched. */
export async function toggleFullscreen(node) {
  if (document.fullscreenElement) {
    await document.exitFullscreen();
  } else if (node.requestFullscreen) {
    await node.requestFullscreen();
  }
}

export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** A share 0..1 as a percentage, "–" before there is one. */
export function formatShare(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return "–";
  return `${Math.round(share * 100)} %`;
}

export function formatFps(fps) {
  if (!Number.isFinite(fps)) return "–";
  return fps >= 10 ? fps.toFixed(0) : fps.toFixed(1);
}
