// The labeling page: one item at a time, every question kind, keyboard first.
//
// The page boots from JSON the server rendered into it (project, questions and
// the first leased item), so the first item needs no extra request. Submitting
// posts to a frontend endpoint that stores the answers *and* leases the next
// item in the same round trip; the next item is drawn from that reply without a
// page load. All data reaches the DOM as text (see markdown.js).

import { codePointIndex, renderMarkdown, snapToCodePoint } from "./markdown.js";
import { newIdempotencyKey, RequestFailed, requestWithRetry } from "./net.js";

const boot = JSON.parse(document.getElementById("ballot-boot").textContent);
const app = document.getElementById("app");
const statusEl = document.getElementById("status");
const counterEl = document.getElementById("counter");
const shortcutsDialog = document.getElementById("shortcuts");

const ballot = { timings: [], doneCount: 0, current: null };
window.ballot = ballot;

let current = null;
let submitting = false;
let goldPending = null;
let rawVisible = false;
let lastSpan = null;

// --- small helpers -----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const letter = (position) => (position < 26 ? String.fromCharCode(65 + position) : `R${position + 1}`);
const labelOf = (responseId) => letter(current.byId.get(responseId).position);
const endpoint = (template, id) => template.replace(/\/0\/(submit|skip|ahead)\/$/, `/${id}/$1/`);
const isEditable = (el) =>
  el &&
  ((el.tagName === "TEXTAREA" && !el.readOnly && !el.classList.contains("raw-box")) ||
    (el.tagName === "INPUT" && !["button", "checkbox", "radio", "range", "submit"].includes(el.type)) ||
    el.tagName === "SELECT" ||
    el.isContentEditable);

// A response as the cards show it (the same renderer), clipped to a few lines.
function preview(text) {
  const el = h("div", { class: "md snippet" });
  renderMarkdown(el, text);
  // The row itself is the keyboard stop; links stay reachable on the card above.
  for (const link of el.querySelectorAll("a")) link.tabIndex = -1;
  return el;
}

function keyFor(assignmentId) {
  // One key per assignment, kept across reloads of the tab so a retry after a
  // reload is still recognised by the server as the same submission.
  const name = `ballot-idempotency-${assignmentId}`;
  let key = sessionStorage.getItem(name);
  if (!key) {
    key = newIdempotencyKey();
    sessionStorage.setItem(name, key);
  }
  return key;
}

function showStatus(kind, message, action) {
  statusEl.hidden = false;
  statusEl.className = `status status-${kind}`;
  statusEl.replaceChildren(h("span", { class: "status-text" }, message));
  if (action) {
    const button = h("button", { type: "button", class: "button small", onclick: action.run }, action.label);
    statusEl.append(button);
    if (action.focus) button.focus();
  }
}

function clearStatus() {
  statusEl.hidden = true;
  statusEl.replaceChildren();
}

function updateCounter() {
  const item = current && current.item;
  const progress = current && current.assignment.progress;
  const extra = [`${ballot.doneCount} done this session`];
  if (item) extra.push(`id ${item.external_id}`);
  // "x of N": the item's place among everything this annotator can label here,
  // counted by the server like the home page (done + skipped + remaining). It
  // stays visible on narrow screens; the rest is hidden there.
  counterEl.replaceChildren(
    progress ? h("span", { class: "counter-position" }, `Item ${progress.position} of ${progress.total}`) : null,
    h("span", { class: "counter-extra" }, `${progress ? " · " : ""}${extra.join(" · ")}`),
  );
}

// --- time spent: only while the tab is visible --------------------------------------------------

function startClock() {
  current.visibleMs = 0;
  current.visibleSince = document.hidden ? null : performance.now();
}

document.addEventListener("visibilitychange", () => {
  if (!current) return;
  if (document.hidden && current.visibleSince !== null) {
    current.visibleMs += performance.now() - current.visibleSince;
    current.visibleSince = null;
  } else if (!document.hidden && current.visibleSince === null) {
    current.visibleSince = performance.now();
  }
});

const elapsedMs = () =>
  Math.round(current.visibleMs + (current.visibleSince !== null ? performance.now() - current.visibleSince : 0));

// --- rendering an item ------------------------------------------------------------------------------

function messageText(content) {
  return typeof content === "string" ? content : JSON.stringify(content, null, 2);
}

function renderResponseBodies() {
  for (const response of current.responses) {
    const marks = [];
    for (const component of current.components) {
      for (const correction of component.corrections ? component.corrections() : []) {
        if (correction.response === response.id) {
          marks.push({ start: correction.u16Start, end: correction.u16End, id: correction.id });
        }
      }
    }
    current.mappers.set(response.id, renderMarkdown(current.bodies.get(response.id), response.text, { marks }));
  }
}

function questionShell(question, index) {
  const title = question.prompt || question.name;
  const body = h("div", { class: "question-body" });
  const el = h(
    "section",
    {
      class: `question card kind-${question.kind}`,
      "aria-labelledby": `q-${question.id}-title`,
      dataset: { question: question.id, kind: question.kind },
    },
    h(
      "h2",
      { class: "question-title", id: `q-${question.id}-title` },
      h("span", { class: "question-number" }, `${index + 1}`),
      title,
      question.required ? null : h("span", { class: "optional" }, " (optional)"),
    ),
    body,
  );
  return { el, body, title };
}

