// Shows a Session's state the same way on every page: the header badge, a notice when the
// connection drops (with a countdown and "Retry now"), and the server's error messages.

/**
 * onGiveUp(detail): the connection ended for good (no automatic retry); reconnect: the
 * {label, run} action offered in the notice; pausedHint: what to do after an idle timeout.
 */
export function showConnection(session, badge, notices, { onGiveUp, reconnect, pausedHint = "" } = {}) {
  let countdown = null;
  let idleLabel = "Not connected";

  const stopCountdown = () => {
    clearInterval(countdown);
    countdown = null;
  };

  session.addEventListener("state", (event) => {
    const { state, delayMs } = event.detail;
    stopCountdown();
    if (state === "connecting") {
      badge.set("connecting", "Connecting…");
    } else if (state === "connected") {
      badge.set("live", "Live");
      notices.clear("connection");
    } else if (state === "retrying") {
      const until = performance.now() + delayMs;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
        badge.set("retrying", left > 0 ? `Reconnecting in ${left} s` : "Reconnecting…");
      };
      tick();
      countdown = setInterval(tick, 250);
    } else if (state === "closed") {
      badge.set("stopped", idleLabel);
    }
  });

  session.addEventListener("message", (event) => {
    const message = event.detail;
    if (message.status === "wait") {
      badge.set("busy", "Server busy");
    } else if (message.status === "send_frame" && badge.node.dataset.state === "busy") {
      badge.set("live", "Live");
    } else if (message.status === "error" && session.connected) {
      // (an error before "connected" is the reason for the close that follows; the close's
      // notice explains it in plain words)
      notices.show("server", "error", `Server: ${message.message || "an error occurred."}`);
    }
  });

  session.addEventListener("dropped", (event) => {
    const { text, willRetry, delayMs, timedOut } = event.detail;
    if (willRetry) {
      const seconds = Math.max(1, Math.round(delayMs / 1000));
      notices.show("connection", "warn", `${text} Reconnecting in about ${seconds} s.`, {
        label: "Retry now",
        run: () => session.retryNow(),
      });
      return;
    }
    onGiveUp?.(event.detail);
    if (timedOut) {
      badge.set("stopped", "Paused");
      notices.show("connection", "info", `${text} ${pausedHint}`.trim(), reconnect);
    } else {
      badge.set("error", "Disconnected");
      notices.show("connection", "error", text, reconnect);
    }
  });

  return {
    /** The badge text while no session is open (e.g. "Stopped" after the person pressed Stop). */
    setIdleLabel(text) {
      idleLabel = text;
    },
  };
}
