// The page's tabs: the scalar charts, the panels (histograms, vectors, text, images), each built afresh for
// the selected runs when its tab is shown, the runs table, and the GPUs seen (gpupanel.js).

import { showHistograms, showVectors, showTexts } from "./panels.js";
import { showImages } from "./images.js";
import { showGpus } from "./gpupanel.js";
import { h, visible } from "./dom.js";

const $ = (id) => document.getElementById(id);

/**
 * Show `tab` and hide the others. The scalars tab and the runs table are the caller's to draw
 * (onScalars(), onTable()); a panel is filled from runs (the selected ids) and infos (id -> run
 * object).
 */
export function showTab(tab, { runs, infos, onScalars, onTable }) {
  for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${tab}`;
  $("controls").hidden = tab !== "scalars";
  const el = $(`tab-${tab}`);
  const fail = (e) => { el.replaceChildren(h("p", { class: "empty" }, `Could not load: ${visible(e.message || e)}`)); };
  if (tab === "scalars") onScalars();
  else if (tab === "histograms") showHistograms(el, runs, infos).catch(fail);
  else if (tab === "vectors") showVectors(el, runs, infos).catch(fail);
  else if (tab === "text") showTexts(el, runs, infos).catch(fail);
  else if (tab === "images") showImages(el, runs, infos).catch(fail);
  else if (tab === "config") onTable();
  else if (tab === "gpus") showGpus(el, infos);
}

/** Calls onPick(tab) when a tab button is clicked. */
export function bindTabs(onPick) {
  $("tabs").addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) onPick(b.dataset.tab); });
}