function showAssignment(assignment) {
  goldPending = null;
  lastSpan = null;
  app.replaceChildren();
  if (!assignment) {
    current = null;
    ballot.current = null;
    app.append(
      h(
        "section",
        { class: "card done" },
        h("h2", {}, "All done"),
        h("p", {}, "There is nothing left for you to label in this project right now. Thank you!"),
        h("a", { class: "button primary", href: boot.urls.home }, "Back to your projects"),
      ),
    );
    updateCounter();
    app.setAttribute("aria-busy", "false");
    return;
  }
  const item = assignment.item;
  const responses = item.responses.slice().sort((a, b) => a.position - b.position);
  current = {
    assignment,
    item,
    responses,
    byId: new Map(responses.map((r) => [r.id, r])),
    key: keyFor(assignment.id),
    mappers: new Map(),
    bodies: new Map(),
    raws: new Map(),
    cards: new Map(),
    components: [],
  };
  ballot.current = current;

  const conversation = h("ol", { class: "conversation" });
  for (const message of item.conversation || []) {
    const role = String(message.role || "message");
    const body = h("div", { class: "md" });
    renderMarkdown(body, messageText(message.content));
    conversation.append(
      h("li", { class: `message role-${/^[a-z]+$/.test(role) ? role : "other"}` }, h("span", { class: "role" }, role), body),
    );
  }

  const grid = h("div", { class: "responses", style: `--response-count: ${Math.min(responses.length, 3)}` });
  for (const response of responses) {
    const name = letter(response.position);
    const body = h("div", { class: "md response-body", dataset: { response: response.id } });
    // Not `readonly`: Chromium will not extend a selection with Shift+arrows in a
    // readonly textarea. Every edit is refused in `beforeinput` instead.
    const raw = h("textarea", {
      class: "raw-box",
      "aria-readonly": "true",
      rows: 5,
      hidden: !rawVisible,
      spellcheck: "false",
      "aria-label": `Raw text of response ${name}, for keyboard selection`,
      dataset: { response: response.id },
    });
    raw.value = response.text;
    // Setting the value leaves the caret at the end; keyboard selection starts at the beginning.
    raw.setSelectionRange(0, 0);
    raw.addEventListener("beforeinput", (event) => event.preventDefault());
    const card = h(
      "article",
      { class: "response card", "aria-labelledby": `r-${response.id}-title`, dataset: { response: response.id, label: name } },
      h("header", { class: "response-head" }, h("h3", { class: "response-label", id: `r-${response.id}-title` }, `Response ${name}`)),
      body,
      raw,
    );
    current.bodies.set(response.id, body);
    current.raws.set(response.id, raw);
    current.cards.set(response.id, card);
    grid.append(card);
  }

  const questions = h("div", { class: "questions" });
  boot.questions.forEach((question, index) => {
    const make = COMPONENTS[question.kind];
    if (!make) return;
    const component = make(question, index);
    current.components.push(component);
    questions.append(component.el);
  });
  renderResponseBodies();

  const actions = h(
    "div",
    { class: "actions sticky-actions" },
    h("button", { type: "button", class: "button primary", id: "submit-button", onclick: submit }, "Submit ", h("kbd", {}, "Ctrl+Enter")),
    h("button", { type: "button", class: "button", id: "skip-button", onclick: skip }, "Skip ", h("kbd", {}, "Ctrl+S")),
  );

  app.append(
    h(
      "section",
      { class: "conversation-section", "aria-labelledby": "conversation-title" },
      h("h2", { class: "section-title", id: "conversation-title", tabindex: "-1" }, "Conversation"),
      conversation,
    ),
    h("section", { class: "responses-section", "aria-label": "Responses" }, grid),
    questions,
    actions,
  );
  app.setAttribute("aria-busy", "false");
  startClock();
  updateCounter();
  leaseAhead(assignment.id);
}

// Reserve the following item now, while the annotator reads; the submit then
// only stores answers and its reply carries that item. Failures here are harmless.
function leaseAhead(assignmentId) {
  if (boot.preview) return;
  requestWithRetry(endpoint(boot.urls.ahead, assignmentId), { method: "POST" }).catch(() => {});
}

function showNextFromSubmit(next, startedAt, message) {
  showAssignment(next);
  if (message) showStatus("ok", message);
  else clearStatus();
  window.scrollTo(0, 0);
  const heading = document.getElementById("conversation-title");
  if (heading) heading.focus({ preventScroll: true });
  // Measured after the frame that shows the new item has been painted.
  requestAnimationFrame(() =>
    setTimeout(() => {
      const ms = performance.now() - startedAt;
      ballot.timings.push(ms);
      document.dispatchEvent(new CustomEvent("ballot:shown", { detail: { ms } }));
    }, 0),
  );
}

// --- pairwise ------------------------------------------------------------------------------------

const DEFAULT_STRENGTH_LABELS = { 1: "Slightly better", 2: "Better", 3: "Much better" };

