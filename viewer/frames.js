// One animation-frame loop for every chart: dirty charts are drawn in the order they asked, within a
// time budget per frame; what does not fit waits for the next frame, so a frame stays short however
// many charts changed. Charts scrolled out of view are not drawn until they come back.
//
// A drawable is any object with draw(), and the fields this loop keeps on it: `visible` (in or near
// the viewport), `stale` (a draw was skipped while it was out of view) and `cost` (running average
// of its draw's duration in ms).

const FRAME_BUDGET_MS = 8;
const dirty = new Set();
let frameRequested = 0;

/** Draw `drawable` in a coming animation frame; many calls before it cost one draw. */
export function requestDraw(drawable) {
  dirty.add(drawable);
  if (!frameRequested) frameRequested = requestAnimationFrame(drawDirty);
}

/** Forget a pending draw (the drawable is going away). */
export function cancelDraw(drawable) {
  dirty.delete(drawable);
}

function drawDirty() {
  frameRequested = 0;
  const start = performance.now();
  for (const d of dirty) {
    // A drawable is started only if its usual cost still fits (at least one per frame).
    const spent = performance.now() - start;
    if (spent > 0 && d.visible && spent + d.cost > FRAME_BUDGET_MS) break;
    dirty.delete(d);
    if (!d.visible) { d.stale = true; continue; }
    const t0 = performance.now();
    d.draw();
    const took = performance.now() - t0;
    d.cost = d.cost ? 0.8 * d.cost + 0.2 * took : took;
  }
  if (dirty.size) frameRequested = requestAnimationFrame(drawDirty);
}

const watched = new WeakMap(); // element -> drawable
const observer = typeof IntersectionObserver === "undefined" ? null : new IntersectionObserver((entries) => {
  for (const e of entries) {
    const d = watched.get(e.target);
    if (!d) continue;
    d.visible = e.isIntersecting;
    if (d.visible && d.stale) { d.stale = false; requestDraw(d); }
  }
}, { rootMargin: "200px" });

/** Keep `drawable.visible` in step with whether `el` is in (or within 200 px of) the viewport. */
export function watchVisibility(drawable, el) {
  watched.set(el, drawable);
  if (observer) observer.observe(el);
}

export function unwatchVisibility(el) {
  watched.delete(el);
  if (observer) observer.unobserve(el);
}
