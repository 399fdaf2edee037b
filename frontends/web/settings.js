// Loading /api/{mode}/settings when the page opens, and again with backoff while the service
// (or the Triton server behind it) is not answering, so that a page opened too early starts on
// its own once the service is up.

import { fetchSettings } from "/static/api.js";

const FIRST_DELAY_MS = 3000;
const MAX_DELAY_MS = 30_000;

export async function loadSettings(mode, badge, notices) {
  let delay = FIRST_DELAY_MS;
  for (;;) {
    try {
      const settings = await fetchSettings(mode);
      notices.clear("settings");
      return settings;
    } catch (error) {
      badge.set("error", "Unavailable");
      let wake = () => {};
      const pause = new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, delay);
      });
      notices.show("settings", "error", `${error.message} Trying again in ${Math.round(delay / 1000)} s.`, {
        label: "Retry now",
        run: () => wake(),
      });
      await pause;
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      badge.set("connecting", "Checking…");
    }
  }
}