function pairwiseComponent(question, index) {
  const { el, body, title } = questionShell(question, index);
  const config = question.config || {};
  const [first, second] = current.responses;
  const state = { choice: null, strength: null };
  if (!first || !second) {
    body.append(h("p", { class: "muted" }, "This item has fewer than two responses; nothing to compare."));
    return { question, el, title, complete: () => true, answer: () => null, focus: () => el.focus() };
  }
  const options = [
    ["a", "A is better", "1"],
    ["b", "B is better", "2"],
  ];
  if (config.allow_tie !== false) options.push(["tie", "Tie", "3"]);
  const choiceGroup = h("div", { class: "choice-group", role: "radiogroup", "aria-label": `${title}: A, B or tie` });
  const choiceButtons = options.map(([value, text, key]) =>
    h(
      "button",
      { type: "button", role: "radio", "aria-checked": "false", class: "choice", dataset: { value }, onclick: () => choose(value) },
      text,
      " ",
      h("kbd", {}, key),
    ),
  );
  choiceGroup.append(...choiceButtons);
  if (current.responses.length > 2) body.append(h("p", { class: "help" }, "Compare responses A and B."));
  body.append(choiceGroup);

  const scale = config.strength_scale;
  const strengthButtons = [];
  if (scale) {
    const group = h("div", { class: "choice-group strength", role: "radiogroup", "aria-label": "How much better?" });
    for (let value = scale.min; value <= scale.max; value += 1) {
      const labels = scale.labels || {};
      const text =
        labels[value] || labels[String(value)] || (scale.min === 1 && scale.max === 3 ? DEFAULT_STRENGTH_LABELS[value] : `${value}`);
      const button = h(
        "button",
        { type: "button", role: "radio", "aria-checked": "false", class: "choice small", dataset: { value }, onclick: () => setStrength(value) },
        text,
        " ",
        h("kbd", {}, `⇧${value}`),
      );
      strengthButtons.push(button);
      group.append(button);
    }
    body.append(h("p", { class: "help", id: `q-${question.id}-strength` }, "How much better? (optional)"), group);
  }

  function update() {
    for (const button of choiceButtons) button.setAttribute("aria-checked", String(button.dataset.value === state.choice));
    for (const button of strengthButtons) {
      button.setAttribute("aria-checked", String(Number(button.dataset.value) === state.strength));
      button.disabled = state.choice === "tie";
    }
    for (const [id, card] of current.cards) {
      const preferred =
        (state.choice === "a" && id === first.id) || (state.choice === "b" && id === second.id) || (state.choice === "tie" && (id === first.id || id === second.id));
      card.classList.toggle("preferred", Boolean(preferred));
    }
    el.classList.toggle("answered", state.choice !== null);
  }
  function choose(value) {
    state.choice = value;
    if (value === "tie") state.strength = null;
    update();
  }
  function setStrength(value) {
    if (state.choice === "tie") return;
    state.strength = value;
    update();
  }
  function handleKey(event) {
    const key = event.key.toLowerCase();
    const digit = /^Digit(\d)$/.exec(event.code);
    if (event.shiftKey && digit) {
      const value = Number(digit[1]);
      if (scale && value >= scale.min && value <= scale.max) {
        setStrength(value);
        return true;
      }
      return false;
    }
    if (event.shiftKey) return false;
    const map = { 1: "a", a: "a", 2: "b", b: "b", 3: "tie", t: "tie" };
    const value = map[key];
    if (!value || (value === "tie" && config.allow_tie === false)) return false;
    choose(value);
    return true;
  }
  return {
    question,
    el,
    title,
    handleKey,
    complete: () => state.choice !== null || !question.required,
    focus: () => choiceButtons[0].focus(),
    answer() {
      if (state.choice === null) return null;
      if (state.choice === "tie") return { question: question.id, chosen: first.id, rejected: second.id, tie: true, strength: null };
      const [chosen, rejected] = state.choice === "a" ? [first, second] : [second, first];
      return { question: question.id, chosen: chosen.id, rejected: rejected.id, tie: false, strength: state.strength };
    },
  };
}

// --- ranking ----------------------------------------------------------------------------------------

function rankingComponent(question, index) {
  const { el, body, title } = questionShell(question, index);
  const allowTies = (question.config || {}).allow_ties !== false;
  const state = { order: current.responses.map((r) => r.id), tied: new Set(), touched: false, dragging: null };
  const list = h("ol", { class: "rank-list", "aria-label": `${title}: best first` });
  const note = h("p", { class: "help rank-note" });
  const live = h("p", { class: "sr-only", "aria-live": "polite" });
  const confirm = h("button", { type: "button", class: "button small", onclick: () => touch() }, "Keep this order");
  body.append(
    h(
      "p",
      { class: "help" },
      "Best first. Drag to reorder, or focus a response and use ",
      h("kbd", {}, "↑"),
      " ",
      h("kbd", {}, "↓"),
      allowTies ? [" to move it and ", h("kbd", {}, "="), " to tie it with the one above."] : " to move it.",
    ),
    list,
    h("div", { class: "rank-footer" }, note, confirm),
    live,
  );

  function groups() {
    const out = [];
    for (const id of state.order) {
      if (state.tied.has(id) && out.length) out[out.length - 1].push(id);
      else out.push([id]);
    }
    return out;
  }
  function touch() {
    state.touched = true;
    render();
  }
  function render(focusId) {
    state.tied.delete(state.order[0]);
    list.replaceChildren();
    let rank = 0;
    state.order.forEach((id, position) => {
      const tied = position > 0 && state.tied.has(id);
      if (!tied) rank += 1;
      const response = current.byId.get(id);
      const name = letter(response.position);
      const li = h(
        "li",
        {
          class: `rank-item${tied ? " tied" : ""}`,
          tabindex: "0",
          draggable: "true",
          dataset: { response: id },
          "aria-label": `Response ${name}, rank ${rank}${tied ? ", tied with the one above" : ""}`,
        },
        h("span", { class: "rank-no", "aria-hidden": "true" }, tied ? "=" : String(rank)),
        h("span", { class: "response-label" }, name),
        preview(response.text),
        h(
          "span",
          { class: "rank-buttons" },
          h("button", { type: "button", class: "icon-button", "aria-label": `Move ${name} up`, tabindex: "-1", onclick: () => move(id, -1) }, "↑"),
          h("button", { type: "button", class: "icon-button", "aria-label": `Move ${name} down`, tabindex: "-1", onclick: () => move(id, 1) }, "↓"),
          allowTies && position > 0
            ? h(
                "button",
                { type: "button", class: "icon-button", "aria-pressed": String(tied), "aria-label": `Tie ${name} with the one above`, tabindex: "-1", onclick: () => toggleTie(id) },
                "=",
              )
            : null,
        ),
      );
      li.addEventListener("keydown", (event) => onKey(event, id));
      li.addEventListener("dragstart", (event) => {
        state.dragging = id;
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", String(id));
        li.classList.add("dragging");
      });
      li.addEventListener("dragend", () => li.classList.remove("dragging"));
      li.addEventListener("dragover", (event) => {
        event.preventDefault();
        event.dataTransfer.dropEffect = "move";
      });
      li.addEventListener("drop", (event) => {
        event.preventDefault();
        const dragged = state.dragging ?? Number(event.dataTransfer.getData("text/plain"));
        if (!dragged || dragged === id) return;
        const box = li.getBoundingClientRect();
        const after = event.clientY > box.top + box.height / 2;
        state.order.splice(state.order.indexOf(dragged), 1);
        state.order.splice(state.order.indexOf(id) + (after ? 1 : 0), 0, dragged);
        state.tied.delete(dragged);
        state.dragging = null;
        state.touched = true;
        render(dragged);
      });
      list.append(li);
    });
    note.textContent = state.touched ? "Ranked." : "Not ranked yet: reorder, or press Enter / “Keep this order” to confirm.";
    el.classList.toggle("answered", state.touched);
    if (focusId !== undefined) list.querySelector(`[data-response="${focusId}"]`)?.focus();
  }
  function move(id, delta) {
    const from = state.order.indexOf(id);
    const to = from + delta;
    if (to < 0 || to >= state.order.length) return;
    [state.order[from], state.order[to]] = [state.order[to], state.order[from]];
    state.tied.delete(id);
    state.touched = true;
    render(id);
    live.textContent = `Response ${labelOf(id)} moved to position ${to + 1}.`;
  }
  function toggleTie(id) {
    if (!allowTies || state.order.indexOf(id) === 0) return;
    if (state.tied.has(id)) state.tied.delete(id);
    else state.tied.add(id);
    state.touched = true;
    render(id);
    live.textContent = state.tied.has(id) ? `Response ${labelOf(id)} tied with the one above.` : `Response ${labelOf(id)} untied.`;
  }
  function onKey(event, id) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "ArrowUp" || event.key === "ArrowDown") move(id, event.key === "ArrowUp" ? -1 : 1);
    else if (event.key === "=") toggleTie(id);
    else if (event.key === "Enter" || event.key === " ") {
      state.touched = true;
      render(id);
    } else return;
    event.preventDefault();
    event.stopPropagation();
  }
  render();
  return {
    question,
    el,
    title,
    complete: () => state.touched || !question.required,
    focus: () => list.querySelector("li")?.focus(),
    answer: () => (state.touched || question.required ? { question: question.id, ranking: groups() } : null),
  };
}

