// The one Markdown renderer for item data: conversation messages and responses,
// on the labeling page (cards, ranking rows, the correction form) and on the
// curator's item page. Project instructions, written by the project's admins, are
// rendered on the server (templatetags/ballot_markdown.py); nothing from an item
// goes through that path.
//
// Safety: it never parses HTML. Every piece of the source reaches the page
// through document.createTextNode, so "<script>" or "<img onerror=...>" in the
// data is displayed as those characters and nothing runs. The only elements it
// creates are a fixed list (p, pre, code, strong, em, a, ul, ol, li, blockquote,
// h3-h6, hr, mark). The only attributes taken from the data are a link's href,
// and only when it parses as an absolute http, https or mailto URL (anything else
// is shown as the literal Markdown), and an ordered list's start number.
//
// Offsets: each text node it creates is a verbatim slice of the raw source, and
// `offsets` remembers where that slice starts (in UTF-16 units). Markdown syntax
// (backticks, asterisks, a link's brackets and URL, list markers, "> " prefixes)
// is simply never emitted, so a selection in the rendered view maps back to the
// raw text exactly; `snap` widens a span that cuts through an inline construct to
// the whole construct, so a stored span is always well-formed Markdown.
// `codePointIndex` turns UTF-16 offsets into the Unicode code points the server
// counts in.

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+|$)/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const LIST_ITEM = /^([ \t]*)(?:([-*+])|(\d{1,9})[.)])(?:([ \t]+)|$)/;
const QUOTE = /^ {0,3}>[ \t]?/;
const ESCAPABLE = /[!-/:-@[-`{-~]/;
const STRONG = [/\*\*(?=\S)([^]*?\S)\*\*/y, /(?<![\p{L}\p{N}_])__(?=\S)([^]*?\S)__(?![\p{L}\p{N}_])/uy];
const EMPHASIS = [/(?<!\*)\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)/y, /(?<![\p{L}\p{N}_])_(?=[^\s_])([^_]*?[^\s_])_(?![\p{L}\p{N}_])/uy];
const LINK = /\[([^[\]\n]+)\]\(([^\s()<>]+(?:\([^\s()<>]*\)[^\s()<>]*)*)\)/y;
const AUTOLINK = /<((?:https?:\/\/|mailto:)[^\s<>]+)>/y;
const BARE_URL = /(?<![\p{L}\p{N}/])https?:\/\/[^\s<>]+/uy;

function safeHref(url) {
  try {
    const parsed = new URL(url);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Columns of leading whitespace (a tab counts to the next multiple of 4). */
function indentOf(text) {
  let columns = 0;
  for (const ch of text) {
    if (ch === " ") columns += 1;
    else if (ch === "\t") columns += 4 - (columns % 4);
    else break;
  }
  return columns;
}

/** The index in `text` after `columns` columns of leading whitespace (or after all of it). */
function skipColumns(text, columns) {
  let seen = 0;
  let i = 0;
  while (i < text.length && seen < columns && (text[i] === " " || text[i] === "\t")) {
    seen += text[i] === "\t" ? 4 - (seen % 4) : 1;
    i += 1;
  }
  return i;
}

// A line of a container: `lineStart` is where the physical line begins, `start`
// where this container's content begins (after "> " or a list item's indent).
function makeLine(raw, lineStart, start, end) {
  return { lineStart, start, end, text: raw.slice(start, end) };
}

function splitLines(raw) {
  const lines = [];
  let start = 0;
  for (;;) {
    const nl = raw.indexOf("\n", start);
    let end = nl === -1 ? raw.length : nl;
    // A Windows line ending's "\r" is hidden like any other syntax.
    if (end > start && raw[end - 1] === "\r") end -= 1;
    lines.push(makeLine(raw, start, start, end));
    if (nl === -1) return lines;
    start = nl + 1;
  }
}

const isBlank = (line) => line.text.trim() === "";

function listItem(line) {
  const match = LIST_ITEM.exec(line.text);
  if (!match) return null;
  const [whole, leading, bullet, number, spacing] = match;
  const indent = indentOf(leading);
  const markerColumn = indent + (bullet ? 1 : number.length + 1);
  let gap = 1;
  if (spacing) {
    gap = 0;
    for (const ch of spacing) gap += ch === "\t" ? 4 - ((markerColumn + gap) % 4) : 1;
  }
  // More than four columns after the marker: the content is indented code, and
  // only one space belongs to the marker.
  const wide = gap > 4;
  const markerEnd = leading.length + (bullet ? 1 : number.length + 1);
  return {
    indent,
    ordered: number !== undefined,
    number: number !== undefined ? Number(number) : null,
    contentIndent: markerColumn + (wide ? 1 : gap),
    contentStart: line.start + (spacing === undefined ? whole.length : wide ? markerEnd + 1 : whole.length),
  };
}

const startsBlock = (line) =>
  FENCE.test(line.text) || HEADING.test(line.text) || RULE.test(line.text) || QUOTE.test(line.text) || Boolean(listItem(line));

// Only a list that starts at 1 (or a bullet list) interrupts a paragraph, so a
// wrapped line such as "2019. was a good year" stays part of its paragraph.
function interruptsParagraph(line) {
  const item = listItem(line);
  if (item) return !item.ordered || item.number === 1;
  return startsBlock(line);
}

class Renderer {
  constructor(raw, marks) {
    this.raw = raw;
    this.marks = (marks || []).filter((m) => m.end > m.start).sort((a, b) => a.start - b.start);
    this.offsets = new WeakMap();
    this.textNodes = [];
    this.constructs = [];
  }

  // --- text and highlights ---

  plain(parent, start, end) {
    if (end <= start) return;
    const node = document.createTextNode(this.raw.slice(start, end));
    this.offsets.set(node, start);
    this.textNodes.push(node);
    parent.appendChild(node);
  }

  /** The <mark> for `mark` to append into inside `parent`: the last one if it is still open there. */
  markHost(parent, mark) {
    const last = parent.lastChild;
    if (last && last.nodeName === "MARK" && last.dataset.correction === String(mark.id)) return last;
    const el = document.createElement("mark");
    el.className = "correction-mark";
    el.dataset.correction = String(mark.id);
    parent.appendChild(el);
    return el;
  }

  markCovering(start, end) {
    return this.marks.find((m) => m.start <= start && end <= m.end) || null;
  }

  // Emit raw[start:end) as text, inside highlights where they apply. `covered`: an
  // ancestor already sits inside a highlight, so no nested one is made.
  text(parent, start, end, covered) {
    if (end <= start) return;
    if (covered) {
      this.plain(parent, start, end);
      return;
    }
    let cursor = start;
    for (const mark of this.marks) {
      if (mark.end <= cursor || mark.start >= end) continue;
      if (mark.start > cursor) this.plain(parent, cursor, mark.start);
      const to = Math.min(mark.end, end);
      this.plain(this.markHost(parent, mark), Math.max(mark.start, cursor), to);
      cursor = to;
    }
    if (cursor < end) this.plain(parent, cursor, end);
  }

  // Prose text: the hidden ranges (container prefixes, indentation of continuation
  // lines) are left out, everything else is emitted verbatim.
  prose(parent, start, end, hidden, covered) {
    let cursor = start;
    for (const [from, to] of hidden) {
      if (to <= cursor || from >= end) continue;
      this.text(parent, cursor, Math.max(cursor, from), covered);
      cursor = Math.max(cursor, to);
    }
    this.text(parent, cursor, end, covered);
  }

  // --- inline syntax ---

  /** Code spans, escapes, links and emphasis in raw[start:end), as tokens in source order. */
  tokens(start, end, allowLinks = true) {
    const raw = this.raw;
    const out = [];
    let textStart = start;
    let i = start;
    const push = (token) => {
      if (token.start > textStart) out.push({ kind: "text", start: textStart, end: token.start });
      out.push(token);
      textStart = token.end;
      i = token.end;
    };
    const sticky = (pattern) => {
      pattern.lastIndex = i;
      const match = pattern.exec(raw);
      return match && match.index === i && i + match[0].length <= end ? match : null;
    };
    while (i < end) {
      const ch = raw[i];
      if (ch === "\\" && i + 1 < end && ESCAPABLE.test(raw[i + 1])) {
        push({ kind: "escape", start: i, end: i + 2, innerStart: i + 1, innerEnd: i + 2 });
        continue;
      }
      if (ch === "`") {
        let run = 1;
        while (raw[i + run] === "`") run += 1;
        const close = this.closingBackticks(i + run, end, run);
        if (close === -1) {
          i += run;
          continue;
        }
        let innerStart = i + run;
        let innerEnd = close;
        const inner = raw.slice(innerStart, innerEnd);
        if (inner.length > 2 && inner.startsWith(" ") && inner.endsWith(" ") && inner.trim() !== "") {
          innerStart += 1;
          innerEnd -= 1;
        }
        push({ kind: "code", start: i, end: close + run, innerStart, innerEnd });
        continue;
      }
      if (allowLinks && ch === "<") {
        const match = sticky(AUTOLINK);
        const href = match && safeHref(match[1]);
        if (href) {
          push({ kind: "link", start: i, end: i + match[0].length, innerStart: i + 1, innerEnd: i + 1 + match[1].length, href });
          continue;
        }
      }
      if (allowLinks && ch === "[") {
        const match = sticky(LINK);
        const href = match && safeHref(match[2]);
        if (href) {
          push({ kind: "link", start: i, end: i + match[0].length, innerStart: i + 1, innerEnd: i + 1 + match[1].length, href });
          continue;
        }
      }
      if (allowLinks && ch === "h") {
        const match = sticky(BARE_URL);
        if (match) {
          let url = match[0];
          // Trailing punctuation ends the sentence, not the URL; a ")" only if unbalanced.
          for (;;) {
            const last = url[url.length - 1];
            if (".,:;!?'\"*_".includes(last)) url = url.slice(0, -1);
            else if (last === ")" && url.split("(").length < url.split(")").length) url = url.slice(0, -1);
            else break;
          }
          const href = safeHref(url);
          if (href) {
            push({ kind: "link", start: i, end: i + url.length, innerStart: i, innerEnd: i + url.length, href });
            continue;
          }
        }
      }
      if (ch === "*" || ch === "_") {
        let token = null;
        for (const [patterns, kind, width] of [
          [STRONG, "strong", 2],
          [EMPHASIS, "em", 1],
        ]) {
          for (const pattern of patterns) {
            const match = sticky(pattern);
            if (match && !token) token = { kind, start: i, end: i + match[0].length, innerStart: i + width, innerEnd: i + match[0].length - width };
          }
          if (token) break;
        }
        if (token) {
          push(token);
          continue;
        }
        while (raw[i] === ch && i < end) i += 1;
        continue;
      }
      i += 1;
    }
    if (end > textStart) out.push({ kind: "text", start: textStart, end });
    return out;
  }

  closingBackticks(from, end, run) {
    let i = from;
    while (i < end) {
      if (this.raw[i] !== "`") {
        i += 1;
        continue;
      }
      let length = 0;
      while (this.raw[i + length] === "`") length += 1;
      if (length === run && i + length <= end) return i;
      i += length;
    }
    return -1;
  }

  inline(parent, start, end, hidden = [], covered = false, allowLinks = true) {
    for (const token of this.tokens(start, end, allowLinks)) {
      if (token.kind === "text") {
        this.prose(parent, token.start, token.end, hidden, covered);
        continue;
      }
      this.constructs.push(token);
      const mark = covered ? null : this.markCovering(token.start, token.end);
      const host = mark ? this.markHost(parent, mark) : parent;
      const inside = covered || Boolean(mark);
      if (token.kind === "escape") {
        this.text(host, token.innerStart, token.innerEnd, inside);
        continue;
      }
      const el = document.createElement(token.kind === "link" ? "a" : token.kind);
      if (token.kind === "link") {
        el.href = token.href;
        el.target = "_blank";
        el.rel = "noopener noreferrer nofollow";
      }
      host.appendChild(el);
      if (token.kind === "code") this.prose(el, token.innerStart, token.innerEnd, hidden, inside);
      else this.inline(el, token.innerStart, token.innerEnd, hidden, inside, allowLinks && token.kind !== "link");
    }
  }

  // --- blocks ---

  block(tag, parent) {
    const el = document.createElement(tag);
    el.setAttribute("dir", "auto");
    parent.appendChild(el);
    return el;
  }

  // A paragraph over lines[from..to]: one inline run, the line breaks kept (the page
  // shows them with white-space: pre-wrap), each continuation line's prefix hidden.
  paragraph(parent, lines, from, to) {
    const first = lines[from];
    const start = first.start + (first.text.length - first.text.trimStart().length);
    const hidden = [];
    for (let k = from; k <= to; k += 1) {
      const line = lines[k];
      if (k > from) hidden.push([line.lineStart, line.start + (line.text.length - line.text.trimStart().length)]);
      if (k < to && this.raw[line.end] === "\r") hidden.push([line.end, line.end + 1]);
    }
    const p = this.block("p", parent);
    this.inline(p, start, lines[to].end, hidden);
  }

  render(parent, lines) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        i += 1;
        continue;
      }
      const fence = FENCE.exec(line.text);
      if (fence) {
        i = this.fenced(parent, lines, i, fence);
        continue;
      }
      const heading = HEADING.exec(line.text);
      if (heading) {
        const el = this.block(`h${Math.min(6, heading[1].length + 2)}`, parent);
        el.className = "md-heading";
        const content = line.text.slice(heading[0].length).replace(/[ \t]+#+[ \t]*$/, "");
        this.inline(el, line.start + heading[0].length, line.start + heading[0].length + content.length);
        i += 1;
        continue;
      }
      if (RULE.test(line.text)) {
        parent.appendChild(document.createElement("hr"));
        i += 1;
        continue;
      }
      if (listItem(line)) {
        i = this.list(parent, lines, i);
        continue;
      }
      if (QUOTE.test(line.text)) {
        const inner = [];
        while (i < lines.length && QUOTE.test(lines[i].text)) {
          const prefix = QUOTE.exec(lines[i].text)[0].length;
          inner.push(makeLine(this.raw, lines[i].lineStart, lines[i].start + prefix, lines[i].end));
          i += 1;
        }
        this.render(this.block("blockquote", parent), inner);
        continue;
      }
      let j = i;
      while (j + 1 < lines.length && !isBlank(lines[j + 1]) && !interruptsParagraph(lines[j + 1])) j += 1;
      this.paragraph(parent, lines, i, j);
      i = j + 1;
    }
  }

  fenced(parent, lines, i, fence) {
    const marker = fence[1];
    const opening = lines[i];
    const indent = indentOf(opening.text);
    let j = i + 1;
    const closes = (line) => {
      const close = FENCE.exec(line.text);
      return close && close[1][0] === marker[0] && close[1].length >= marker.length && line.text.trim() === close[1];
    };
    while (j < lines.length && !closes(lines[j])) j += 1;
    const pre = this.block("pre", parent);
    pre.setAttribute("dir", "ltr");
    const code = document.createElement("code");
    pre.appendChild(code);
    for (let k = i + 1; k < j; k += 1) {
      const line = lines[k];
      // Content lines lose as much indentation as the opening fence had.
      this.text(code, line.start + skipColumns(line.text, indent), line.end, false);
      if (k + 1 < j) this.text(code, lines[k + 1].lineStart - 1, lines[k + 1].lineStart, false);
    }
    return j + 1;
  }

  // A list, its items' own blocks nested inside them. Items separated by blank lines
  // (a "loose" list) stay one list, and an ordered list keeps its first number.
  list(parent, lines, i) {
    const first = listItem(lines[i]);
    const list = this.block(first.ordered ? "ol" : "ul", parent);
    if (first.ordered && first.number !== 1) list.setAttribute("start", String(first.number));
    for (;;) {
      const item = listItem(lines[i]);
      const head = lines[i];
      const content = [makeLine(this.raw, head.lineStart, Math.min(item.contentStart, head.end), head.end)];
      let k = i + 1;
      let afterBlank = false;
      while (k < lines.length) {
        const line = lines[k];
        if (isBlank(line)) {
          afterBlank = true;
          content.push(makeLine(this.raw, line.lineStart, line.end, line.end));
          k += 1;
          continue;
        }
        const indent = indentOf(line.text);
        const nested = listItem(line);
        const inside = indent >= item.contentIndent || (nested && indent >= item.indent + 2);
        const lazy = !afterBlank && !startsBlock(line) && !this.endsInFence(content);
        if (!inside && !lazy) break;
        const skip = inside ? Math.min(indent, item.contentIndent) : indent;
        content.push(makeLine(this.raw, line.lineStart, line.start + skipColumns(line.text, skip), line.end));
        afterBlank = false;
        k += 1;
      }
      while (content.length > 1 && isBlank(content[content.length - 1])) content.pop();
      const li = document.createElement("li");
      li.setAttribute("dir", "auto");
      list.appendChild(li);
      this.render(li, content);
      let next = k;
      while (next < lines.length && isBlank(lines[next])) next += 1;
      const sibling = next < lines.length ? listItem(lines[next]) : null;
      if (!sibling || sibling.ordered !== first.ordered || sibling.indent > first.indent + 1 || sibling.indent + 1 < first.indent) return k;
      i = next;
    }
  }

  // Whether the item's content so far leaves a fenced code block open (then a
  // following unindented line cannot be a lazy paragraph continuation).
  endsInFence(content) {
    let open = false;
    for (const line of content) if (FENCE.test(line.text)) open = !open;
    return open;
  }
}

