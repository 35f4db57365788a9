// The review page: resolve an entry by keyboard. Builds the decision and, for "label",
// one answer per question the curator sets (the same shape as an annotator's submission),
// and posts them to the review API, whose validators are the annotators' own. Every value
// from data is rendered as text (textContent), never as HTML.
import { requestWithRetry, RequestFailed } from "./net.js";

const boot = JSON.parse(document.getElementById("review-boot").textContent);
const form = document.getElementById("resolve-form");
const shortcuts = document.getElementById("shortcuts");
const editorRoot = document.getElementById("label-editor");
const responses = boot.responses;
const labelOf = new Map(responses.map((r) => [r.id, r.label]));
const textOf = new Map(responses.map((r) => [r.id, r.text]));
const editors = [];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) el.append(child);
  return el;
}

// A textarea's value has \r\n and \r turned into \n; map its offsets back to the raw text.
function toRaw(raw, index) {
  if (!raw.includes("\r")) return index;
  let value = 0;
  let i = 0;
  while (i < raw.length && value < index) {
    i += raw[i] === "\r" && raw[i + 1] === "\n" ? 2 : 1;
    value += 1;
  }
  return i;
}

const cp = (text, utf16) => [...text.slice(0, utf16)].length; // code points before a UTF-16 offset

function editorShell(question, body) {
  const include = h("input", { type: "checkbox", class: "include", id: `q-${question.id}-set` });
  const fieldset = h(
    "fieldset",
    { class: "label-q", "data-question": question.id, "data-kind": question.kind, tabindex: "-1" },
    h("legend", {}, h("span", { text: `${question.prompt || question.name} (${question.kind})` })),
    h("label", { class: "checkbox", for: include.id }, include, " set this question"),
    body,
  );
  // Editing anything in a question sets it: left unchecked, it keeps its aggregate.
  fieldset.addEventListener("input", (event) => { if (event.target !== include) include.checked = true; });
  fieldset.addEventListener("change", (event) => { if (event.target !== include) include.checked = true; });
  return { fieldset, include };
}

// --- pairwise: chosen / rejected, tie, strength --------------------------------------------
function pairwiseEditor(question) {
  const options = () => responses.map((r) => h("option", { value: r.id, text: r.label }));
  const chosen = h("select", { class: "pw-chosen", id: `q-${question.id}-chosen` }, ...options());
  const rejected = h("select", { class: "pw-rejected", id: `q-${question.id}-rejected` }, ...options());
  if (responses.length > 1) rejected.value = String(responses[1].id);
  const tie = h("input", { type: "checkbox", class: "pw-tie", id: `q-${question.id}-tie` });
  const scale = question.config.strength_scale;
  const strength = h("select", { class: "pw-strength", id: `q-${question.id}-strength` }, h("option", { value: "", text: "no strength" }));
  if (scale) for (let v = scale.min; v <= scale.max; v += 1) strength.append(h("option", { value: v, text: String(v) }));
  const body = h(
    "div",
    { class: "pw-grid" },
    h("label", { for: chosen.id }, "Better ", chosen),
    h("label", { for: rejected.id }, "than ", rejected),
    h("label", { class: "checkbox", for: tie.id }, tie, " tie"),
    scale ? h("label", { for: strength.id }, "Strength ", strength) : "",
  );
  const shell = editorShell(question, body);
  const pick = (first, second) => {
    chosen.value = String(responses[first].id);
    rejected.value = String(responses[second].id);
    tie.checked = false;
    shell.include.checked = true;
  };
  shell.fieldset.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || responses.length < 2) return;
    const digit = /^Digit(\d)$/.exec(event.code);
    if (event.shiftKey && digit && scale) {
      const value = Number(digit[1]);
      if (value >= scale.min && value <= scale.max) { strength.value = String(value); tie.checked = false; shell.include.checked = true; }
    } else if (event.key === "1") pick(0, 1);
    else if (event.key === "2") pick(1, 0);
    else if (event.key === "3" || event.key.toLowerCase() === "t") { tie.checked = true; strength.value = ""; shell.include.checked = true; }
    else return;
    event.preventDefault();
    event.stopPropagation();
  });
  return {
    ...shell,
    question,
    fill(answer) {
      chosen.value = String(answer.chosen);
      rejected.value = String(answer.rejected);
      tie.checked = Boolean(answer.tie);
      strength.value = answer.strength ? String(answer.strength) : "";
    },
    answer() {
      const out = { question: question.id, chosen: Number(chosen.value), rejected: Number(rejected.value), tie: tie.checked };
      if (strength.value && !tie.checked) out.strength = Number(strength.value);
      return out;
    },
  };
}