// --- ratings ------------------------------------------------------------------------------------------

function scaleValues(scale) {
  if (!scale.step) return null;
  const values = [];
  for (let v = scale.min; v <= scale.max + 1e-9; v += scale.step) values.push(Math.round(v * 1000) / 1000);
  return values.length <= 11 ? values : null;
}

function ratingComponent(question, index) {
  const { el, body, title } = questionShell(question, index);
  const config = question.config || {};
  const aspects = config.aspects || [];
  const values = new Map();
  const rows = [];
  const grid = h("div", { class: "rating-grid", style: `--response-count: ${Math.min(current.responses.length, 3)}` });
  for (const response of current.responses) {
    const name = letter(response.position);
    const column = h("div", { class: "rating-response" }, h("h3", { class: "rating-response-title" }, `Response ${name}`));
    for (const aspect of aspects) {
      const scale = aspect.scale || config.scale || { min: 1, max: 5, step: 1 };
      const key = `${response.id}|${aspect.name}`;
      const options = scaleValues(scale);
      const labels = scale.labels || {};
      const row = h("div", {
        class: "rating-row",
        role: "radiogroup",
        tabindex: "0",
        "aria-label": `Response ${name}: ${aspect.name} (${scale.min} to ${scale.max})`,
        dataset: { response: response.id, aspect: aspect.name },
      });
      const buttons = [];
      let input = null;
      const set = (value) => {
        values.set(key, value);
        for (const button of buttons) button.setAttribute("aria-checked", String(Number(button.dataset.value) === value));
        if (input) input.value = String(value);
        row.classList.add("answered");
        el.classList.toggle("answered", values.size === current.responses.length * aspects.length);
      };
      const control = h("span", { class: "scale" });
      if (options) {
        for (const value of options) {
          const button = h(
            "button",
            {
              type: "button",
              role: "radio",
              tabindex: "-1",
              "aria-checked": "false",
              class: "scale-button",
              title: labels[value] || labels[String(value)] || null,
              dataset: { value },
              onclick: () => set(value),
            },
            String(value),
          );
          buttons.push(button);
          control.append(button);
        }
      } else {
        input = h("input", { type: "number", min: scale.min, max: scale.max, step: scale.step || "any", "aria-label": `${aspect.name} value` });
        input.addEventListener("change", () => input.value !== "" && set(Number(input.value)));
        control.append(input);
      }
      row.append(
        h("span", { class: "aspect" }, h("span", { class: "aspect-name" }, aspect.name), aspect.description ? h("span", { class: "aspect-description" }, aspect.description) : null),
        control,
      );
      row.addEventListener("keydown", (event) => {
        if (!options || event.ctrlKey || event.metaKey || event.altKey) return;
        let value = null;
        if (/^\d$/.test(event.key)) {
          const digit = Number(event.key);
          value = digit === 0 && scale.max >= 10 ? 10 : digit;
        } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
          const now = values.has(key) ? options.indexOf(values.get(key)) : event.key === "ArrowRight" ? -1 : options.length;
          value = options[Math.max(0, Math.min(options.length - 1, now + (event.key === "ArrowRight" ? 1 : -1)))];
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          const next = rows[rows.indexOf(row) + (event.key === "ArrowDown" ? 1 : -1)];
          if (next) next.focus();
          event.preventDefault();
          event.stopPropagation();
          return;
        } else return;
        event.preventDefault();
        event.stopPropagation();
        if (!options.includes(value)) return;
        set(value);
        if (/^\d$/.test(event.key)) rows[rows.indexOf(row) + 1]?.focus();
      });
      rows.push(row);
      column.append(row);
    }
    grid.append(column);
  }
  body.append(h("p", { class: "help" }, "Focus a row and type a digit (focus moves on), or click a value."), grid);
  const total = current.responses.length * aspects.length;
  return {
    question,
    el,
    title,
    complete: () => values.size === total || (!question.required && values.size === 0),
    focus: () => (rows.find((row) => !row.classList.contains("answered")) || rows[0])?.focus(),
    answer() {
      if (!values.size) return null;
      const ratings = [];
      for (const [key, value] of values) {
        const [response, aspect] = key.split(/\|(.*)/s);
        ratings.push({ response: Number(response), aspect, value });
      }
      return { question: question.id, ratings };
    },
  };
}

