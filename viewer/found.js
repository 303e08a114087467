// What the page says while it has no run to show: that it is still looking (the sidecar's first read
// of the log folder is under way), or what it found there: files it could not read as logs (how
// many, a few of their names), which formats it reads, and how to name the reader of the others.
// File names are log content: they are shown as text (dom.js), never as markup.

import { h, label } from "./dom.js";

/** The readers a file can be given with --include GLOB=READER (sidecar/readers), and what they read. */
export const READERS = [
  ["jsonl", "JSON lines"],
  ["tfevents", "TensorBoard event files"],
  ["csv", "CSV"],
  ["jsondoc", "JSON documents such as trainer_state.json"],
  ["text", "text logs"],
];
const EXAMPLES = 8;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const series = (words, last) => `${words.slice(0, -1).join(", ")} ${last} ${words[words.length - 1]}`;

/** "2 jsonl, 1 tfevents" from {"jsonl": 2, "tfevents": 1}. */
export function formatCounts(formats) {
  return Object.entries(formats || {}).filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, n]) => `${n} ${name}`).join(", ");
}

/** A glob for the files like `path` (by its suffix) to put in the hint; a generic one when the suffix
 *  is not plain letters and digits (the hint is for pasting into a shell). */
export function globFor(path) {
  const m = /\.([A-Za-z0-9_-]{1,12})$/.exec(String(path));
  return m && !String(path).split("/").pop().startsWith(".") ? `*.${m[1]}` : "*.EXT";
}

/**
 * What the page says, from the `loading` part of the latest runs message (null before the first)
 * and how many runs there are: {title, examples (file names), more (files not listed), notes, hint}.
 * The same input gives an equal result, so the page rebuilds its text only when it changes.
 */
export function describeFound(loading, runs) {
  if (runs > 0) return { title: "Select runs on the left to compare them." };
  if (!loading) return { title: "Waiting for runs…" };
  const files = loading.files || {};
  const formats = formatCounts(files.formats);
  const logs = Object.values(files.formats || {}).reduce((a, n) => a + (n > 0 ? n : 0), 0);
  const unknown = Number.isInteger(files.unrecognised) && files.unrecognised > 0 ? files.unrecognised : 0;
  const examples = (Array.isArray(files.examples) ? files.examples : []).slice(0, EXAMPLES).map(String);
  const reads = `tailboard reads ${series(READERS.map(([, what]) => what), "and")}.`;
  if (!loading.done) {
    return { title: "Looking for runs in the log folder…", notes: logs ? [`Found so far: ${plural(logs, "log file")} (${formats}).`] : [] };
  }
  const found = logs ? `${plural(logs, "log file")} (${formats}) with no records in them yet` : "";
  if (unknown) {
    return {
      title: `No runs: ${plural(unknown, "file")} found that ${unknown === 1 ? "is" : "are"} not recognised as a log${found ? `, and ${found}` : ""}.`,
      examples,
      more: Math.max(0, unknown - examples.length),
      notes: [reads],
      hint: { before: "If they are logs, name their reader: ",
        command: `tailboard serve LOGDIR --include '${globFor(examples[0] || "")}=READER'`,
        after: ` with READER one of ${series(READERS.map(([name]) => name), "or")}.` },
    };
  }
  if (logs) return { title: `No runs yet: ${found}.`, notes: [reads] };
  return { title: "No runs: nothing under the log folder looks like a log yet.",
    notes: ["Runs appear here as soon as a training job writes its logs there.", reads] };
}

/** Put what describeFound() says in `el`. */
export function showFound(el, found) {
  const parts = [h("p", { class: "found-title" }, found.title)];
  if (found.examples && found.examples.length) {
    parts.push(h("ul", { class: "found-files" },
      found.examples.map((path) => h("li", null, h("code", null, label(path)))),
      found.more ? h("li", { class: "more" }, `… and ${found.more} more`) : null));
  }
  for (const note of found.notes || []) parts.push(h("p", null, note));
  if (found.hint) {
    parts.push(h("p", { class: "found-hint" }, found.hint.before, h("code", null, found.hint.command), found.hint.after));
  }
  el.replaceChildren(...parts);
}