// --- ranking: a list moved with the arrows, "=" ties with the one above ---------------------
function rankingEditor(question) {
  const list = h("ol", { class: "rank-list" });
  let groups = responses.map((r) => [r.id]);
  const render = (focusId) => {
    list.replaceChildren();
    groups.forEach((group, rank) => {
      group.forEach((rid, inGroup) => {
        const li = h("li", { tabindex: "0", "data-response": rid, class: inGroup ? "tied" : "" },
          h("span", { class: "rank", text: inGroup ? "=" : String(rank + 1) }), " ", h("span", { text: labelOf.get(rid) }));
        list.append(li);
      });
    });
    if (focusId !== undefined) list.querySelector(`li[data-response="${focusId}"]`)?.focus();
  };
  const flat = () => groups.flatMap((g, rank) => g.map((rid) => ({ rid, rank })));
  const move = (rid, step) => {
    const order = flat();
    const index = order.findIndex((o) => o.rid === rid);
    const target = index + step;
    if (target < 0 || target >= order.length) return;
    [order[index], order[target]] = [order[target], order[index]];
    groups = order.map((o) => [o.rid]); // moving unties, as on the labeling page
    render(rid);
  };
  const toggleTie = (rid) => {
    const at = groups.findIndex((g) => g.includes(rid));
    const group = groups[at];
    if (group.length > 1) {
      groups.splice(at, 1, ...group.map((id) => [id]));
    } else if (at > 0) {
      groups[at - 1].push(rid);
      groups.splice(at, 1);
    }
    render(rid);
  };
  const shell = editorShell(question, list);
  list.addEventListener("keydown", (event) => {
    const li = event.target.closest("li");
    if (!li || event.ctrlKey || event.metaKey) return;
    const rid = Number(li.dataset.response);
    if (event.key === "ArrowUp" || event.key === "ArrowDown") move(rid, event.key === "ArrowUp" ? -1 : 1);
    else if (event.key === "=") toggleTie(rid);
    else return;
    shell.include.checked = true;
    event.preventDefault();
    event.stopPropagation();
  });
  render();
  return {
    ...shell,
    question,
    fill(answer) { groups = answer.ranking.map((g) => (Array.isArray(g) ? [...g] : [g])); render(); },
    answer() { return { question: question.id, ranking: groups.map((g) => [...g]) }; },
  };
}