// --- corrections ----------------------------------------------------------------------------------------

let correctionSeq = 0;
let correctionDialog = null;

// A readonly textarea's value has \r\n and \r turned into \n; map its offsets back to the raw text.
function textareaToRaw(raw, index) {
  if (!raw.includes("\r")) return index;
  let value = 0;
  let i = 0;
  while (i < raw.length && value < index) {
    i += raw[i] === "\r" && raw[i + 1] === "\n" ? 2 : 1;
    value += 1;
  }
  return i;
}

function trimSpan(raw, start, end) {
  while (start < end && /\s/.test(raw[start])) start += 1;
  while (end > start && /\s/.test(raw[end - 1])) end -= 1;
  return [snapToCodePoint(raw, start, -1), snapToCodePoint(raw, end, 1)];
}

/** The selected span of one response, in UTF-16 offsets of its raw text, or null. */
function selectedSpan() {
  if (!current) return null;
  const active = document.activeElement;
  if (active && active.classList.contains("raw-box") && active.selectionStart !== active.selectionEnd) {
    const response = current.byId.get(Number(active.dataset.response));
    const [start, end] = trimSpan(
      response.text,
      textareaToRaw(response.text, active.selectionStart),
      textareaToRaw(response.text, active.selectionEnd),
    );
    return start < end ? { response: response.id, start, end } : null;
  }
  const selection = window.getSelection();
  if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
  const range = selection.getRangeAt(0);
  const startBody = (range.startContainer.nodeType === Node.ELEMENT_NODE ? range.startContainer : range.startContainer.parentElement)?.closest(".response-body");
  const endBody = (range.endContainer.nodeType === Node.ELEMENT_NODE ? range.endContainer : range.endContainer.parentElement)?.closest(".response-body");
  if (!startBody || startBody !== endBody) return null;
  const response = current.byId.get(Number(startBody.dataset.response));
  const mapper = current.mappers.get(response.id);
  const rawStart = mapper.rawOffset(range.startContainer, range.startOffset);
  const rawEnd = mapper.rawOffset(range.endContainer, range.endOffset);
  if (rawStart === null || rawEnd === null) return null;
  // A selection on rendered text that reaches into a code span, a link or emphasis
  // takes the whole construct, delimiters included: the stored span is then
  // well-formed Markdown, and the form shows it rendered next to its source.
  const [trimmedStart, trimmedEnd] = trimSpan(response.text, Math.min(rawStart, rawEnd), Math.max(rawStart, rawEnd));
  if (trimmedStart >= trimmedEnd) return null;
  const [start, end] = trimSpan(response.text, ...mapper.snap(trimmedStart, trimmedEnd));
  return start < end ? { response: response.id, start, end } : null;
}

function rememberSelection() {
  const span = selectedSpan();
  if (span) lastSpan = span;
  for (const component of current ? current.components : []) component.onSelection?.(span || lastSpan);
}

document.addEventListener("selectionchange", () => rememberSelection());

