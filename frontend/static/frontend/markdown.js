// A small, safe markdown renderer for conversation messages and responses.
//
// Safety: it never parses HTML. Every piece of the source reaches the page
// through document.createTextNode, so "<script>" or "<img onerror=...>" in the
// data is displayed as those characters and nothing runs. The only elements it
// creates are a fixed list (p, pre, code, strong, em, ul, ol, li, blockquote,
// h3-h6, mark) and it sets no attribute taken from the data.
//
// Offsets: each text node it creates is a verbatim slice of the raw source, and
// `offsets` remembers where that slice starts (in UTF-16 units). A selection in
// the rendered view maps back to the raw text exactly, whatever markdown syntax
// was hidden; `codePointIndex` turns that into the Unicode code points the
// server counts in.

const FENCE = /^ {0,3}(```|~~~)/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+/;
const LIST_ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+/;
const QUOTE = /^ {0,3}>[ \t]?/;
const INLINE = /`([^`\n]+)`|\*\*(?=\S)([^\n]*?\S)\*\*|(?<![\w*])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![\w*])|(?<![\w_])_(?=[^\s_])([^_\n]*?[^\s_])_(?![\w_])/g;

function splitLines(raw) {
  const lines = [];
  let start = 0;
  for (;;) {
    const nl = raw.indexOf("\n", start);
    const end = nl === -1 ? raw.length : nl;
    lines.push({ start, end, text: raw.slice(start, end) });
    if (nl === -1) return lines;
    start = nl + 1;
  }
}

class Renderer {
  constructor(raw, marks) {
    this.raw = raw;
    this.marks = (marks || []).slice().sort((a, b) => a.start - b.start);
    this.offsets = new WeakMap();
    this.textNodes = [];
  }

  // Emit raw[start:end) as text, split where correction highlights begin and end.
  text(parent, start, end) {
    if (end <= start) return;
    let cursor = start;
    for (const mark of this.marks) {
      if (mark.end <= cursor || mark.start >= end) continue;
      if (mark.start > cursor) this.plain(parent, cursor, mark.start);
      const el = document.createElement("mark");
      el.className = "correction-mark";
      el.dataset.correction = String(mark.id);
      const to = Math.min(mark.end, end);
      this.plain(el, Math.max(mark.start, cursor), to);
      parent.appendChild(el);
      cursor = to;
    }
    if (cursor < end) this.plain(parent, cursor, end);
  }

  plain(parent, start, end) {
    const node = document.createTextNode(this.raw.slice(start, end));
    this.offsets.set(node, start);
    this.textNodes.push(node);
    parent.appendChild(node);
  }

  inline(parent, start, end) {
    const source = this.raw.slice(start, end);
    // A fresh regex per call: the recursion for nested emphasis must not move the caller's lastIndex.
    const pattern = new RegExp(INLINE.source, "g");
    let cursor = 0;
    let match;
    while ((match = pattern.exec(source)) !== null) {
      if (match.index > cursor) this.text(parent, start + cursor, start + match.index);
      const [whole, code, bold, star, underscore] = match;
      const innerStart = start + match.index + (code !== undefined ? 1 : bold !== undefined ? 2 : 1);
      const inner = code ?? bold ?? star ?? underscore;
      const el = document.createElement(code !== undefined ? "code" : bold !== undefined ? "strong" : "em");
      if (code !== undefined) this.text(el, innerStart, innerStart + inner.length);
      else this.inline(el, innerStart, innerStart + inner.length);
      parent.appendChild(el);
      cursor = match.index + whole.length;
    }
    if (cursor < source.length) this.text(parent, start + cursor, end);
  }

  block(tag, parent) {
    const el = document.createElement(tag);
    el.setAttribute("dir", "auto");
    parent.appendChild(el);
    return el;
  }

  render(parent) {
    const lines = splitLines(this.raw);
    let i = 0;
    const isBlank = (line) => line.text.trim() === "";
    const startsBlock = (line) =>
      FENCE.test(line.text) || HEADING.test(line.text) || LIST_ITEM.test(line.text) || QUOTE.test(line.text);
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        i += 1;
        continue;
      }
      const fence = FENCE.exec(line.text);
      if (fence) {
        const marker = fence[1];
        let j = i + 1;
        while (j < lines.length && !lines[j].text.trimStart().startsWith(marker)) j += 1;
        const pre = this.block("pre", parent);
        pre.setAttribute("dir", "ltr");
        const code = document.createElement("code");
        pre.appendChild(code);
        const contentStart = i + 1 < lines.length ? lines[i + 1].start : line.end;
        const contentEnd = j > i + 1 ? lines[j - 1].end : contentStart;
        this.text(code, contentStart, contentEnd);
        i = j + 1;
        continue;
      }
      const heading = HEADING.exec(line.text);
      if (heading) {
        const level = Math.min(6, heading[1].length + 2);
        const el = this.block(`h${level}`, parent);
        el.className = "md-heading";
        this.inline(el, line.start + heading[0].length, line.end);
        i += 1;
        continue;
      }
      if (LIST_ITEM.test(line.text)) {
        const ordered = /\d/.test(LIST_ITEM.exec(line.text)[2]);
        const list = this.block(ordered ? "ol" : "ul", parent);
        while (i < lines.length && LIST_ITEM.test(lines[i].text)) {
          const item = LIST_ITEM.exec(lines[i].text);
          if (/\d/.test(item[2]) !== ordered) break;
          const li = document.createElement("li");
          li.setAttribute("dir", "auto");
          if (item[1].length >= 2) li.className = "md-nested";
          this.inline(li, lines[i].start + item[0].length, lines[i].end);
          list.appendChild(li);
          i += 1;
        }
        continue;
      }
      if (QUOTE.test(line.text)) {
        const quote = this.block("blockquote", parent);
        while (i < lines.length && QUOTE.test(lines[i].text)) {
          const prefix = QUOTE.exec(lines[i].text)[0].length;
          const p = this.block("p", quote);
          this.inline(p, lines[i].start + prefix, lines[i].end);
          i += 1;
        }
        continue;
      }
      // A paragraph: consecutive lines, rendered with white-space: pre-wrap so the
      // newlines inside it stay real characters of the raw text.
      let j = i;
      while (j + 1 < lines.length && !isBlank(lines[j + 1]) && !startsBlock(lines[j + 1])) j += 1;
      const p = this.block("p", parent);
      this.inline(p, line.start, lines[j].end);
      i = j + 1;
    }
  }
}