// --- ratings: a number per response and aspect ---------------------------------------------
function ratingEditor(question) {
  const aspects = question.config.aspects.map((a) => (typeof a === "string" ? { name: a } : a));
  const scaleOf = (aspect) => aspect.scale || question.config.scale;
  const inputs = new Map();
  const table = h("table", { class: "data rating-table" },
    h("thead", {}, h("tr", {}, h("th", { text: "Response" }), ...aspects.map((a) => h("th", { text: a.name })))));
  const tbody = h("tbody");
  for (const r of responses) {
    const row = h("tr", {}, h("th", { scope: "row", text: r.label }));
    for (const aspect of aspects) {
      const scale = scaleOf(aspect);
      const input = h("input", {
        type: "number", min: scale.min, max: scale.max, step: scale.step || "any", class: "rating-input",
        "aria-label": `${r.label} ${aspect.name}`, "data-response": r.id, "data-aspect": aspect.name,
      });
      inputs.set(`${r.id}|${aspect.name}`, input);
      row.append(h("td", {}, input));
    }
    tbody.append(row);
  }
  table.append(tbody);
  const shell = editorShell(question, h("div", { class: "table-scroll" }, table));
  return {
    ...shell,
    question,
    fill(answer) {
      for (const input of inputs.values()) input.value = "";
      for (const rating of answer.ratings) {
        const input = inputs.get(`${rating.response}|${rating.aspect}`);
        if (input) input.value = String(rating.value);
      }
    },
    answer() {
      const ratings = [];
      for (const input of inputs.values()) {
        if (input.value === "") continue;
        ratings.push({ response: Number(input.dataset.response), aspect: input.dataset.aspect, value: Number(input.value) });
      }
      return { question: question.id, ratings };
    },
  };
}