function buildCorrectionDialog() {
  const original = h("blockquote", { class: "original md", dir: "auto" });
  const source = h("code", { class: "original-source", dir: "auto" });
  const sourceLine = h("p", { class: "help original-source-line" }, "Markdown source: ", source);
  const corrected = h("textarea", { id: "correction-text", rows: 3, dir: "auto", required: true });
  const category = h("select", { id: "correction-category" });
  const comment = h("input", { id: "correction-comment", type: "text", autocomplete: "off" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { method: "dialog", class: "correction-form" },
    h("h2", { id: "correction-title" }, "Correct this span"),
    h("p", { class: "help", id: "correction-where" }),
    original,
    sourceLine,
    h("div", { class: "field" }, h("label", { for: "correction-text" }, "Corrected text"), corrected),
    h("div", { class: "field" }, h("label", { for: "correction-category" }, "Category"), category),
    h("div", { class: "field" }, h("label", { for: "correction-comment" }, "Comment (optional)"), comment),
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "button primary", value: "save" }, "Save correction ", h("kbd", {}, "Ctrl+Enter")),
      h("button", { type: "button", class: "button", value: "cancel", onclick: () => close("cancel") }, "Cancel ", h("kbd", {}, "Esc")),
    ),
  );
  const dialog = h("dialog", { class: "correction-dialog", "aria-labelledby": "correction-title" }, form);
  document.body.append(dialog);
  let onSave = null;
  let returnTo = null;
  let fallbackFocus = null;
  // Focus goes back at once, not at the browser's next rendering update: until then the
  // closed dialog's text box would keep the focus and swallow the next shortcut key (C).
  // The element focused before opening may be gone (saving re-renders the responses).
  function handBackFocus() {
    if (!dialog.contains(document.activeElement) && document.activeElement !== document.body) return;
    const back = returnTo?.isConnected && returnTo !== document.body && !dialog.contains(returnTo);
    const target = back ? returnTo : fallbackFocus?.();
    if (target?.isConnected) target.focus({ preventScroll: true });
    else document.activeElement?.blur();
  }
  function close(value) {
    dialog.close(value);
    handBackFocus();
  }
  dialog.addEventListener("close", handBackFocus);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const result = onSave({ corrected_text: corrected.value, category: category.value, comment: comment.value });
    if (result) {
      error.hidden = false;
      error.textContent = result;
      return;
    }
    close("save");
  });
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
    event.stopPropagation();
  });
  return {
    open({ text, where, categories, requireCategory, values, focusAfter }, save) {
      // Shown as the annotator saw it on the card; the exact stored characters
      // (with their Markdown syntax) are spelled out below when they differ.
      renderMarkdown(original, text);
      source.textContent = text;
      sourceLine.hidden = original.textContent === text;
      document.getElementById("correction-where").textContent = where;
      category.replaceChildren(
        ...(requireCategory ? [] : [h("option", { value: "" }, "—")]),
        ...categories.map((c) => h("option", { value: c }, c)),
      );
      corrected.value = values.corrected_text ?? text;
      category.value = values.category ?? (requireCategory ? categories[0] || "" : "");
      comment.value = values.comment ?? "";
      error.hidden = true;
      onSave = save;
      returnTo = document.activeElement;
      fallbackFocus = focusAfter;
      dialog.showModal();
      corrected.focus();
      corrected.select();
    },
    get isOpen() {
      return dialog.open;
    },
  };
}

function correctionComponent(question, index) {
  const { el, body, title } = questionShell(question, index);
  el.tabIndex = -1; // takes the focus back from the correction form when its button is disabled
  const config = question.config || {};
  const categories = config.categories || [];
  const items = [];
  const list = h("ul", { class: "correction-list", "aria-label": "Your corrections" });
  const correctButton = h(
    "button",
    { type: "button", class: "button small", disabled: true, onmousedown: (event) => event.preventDefault(), onclick: () => openForSelection() },
    "Correct selection ",
    h("kbd", {}, "C"),
  );
  const rawButton = h(
    "button",
    { type: "button", class: "button small", "aria-pressed": String(rawVisible), onclick: () => toggleRaw() },
    "Raw text for keyboard selection ",
    h("kbd", {}, "R"),
  );
  body.append(
    h("p", { class: "help" }, "Select a wrong span in a response, then correct it. Leave empty when nothing is wrong."),
    h("div", { class: "actions" }, correctButton, rawButton),
    list,
  );

  function renderList() {
    list.replaceChildren();
    if (!items.length) list.append(h("li", { class: "muted empty" }, "No corrections."));
    for (const item of items) {
      list.append(
        h(
          "li",
          { class: "correction-entry", dataset: { correction: item.id } },
          h("span", { class: "response-label" }, labelOf(item.response)),
          h("del", { dir: "auto" }, item.original_text),
          " → ",
          h("ins", { dir: "auto" }, item.corrected_text || "(delete)"),
          item.category ? h("span", { class: "badge" }, item.category) : null,
          item.comment ? h("span", { class: "comment" }, item.comment) : null,
          h(
            "span",
            { class: "entry-buttons" },
            h("button", { type: "button", class: "button small", onclick: () => edit(item) }, "Edit"),
            h("button", { type: "button", class: "button small danger", onclick: () => remove(item) }, "Remove"),
          ),
        ),
      );
    }
    el.classList.toggle("answered", items.length > 0);
  }
  function overlaps(span, except) {
    return items.some((other) => other !== except && other.response === span.response && span.start < other.u16End && other.u16Start < span.end);
  }
  function open(span, existing) {
    const response = current.byId.get(span.response);
    correctionDialog = correctionDialog || buildCorrectionDialog();
    correctionDialog.open(
      {
        text: response.text.slice(span.start, span.end),
        where: `Response ${labelOf(span.response)}, characters ${codePointIndex(response.text, span.start)}–${codePointIndex(response.text, span.end)}`,
        categories,
        requireCategory: Boolean(config.require_category),
        values: existing || {},
        // After saving, the selection is gone and the button disabled: the question keeps the focus.
        focusAfter: () => (correctButton.disabled ? el : correctButton),
      },
      (values) => {
        if (config.require_category && !values.category) return "Choose a category.";
        const raw = response.text;
        const entry = existing || { id: ++correctionSeq };
        Object.assign(entry, {
          response: response.id,
          u16Start: span.start,
          u16End: span.end,
          start: codePointIndex(raw, span.start),
          end: codePointIndex(raw, span.end),
          original_text: raw.slice(span.start, span.end),
          corrected_text: values.corrected_text,
          category: values.category,
          comment: values.comment,
        });
        if (!existing) items.push(entry);
        items.sort((a, b) => a.response - b.response || a.u16Start - b.u16Start);
        window.getSelection()?.removeAllRanges();
        lastSpan = null;
        renderList();
        renderResponseBodies();
        return null;
      },
    );
  }
  function openForSelection() {
    const span = selectedSpan() || lastSpan;
    if (!span) {
      showStatus("warn", "Select some text in a response first (with the mouse, or Shift+arrows in its raw-text box).");
      return;
    }
    if (overlaps(span, null)) {
      showStatus("warn", "That span overlaps a correction you already made. Edit or remove that one instead.");
      return;
    }
    clearStatus();
    open(span, null);
  }
  function edit(item) {
    open({ response: item.response, start: item.u16Start, end: item.u16End }, item);
  }
  function remove(item) {
    items.splice(items.indexOf(item), 1);
    renderList();
    renderResponseBodies();
  }
  renderList();
  return {
    question,
    el,
    title,
    openForSelection,
    corrections: () => items,
    onSelection: (span) => {
      correctButton.disabled = !span;
    },
    complete: () => true,
    focus: () => correctButton.focus(),
    answer: () => ({
      question: question.id,
      corrections: items.map(({ response, start, end, original_text, corrected_text, category, comment }) => ({
        response,
        start,
        end,
        original_text,
        corrected_text,
        category,
        comment,
      })),
    }),
  };
}

