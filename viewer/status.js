// The header's indicators: the connection's state, and the progress of the sidecar's first read of
// the log backlog.

const $ = (id) => document.getElementById(id);

/** "connecting" | "live" | "polling" | "offline" */
export function showConnection(state) {
  const el = $("conn");
  el.dataset.state = state;
  el.querySelector("span").textContent = state;
}

/** The `loading` part of a `runs` message: the bar shows until the backlog is read. */
export function showProgress(p) {
  const el = $("progress");
  const total = p.total_bytes || 0, done = p.done || (total && p.bytes >= total);
  el.hidden = !!done || !total;
  if (!el.hidden) {
    const f = Math.min(1, (p.bytes || 0) / total);
    el.querySelector("div").style.width = `${(f * 100).toFixed(1)}%`;
    el.querySelector("span").textContent = `loading ${(f * 100).toFixed(0)}%`;
  }
}