// --- corrections: select in a raw-text box, C adds the span, type its fix ------------------
function correctionEditor(question) {
  let corrections = [];
  const list = h("ol", { class: "correction-edit-list" });
  const boxes = h("div", { class: "raw-boxes" });
  const render = (focusLast) => {
    list.replaceChildren();
    corrections.forEach((c, index) => {
      const fix = h("input", { type: "text", class: "corrected-input", value: c.corrected_text, "aria-label": `Correction ${index + 1}: corrected text` });
      fix.addEventListener("input", () => { c.corrected_text = fix.value; });
      const remove = h("button", { type: "button", class: "button small", text: "Remove", onclick: () => { corrections.splice(index, 1); render(); shell.include.checked = true; } });
      list.append(h("li", { "data-start": c.start, "data-end": c.end },
        h("span", { class: "muted", text: `${labelOf.get(c.response)} [${c.start}, ${c.end}) ` }),
        h("del", { text: c.original_text }), " → ", fix, " ", remove));
      if (focusLast && index === corrections.length - 1) fix.focus();
    });
  };
  for (const r of responses) {
    // Not `readonly`: Chromium will not extend a selection with Shift+arrows in a readonly
    // textarea. Every edit is refused in `beforeinput` instead (as on the labeling page).
    const box = h("textarea", { class: "raw-text", "aria-readonly": "true", spellcheck: "false", rows: 3, "data-response": r.id, "aria-label": `Raw text of response ${r.label}: select, then press C` });
    box.value = r.text;
    box.setSelectionRange(0, 0);
    box.addEventListener("beforeinput", (event) => event.preventDefault());
    box.addEventListener("keydown", (event) => {
      if (event.key.toLowerCase() !== "c" || event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault();
      event.stopPropagation();
      add(r.id, box.selectionStart, box.selectionEnd);
    });
    boxes.append(h("label", {}, h("span", { text: `Response ${r.label}` }), box));
  }
  const add = (rid, from, to) => {
    const text = textOf.get(rid);
    const start = cp(text, toRaw(text, Math.min(from, to)));
    const end = cp(text, toRaw(text, Math.max(from, to)));
    if (end <= start) return;
    const original = [...text].slice(start, end).join("");
    corrections.push({ response: rid, start, end, original_text: original, corrected_text: original, category: "", comment: "" });
    shell.include.checked = true;
    render(true);
  };
  const shell = editorShell(question, h("div", {}, boxes, list));
  return {
    ...shell,
    question,
    fill(answer) { corrections = answer.corrections.map((c) => ({ ...c })); render(); },
    answer() { return { question: question.id, corrections: corrections.map((c) => ({ ...c })) }; },
  };
}

const BUILDERS = { pairwise: pairwiseEditor, ranking: rankingEditor, rating: ratingEditor, correction: correctionEditor };

function decision() {
  return form.querySelector("input[name=decision]:checked")?.value || "";
}

function setDecision(value) {
  const radio = document.getElementById(`d-${value}`);
  if (!radio) return;
  radio.checked = true;
  showParts();
}

function showParts() {
  editorRoot.hidden = decision() !== "label";
  document.getElementById("more-votes").hidden = decision() !== "more_votes";
}

function copyAnnotation(index) {
  const source = boot.annotations[index];
  if (!source) return false;
  setDecision("label");
  for (const editor of editors) {
    const answer = source.answers.find((a) => a.question === editor.question.id);
    editor.include.checked = Boolean(answer);
    if (answer) editor.fill(answer);
  }
  status(`Label taken from annotation ${index + 1} (${source.who}).`);
  return true;
}

function status(text) {
  document.getElementById("resolve-status").textContent = text;
}

function showError(text) {
  document.getElementById("resolve-error").textContent = text;
}

function body() {
  const out = { decision: decision(), reason: document.getElementById("resolve-reason").value };
  if (out.decision === "label") out.label = editors.filter((e) => e.include.checked).map((e) => e.answer());
  if (out.decision === "more_votes") {
    out.votes = Number(document.getElementById("more-votes-count").value || "1");
    const priority = document.getElementById("more-votes-priority").value;
    if (priority !== "") out.priority = Number(priority);
  }
  return out;
}

let sending = false;
async function resolve() {
  if (sending) return;
  showError("");
  if (!decision()) {
    showError("decision: choose one (A, L, D or M).");
    return;
  }
  sending = true;
  document.getElementById("resolve-submit").disabled = true;
  try {
    const result = await requestWithRetry(boot.urls.resolve, { method: "POST", body: body() }, (attempt, total) => status(`Retrying (${attempt}/${total - 1})…`));
    status(`Resolved: ${result.data.decision}.`);
    form.dataset.resolved = result.data.decision;
    // The resolved page shows the record and the message form.
    window.location.reload();
  } catch (error) {
    const data = error instanceof RequestFailed ? error.body : {};
    showError(data.field ? `${data.field}: ${data.detail}` : (data.detail || String(error)));
    document.getElementById("resolve-submit").disabled = false;
  } finally {
    sending = false;
  }
}

function typing(target) {
  return target instanceof HTMLElement && (target.matches("input, textarea, select") || target.isContentEditable);
}

function onKey(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    if (form) { event.preventDefault(); resolve(); }
    return;
  }
  if (shortcuts.open || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  if (event.target instanceof HTMLElement && event.target.closest(".label-q") && event.key !== "?") return;
  const key = event.key.toLowerCase();
  if (key === "?") { shortcuts.showModal(); event.preventDefault(); return; }
  if (key === "n" && boot.urls.next) { window.location.assign(boot.urls.next); return; }
  if (!form) return;
  if (key === "a") setDecision("accept");
  else if (key === "d") setDecision("drop");
  else if (key === "m") { setDecision("more_votes"); document.getElementById("more-votes-count").focus(); }
  else if (key === "l") { setDecision("label"); editors[0]?.fieldset.focus(); }
  else if (/^[1-9]$/.test(key)) { if (!copyAnnotation(Number(key) - 1)) return; editors[0]?.fieldset.focus(); }
  else return;
  event.preventDefault();
}

if (form) {
  for (const question of boot.questions) {
    const build = BUILDERS[question.kind];
    if (!build) continue;
    const editor = build(question);
    editors.push(editor);
    editorRoot.append(editor.fieldset);
  }
  for (const radio of form.querySelectorAll("input[name=decision]")) radio.addEventListener("change", showParts);
  form.addEventListener("submit", (event) => { event.preventDefault(); resolve(); });
  showParts();
}
document.addEventListener("keydown", onKey);
document.getElementById("shortcuts-button").addEventListener("click", () => shortcuts.showModal());
document.body.dataset.reviewReady = "1";