function toggleRaw() {
  rawVisible = !rawVisible;
  if (!current) return;
  for (const raw of current.raws.values()) raw.hidden = !rawVisible;
  for (const button of app.querySelectorAll(".kind-correction [aria-pressed]")) button.setAttribute("aria-pressed", String(rawVisible));
  if (!rawVisible) return;
  const first = current.raws.values().next().value;
  if (!first) return;
  // Keyboard selection starts at the beginning of response A, every time the boxes open.
  first.setSelectionRange(0, 0);
  first.scrollTop = 0;
  first.focus();
}

const COMPONENTS = {
  pairwise: pairwiseComponent,
  ranking: rankingComponent,
  rating: ratingComponent,
  correction: correctionComponent,
};

// Open the form as soon as a mouse gesture ends with a new selection inside one
// response (wherever the pointer is released: a drag often ends outside the text).
let spanAtMouseDown = null;
document.addEventListener("mousedown", (event) => {
  spanAtMouseDown = event.target.closest?.("dialog") ? "dialog" : JSON.stringify(selectedSpan());
});
document.addEventListener("mouseup", () => {
  if (!current || correctionDialog?.isOpen || spanAtMouseDown === "dialog") return;
  setTimeout(() => {
    const span = selectedSpan();
    const component = current && current.components.find((c) => c.openForSelection);
    if (span && component && JSON.stringify(span) !== spanAtMouseDown) component.openForSelection();
  }, 0);
});

// --- submit and skip ------------------------------------------------------------------------------------

function retryMessage(attempt, total, error) {
  const why = error.status ? `the server answered ${error.status}` : "the connection failed";
  return `Not saved yet (${why}). Trying again, attempt ${attempt + 1} of ${total}… It will be saved once, never twice.`;
}

async function loadNext() {
  clearStatus();
  try {
    const { data } = await requestWithRetry(boot.urls.next, { method: "GET" }, (a, t, e) => showStatus("warn", retryMessage(a, t, e)));
    showNextFromSubmit(data.next, performance.now());
  } catch (error) {
    handleError(error, "load");
  }
}

