// The landing page: links to both modes and says whether each one is being served right now.

import { fetchSettings } from "/static/api.js";
import { hydrateIcons } from "/static/icons.js";
import { Badge, Notices } from "/static/ui.js";

const badge = new Badge(document.querySelector("#badge"));
const notices = new Notices(document.querySelector("#notices"));

hydrateIcons();
check();

async function check() {
  badge.set("connecting", "Checking…");
  const modes = [...document.querySelectorAll(".card[data-mode]")];
  const results = await Promise.all(modes.map((card) => checkMode(card)));
  const up = results.filter(Boolean).length;
  if (up === results.length) {
    badge.set("live", "Online");
    notices.clear("status");
  } else if (up > 0) {
    badge.set("busy", "Partly online");
  } else {
    badge.set("error", "Offline");
    notices.show("status", "error", "The service cannot be reached right now.", { label: "Check again", run: check });
  }
}

async function checkMode(card) {
  const status = card.querySelector("[data-status]");
  try {
    const { info } = await fetchSettings(card.dataset.mode);
    status.dataset.ok = "true";
    status.textContent = `Online · ${info.width}×${info.height}`;
    status.title = info.model_id || "";
    return true;
  } catch (error) {
    status.dataset.ok = "false";
    status.textContent = "Unavailable";
    status.title = error.message;
    return false;
  }
}
