// The page's tabs: the scalar charts, and the panels (histograms, vectors, text, runs table), each
// built afresh for the selected runs when its tab is shown.

import { showHistograms, showVectors, showTexts, showConfig } from "./panels.js";
import { h, visible } from "./dom.js";

const $ = (id) => document.getElementById(id);

/**
 * Show `tab` and hide the others. The scalars tab is the caller's to draw (onScalars()); a panel is
 * filled from runs (the selected ids), infos (id -> run object) and runData (id -> RunData).
 */
export function showTab(tab, { runs, infos, runData, onScalars }) {
  for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${tab}`;
  $("controls").hidden = tab !== "scalars";
  const el = $(`tab-${tab}`);
  const fail = (e) => { el.replaceChildren(h("p", { class: "empty" }, `Could not load: ${visible(e.message || e)}`)); };
  if (tab === "scalars") onScalars();
  else if (tab === "histograms") showHistograms(el, runs, infos).catch(fail);
  else if (tab === "vectors") showVectors(el, runs, infos).catch(fail);
  else if (tab === "text") showTexts(el, runs, infos).catch(fail);
  else if (tab === "config") showConfig(el, runs, runData).catch(fail);
}

/** Calls onPick(tab) when a tab button is clicked. */
export function bindTabs(onPick) {
  $("tabs").addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) onPick(b.dataset.tab); });
}