function handleError(error, action) {
  const status = error instanceof RequestFailed ? error.status : 0;
  const detail = (error.body && error.body.detail) || error.message;
  const next = { label: "Next item", run: loadNext, focus: true };
  if (status === 401) {
    showStatus("error", "Your session ended. Sign in again; your answers on this page are not saved yet.", {
      label: "Sign in",
      run: () => window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`),
    });
  } else if (status === 410) {
    showStatus("error", "Your time on this item ran out and it went to another annotator, so these answers were not saved.", next);
  } else if (status === 409) {
    showStatus("error", `This item was already submitted or skipped (perhaps in another tab). ${detail}`, next);
  } else if (status === 404) {
    showStatus("error", "This item is no longer assigned to you.", next);
  } else if (status === 400) {
    const match = /^answers\[(\d+)\]/.exec(error.body.field || "");
    showStatus("error", `The answers were not accepted: ${detail}`);
    if (match && current) {
      const answered = current.components.filter((c) => c.answer());
      answered[Number(match[1])]?.focus();
    }
  } else {
    const what = action === "skip" ? "skip" : action === "load" ? "load the next item" : "save";
    showStatus(
      "error",
      `Could not ${what}: ${detail} Your answers are still here. Press Ctrl+Enter to try again; it will not be saved twice.`,
      action === "load" ? next : null,
    );
  }
}

// --- the missing-answers message -----------------------------------------------------------------------
// Titles are prompts that end in their own punctuation ("Rate each response."),
// so each is quoted without it. The message follows the answers as they are given
// and goes away as soon as nothing is missing.

let missingText = null;

function missingMessage(missing) {
  const names = missing.map((c) => `“${String(c.title).trim().replace(/[\s.,;:]+$/, "")}”`);
  const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : names[0];
  return `Please answer ${list}.`;
}

function showMissing(missing) {
  missingText = missingMessage(missing);
  showStatus("error", missingText);
}

function refreshMissing() {
  // Only while the message on screen is still ours (another status replaces it).
  if (missingText === null || statusEl.hidden || statusEl.textContent !== missingText) {
    missingText = null;
    return;
  }
  const missing = current ? current.components.filter((c) => !c.complete()) : [];
  if (!missing.length) {
    missingText = null;
    clearStatus();
  } else if (missingMessage(missing) !== missingText) {
    showMissing(missing);
  }
}

// Answers change through clicks, keys, inputs and drags handled by each question;
// look after those handlers have run.
for (const type of ["click", "change", "input", "keyup", "drop", "pointerup"]) {
  document.addEventListener(type, () => setTimeout(refreshMissing, 0), true);
}

async function submit() {
  if (goldPending) {
    const next = goldPending;
    showNextFromSubmit(next.next, performance.now());
    return;
  }
  if (!current || submitting) return;
  const missing = current.components.filter((c) => !c.complete());
  if (missing.length) {
    showMissing(missing);
    missing[0].focus();
    return;
  }
  // The set-up page frames this page as a preview (boot.preview): nothing is sent.
  if (boot.preview) {
    showStatus("ok", "Preview: every answer is given. Nothing was saved.");
    return;
  }
  const startedAt = performance.now();
  const assignment = current.assignment;
  const body = { answers: current.components.map((c) => c.answer()).filter(Boolean), time_spent_ms: elapsedMs() };
  submitting = true;
  app.setAttribute("aria-busy", "true");
  try {
    const { data } = await requestWithRetry(
      endpoint(boot.urls.submit, assignment.id),
      { method: "POST", body, headers: { "Idempotency-Key": current.key } },
      (attempt, total, error) => showStatus("warn", retryMessage(attempt, total, error)),
    );
    sessionStorage.removeItem(`ballot-idempotency-${assignment.id}`);
    ballot.doneCount += 1;
    const result = data.submitted;
    if (result.gold_answer !== undefined && result.gold_answer !== null) showGold(result.gold_answer, data);
    else showNextFromSubmit(data.next, startedAt, result.replayed ? "Saved (your earlier attempt had already reached the server)." : null);
  } catch (error) {
    handleError(error, "submit");
  } finally {
    submitting = false;
    app.setAttribute("aria-busy", "false");
  }
}

async function skip() {
  if (!current || submitting || goldPending) return;
  if (boot.preview) {
    showStatus("ok", "Preview: skipping would show the next item. Nothing was saved.");
    return;
  }
  const startedAt = performance.now();
  submitting = true;
  try {
    const { data } = await requestWithRetry(endpoint(boot.urls.skip, current.assignment.id), { method: "POST" }, (a, t, e) =>
      showStatus("warn", retryMessage(a, t, e)),
    );
    showNextFromSubmit(data.next, startedAt, "Skipped.");
  } catch (error) {
    handleError(error, "skip");
  } finally {
    submitting = false;
  }
}

// --- gold feedback ---------------------------------------------------------------------------------------

function describeGold(gold) {
  const answers = Array.isArray(gold) ? gold : gold && Array.isArray(gold.answers) ? gold.answers : null;
  if (!answers) return [JSON.stringify(gold)];
  const byPosition = new Map(current.responses.map((r) => [r.position, r]));
  const name = (key) => {
    const response = current.byId.get(key) || byPosition.get(key);
    return response ? letter(response.position) : String(key);
  };
  return answers.map((answer) => {
    const question = boot.questions.find((q) => q.id === answer.question || q.name === answer.question);
    const title = question ? question.prompt || question.name : String(answer.question);
    if ("chosen" in answer) {
      return answer.tie
        ? `${title} — tie between ${name(answer.chosen)} and ${name(answer.rejected)}`
        : `${title} — ${name(answer.chosen)} is better than ${name(answer.rejected)}${answer.strength ? ` (strength ${answer.strength})` : ""}`;
    }
    if ("ranking" in answer) {
      return `${title} — ${answer.ranking.map((g) => (Array.isArray(g) ? g : [g]).map(name).join(" = ")).join(" > ")}`;
    }
    if ("ratings" in answer) {
      return `${title} — ${answer.ratings.map((r) => `${name(r.response)} ${r.aspect}: ${r.value}`).join(", ")}`;
    }
    return `${title} — ${JSON.stringify(answer)}`;
  });
}

function showGold(gold, data) {
  goldPending = data;
  const panel = h(
    "section",
    { class: "card gold-feedback", "aria-labelledby": "gold-title" },
    h("h2", { id: "gold-title" }, "Saved. This was a check item — here is the expected answer"),
    h("ul", {}, describeGold(gold).map((line) => h("li", {}, line))),
    h("button", { type: "button", class: "button primary", id: "gold-continue", onclick: () => submit() }, "Continue ", h("kbd", {}, "Enter")),
  );
  app.prepend(panel);
  clearStatus();
  window.scrollTo(0, 0);
  document.getElementById("gold-continue").focus();
}

// --- keyboard ---------------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (shortcutsDialog.open || correctionDialog?.isOpen) return;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key === "Enter") {
    event.preventDefault();
    submit();
    return;
  }
  if (ctrl && (event.key === "s" || event.key === "S")) {
    event.preventDefault();
    skip();
    return;
  }
  // A text box of a closed dialog is not where the annotator types (the focus is on its way out).
  const editing = isEditable(event.target) && !event.target.closest?.("dialog:not([open])");
  if (ctrl || event.altKey || event.defaultPrevented || editing) return;
  if (event.key === "?") {
    event.preventDefault();
    shortcutsDialog.showModal();
    return;
  }
  if (!current || goldPending) return;
  const inRaw = event.target.classList?.contains("raw-box");
  const key = event.key.toLowerCase();
  if (key === "c" || (inRaw && event.key === "Enter")) {
    const component = current.components.find((c) => c.openForSelection);
    if (component) {
      event.preventDefault();
      component.openForSelection();
    }
    return;
  }
  if (key === "r" && !event.shiftKey && current.components.some((c) => c.openForSelection)) {
    event.preventDefault();
    toggleRaw();
    return;
  }
  if (inRaw) return;
  // Pairwise keys go to the pairwise question holding focus, else the first one.
  const focused = current.components.find((c) => c.handleKey && c.el.contains(event.target));
  const pairwise = focused || current.components.find((c) => c.handleKey);
  if (pairwise && pairwise.handleKey(event)) event.preventDefault();
});

document.getElementById("shortcuts-button").addEventListener("click", () => shortcutsDialog.showModal());

showAssignment(boot.assignment);