/**
 * Render `raw` into `container` (emptied first). `marks` are highlights as
 * {start, end, id} in UTF-16 offsets of `raw`. Returns a mapper for selections.
 */
export function renderMarkdown(container, raw, { marks = [] } = {}) {
  const renderer = new Renderer(String(raw ?? ""), marks);
  container.replaceChildren();
  renderer.render(container);
  return {
    raw: renderer.raw,
    textNodes: renderer.textNodes,
    offsets: renderer.offsets,
    /** The raw UTF-16 offset of a DOM point inside the container, or null outside it. */
    rawOffset(node, offset) {
      if (!container.contains(node)) return null;
      if (node.nodeType === Node.TEXT_NODE && renderer.offsets.has(node)) {
        return renderer.offsets.get(node) + offset;
      }
      const point = document.createRange();
      point.setStart(node, offset);
      let last = 0;
      for (const text of renderer.textNodes) {
        if (!text.isConnected) continue;
        if (point.comparePoint(text, 0) >= 0) return renderer.offsets.get(text);
        last = renderer.offsets.get(text) + text.length;
      }
      return last;
    },
  };
}

/** Count Unicode code points in raw[0:utf16Index), the unit the server stores offsets in. */
export function codePointIndex(raw, utf16Index) {
  let count = 0;
  for (let i = 0; i < utf16Index && i < raw.length; i += 1) {
    const unit = raw.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < raw.length) {
      const next = raw.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i += 1;
    }
    count += 1;
  }
  return count;
}

/** The UTF-16 index of the code point number `cpIndex` in raw. */
export function utf16Index(raw, cpIndex) {
  let i = 0;
  for (let n = 0; n < cpIndex && i < raw.length; n += 1) {
    const unit = raw.charCodeAt(i);
    i += unit >= 0xd800 && unit <= 0xdbff && i + 1 < raw.length ? 2 : 1;
  }
  return i;
}

/** Move a UTF-16 index off the middle of a surrogate pair (towards `direction`: -1 or +1). */
export function snapToCodePoint(raw, index, direction) {
  if (index <= 0 || index >= raw.length) return Math.max(0, Math.min(raw.length, index));
  const unit = raw.charCodeAt(index);
  const before = raw.charCodeAt(index - 1);
  if (unit >= 0xdc00 && unit <= 0xdfff && before >= 0xd800 && before <= 0xdbff) return index + direction < index ? index - 1 : index + 1;
  return index;
}