/**
 * Render `raw` into `container` (emptied first). `marks` are highlights as
 * {start, end, id} in UTF-16 offsets of `raw`. Returns a mapper for selections.
 */
export function renderMarkdown(container, raw, { marks = [] } = {}) {
  const renderer = new Renderer(String(raw ?? ""), marks);
  container.replaceChildren();
  renderer.render(container, splitLines(renderer.raw));
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
    /**
     * Widen [start, end) so it never cuts through an inline construct (code span,
     * emphasis, link, escape): a span inside a construct's visible text stays
     * there, a span reaching into one takes all of it, delimiters included.
     * An end that touches only a construct's opening delimiter (no visible
     * character of it selected) is moved back before it, and likewise a start.
     */
    snap(start, end) {
      const constructs = renderer.constructs;
      for (let changed = true; changed; ) {
        changed = false;
        for (const c of constructs) {
          if (end <= c.start || start >= c.end) continue;
          if (start >= c.innerStart && end <= c.innerEnd) continue;
          if (start <= c.start && end >= c.end) continue;
          let [from, to] = [start, end];
          if (to <= c.innerStart && from < c.start) to = c.start;
          else if (from >= c.innerEnd && to > c.end) from = c.end;
          else [from, to] = [Math.min(from, c.start), Math.max(to, c.end)];
          if (from !== start || to !== end) {
            [start, end] = [from, to];
            changed = true;
          }
        }
      }
      return [start, end];
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
