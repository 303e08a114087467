// Panels besides the scalar charts: histograms and vectors (distributions.js) and text, shown as
// Markdown (markdown.js). (The runs table is hptable.js's.)

import { getJSON } from "./api.js";
import { h, label, visible } from "./dom.js";
import { render as markdown, renderable } from "./markdown.js";

const empty = (el, text) => el.replaceChildren(h("p", { class: "empty" }, text));

// Histograms and vectors of several runs side by side: distributions.js.
export { showHistograms, showVectors } from "./distributions.js";

let textsAsMarkdown = true; // as TensorBoard shows text summaries; the box shows them raw

export async function showTexts(el, runs, infos) {
  el.replaceChildren();
  const entries = [];
  const body = (text) => (textsAsMarkdown && renderable(text)
    ? h("div", { class: "md" }, markdown(text))
    : h("pre", null, visible(text, { multiline: true })));
  for (const run of runs.filter((r) => (infos.get(r)?.texts || []).length)) {
    const t = await getJSON("/api/texts", { run });
    for (let i = t.steps.length - 1; i >= 0 && entries.length < 500; i--) {
      entries.push(h("div", { class: "entry" },
        h("b", null, label(run)), " · ", label(t.names[i]), ` · step ${t.steps[i]}`, body(t.texts[i])));
    }
  }
  const toggle = h("label", { class: "texts-mode" },
    h("input", { type: "checkbox", checked: textsAsMarkdown,
      onchange: (e) => { textsAsMarkdown = e.target.checked; showTexts(el, runs, infos); } }), " Markdown");
  if (entries.length) el.replaceChildren(toggle, h("div", { class: "texts" }, entries));
  else empty(el, "No text in the selected runs.");
}
