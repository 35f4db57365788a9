// Server-rendered pages show item text through the same renderer as the labeling
// page: each element made by the `markdown_source` template tag carries its raw
// text (and any correction highlights) as JSON, and is rendered here.

import { renderMarkdown, utf16Index } from "./markdown.js";

for (const el of document.querySelectorAll("[data-markdown]")) {
  const raw = JSON.parse(el.dataset.markdown);
  // The server counts in code points; the renderer in UTF-16 units.
  const marks = JSON.parse(el.dataset.marks || "[]").map(([start, end, number]) => ({
    start: utf16Index(raw, start),
    end: utf16Index(raw, end),
    id: number,
  }));
  renderMarkdown(el, raw, { marks });
  el.classList.remove("raw-text");
  // A highlight can come in several pieces (one per paragraph or list item); the
  // correction's number goes after its last piece.
  const last = new Map();
  for (const piece of el.querySelectorAll("mark[data-correction]")) last.set(piece.dataset.correction, piece);
  for (const [number, piece] of last) {
    for (const each of el.querySelectorAll(`mark[data-correction="${number}"]`)) each.title = `Correction ${number}`;
    const sup = document.createElement("sup");
    sup.textContent = number;
    piece.append(sup);
  }
}
