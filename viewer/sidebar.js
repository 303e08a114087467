// The run list's width: the edge between the sidebar and the charts is dragged (or moved with the
// arrow keys when focused; a double click puts it back). The width is this browser's, kept in
// localStorage beside the token: a screen's preference, not part of a shared view.

const KEY = "tailboard.sideWidth";
const MIN = 180;
const MAX_FRACTION = 0.7; // of the window's width
const KEY_STEP = 16;

function load() {
  try {
    return Number(localStorage.getItem(KEY)) || 0;
  } catch {
    return 0; // storage blocked: the width lasts for this page
  }
}

function store(width) {
  try {
    if (width) localStorage.setItem(KEY, String(width)); else localStorage.removeItem(KEY);
  } catch {
    // storage blocked or full
  }
}

/** Make `handle` resize `side`; onResize() after each change (the charts' widths changed). */
export function resizableSidebar(side, handle, onResize = () => {}) {
  const clamp = (w) => Math.round(Math.min(Math.max(MIN, w), Math.max(MIN, window.innerWidth * MAX_FRACTION)));
  const set = (w, keep = true) => {
    side.style.width = w ? `${clamp(w)}px` : "";
    if (keep) store(w ? clamp(w) : 0);
    handle.setAttribute("aria-valuenow", String(Math.round(side.getBoundingClientRect().width)));
    onResize();
  };
  const saved = load();
  if (saved) set(saved, false);
  handle.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    handle.setPointerCapture(e.pointerId);
    const x0 = e.clientX, w0 = side.getBoundingClientRect().width;
    handle.classList.add("dragging");
    const move = (ev) => { side.style.width = `${clamp(w0 + ev.clientX - x0)}px`; };
    const up = (ev) => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      handle.classList.remove("dragging");
      set(w0 + ev.clientX - x0);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  });
  handle.addEventListener("keydown", (e) => {
    const d = e.key === "ArrowLeft" ? -KEY_STEP : e.key === "ArrowRight" ? KEY_STEP : 0;
    if (!d) return;
    e.preventDefault();
    set(side.getBoundingClientRect().width + d);
  });
  handle.addEventListener("dblclick", () => set(0));
}
