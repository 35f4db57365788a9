// The set-up page: project settings, the question builder and two live previews.
//
// The questions live in `state` (drawn from the "setup-boot" JSON the server
// rendered) and go back to the server as one JSON field when the form is saved;
// the server validates and answers errors by path (questions[1].config.aspects),
// which are placed next to that field here. Both previews are rendered by the
// server: the instructions by the home page's sanitising Markdown renderer, the
// labeling page by label.html/label.js themselves, framed, with a sample item.
// Everything users typed reaches the DOM as text or as a form value.

const boot = JSON.parse(document.getElementById("setup-boot").textContent);
const form = document.getElementById("setup-form");
const list = document.getElementById("question-list");
const previewForm = document.getElementById("label-preview-form");
const previewFrame = document.getElementById("label-preview");
const previewNote = document.getElementById("label-preview-note");
const instructions = document.getElementById("id_instructions");
const instructionsPreview = document.getElementById("instructions-preview");

const KIND_LABELS = { pairwise: "Pairwise", ranking: "Ranking", rating: "Rating", correction: "Correction" };
const DEFAULT_CATEGORIES = ["factual", "reasoning", "instruction", "safety", "style", "other"];
const DEFAULT_CONFIGS = {
  pairwise: () => ({ allow_tie: true, strength_scale: { min: 1, max: 3 } }),
  ranking: () => ({ allow_ties: true }),
  rating: () => ({ aspects: [{ name: "helpfulness", description: "" }], scale: { min: 1, max: 5, step: 1 } }),
  correction: () => ({ categories: DEFAULT_CATEGORIES.slice(), require_category: false }),
};

const state = { questions: (boot.questions || []).map((q) => ({ ...q, config: { ...(q.config || {}) } })), errors: boot.errors || [] };
window.ballotSetup = state;

let uid = 0;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function csrfToken() {
  const input = form.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A number typed in a field; what is not a number goes to the server as typed, which names the field.
function numberOrRaw(input) {
  const raw = input.value.trim();
  if (raw === "") return null;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw;
}

function uniqueName(kind) {
  const taken = new Set(state.questions.map((q) => q.name));
  if (!taken.has(kind)) return kind;
  for (let n = 2; ; n += 1) if (!taken.has(`${kind}-${n}`)) return `${kind}-${n}`;
}

// --- one field with its label, help and error slot -------------------------------------------------

function field(labelText, input, path, help) {
  const id = input.id || `q-field-${(uid += 1)}`;
  input.id = id;
  if (input.type === "checkbox") {
    return h("div", { class: "setup-field checkbox-field", dataset: { errorSlot: path } }, h("label", { class: "check", for: id }, input, " ", labelText), help ? h("small", { class: "help" }, help) : null);
  }
  return h("div", { class: "setup-field", dataset: { errorSlot: path } }, h("label", { for: id }, labelText), input, help ? h("small", { class: "help" }, help) : null);
}

function textInput(value, oninput, attrs = {}) {
  return h("input", { type: "text", value: value ?? "", oninput, ...attrs });
}

function numberInput(value, oninput, attrs = {}) {
  return h("input", { type: "number", value: value ?? "", oninput, inputmode: "decimal", ...attrs });
}

function checkbox(checked, onchange) {
  return h("input", { type: "checkbox", checked, onchange });
}

// --- the kind-specific parts ---------------------------------------------------------------------------

function pairwiseFields(question, changed) {
  const config = question.config;
  const strength = config.strength_scale;
  const min = numberInput(strength ? strength.min : 1, () => setStrength(), { step: 1, "aria-label": "Strength scale minimum", class: "strength-min" });
  const max = numberInput(strength ? strength.max : 3, () => setStrength(), { step: 1, "aria-label": "Strength scale maximum", class: "strength-max" });
  function setStrength() {
    config.strength_scale = useStrength.checked ? { ...(config.strength_scale || {}), min: numberOrRaw(min), max: numberOrRaw(max) } : null;
    min.disabled = max.disabled = !useStrength.checked;
    changed();
  }
  const useStrength = checkbox(Boolean(strength), setStrength);
  useStrength.classList.add("use-strength");
  min.disabled = max.disabled = !strength;
  const allowTie = checkbox(config.allow_tie !== false, () => {
    config.allow_tie = allowTie.checked;
    changed();
  });
  allowTie.classList.add("allow-tie");
  return [
    field("Allow a tie", allowTie, "config.allow_tie"),
    field("Ask how much better (strength)", useStrength, "config.strength_scale.enabled"),
    h("div", { class: "setup-field inline-pair", dataset: { errorSlot: "config.strength_scale" } }, h("span", { class: "label-like" }, "Strength scale"), h("span", { class: "pair" }, min, h("span", {}, "to"), max)),
  ];
}

function rankingFields(question, changed) {
  const config = question.config;
  const allowTies = checkbox(config.allow_ties !== false, () => {
    config.allow_ties = allowTies.checked;
    changed();
  });
  allowTies.classList.add("allow-ties");
  return [field("Allow ties between responses", allowTies, "config.allow_ties", "Annotators order every response of the item, best first.")];
}

function ratingFields(question, changed, rerender) {
  const config = question.config;
  if (!Array.isArray(config.aspects)) config.aspects = [];
  config.aspects = config.aspects.map((a) => (typeof a === "string" ? { name: a, description: "" } : a));
  const scale = { min: 1, max: 5, step: 1, ...(Array.isArray(config.scale) ? { min: config.scale[0], max: config.scale[1] } : config.scale || {}) };
  config.scale = scale;
  const rows = h("ul", { class: "aspect-list" });
  config.aspects.forEach((aspect, index) => {
    rows.append(
      h(
        "li",
        { class: "aspect-row", dataset: { errorSlot: `config.aspects[${index}]` } },
        textInput(aspect.name, (event) => {
          aspect.name = event.target.value;
          changed();
        }, { "aria-label": `Aspect ${index + 1} name`, class: "aspect-name", placeholder: "name" }),
        textInput(aspect.description, (event) => {
          aspect.description = event.target.value;
          changed();
        }, { "aria-label": `Aspect ${index + 1} description`, class: "aspect-description", placeholder: "description (optional)" }),
        h("button", { type: "button", class: "button small danger", "aria-label": `Remove aspect ${index + 1}`, onclick: () => {
          config.aspects.splice(index, 1);
          rerender();
        } }, "Remove"),
      ),
    );
  });
  const scaleInput = (key, label) =>
    numberInput(scale[key], (event) => {
      scale[key] = key === "step" && event.target.value.trim() === "" ? null : numberOrRaw(event.target);
      changed();
    }, { "aria-label": label, class: `scale-${key}`, step: "any" });
  return [
    h(
      "div",
      { class: "setup-field", dataset: { errorSlot: "config.aspects" } },
      h("span", { class: "label-like" }, "Aspects"),
      rows,
      h("button", { type: "button", class: "button small add-aspect", onclick: () => {
        config.aspects.push({ name: "", description: "" });
        rerender();
        const inputs = list.querySelectorAll(`li[data-index="${state.questions.indexOf(question)}"] .aspect-name`);
        if (inputs.length) inputs[inputs.length - 1].focus();
      } }, "Add aspect"),
    ),
    h(
      "div",
      { class: "setup-field inline-pair", dataset: { errorSlot: "config.scale" } },
      h("span", { class: "label-like" }, "Scale"),
      h("span", { class: "pair" }, scaleInput("min", "Scale minimum"), h("span", {}, "to"), scaleInput("max", "Scale maximum"), h("span", {}, "step"), scaleInput("step", "Scale step (empty: continuous)")),
    ),
  ];
}

function correctionFields(question, changed) {
  const config = question.config;
  if (!Array.isArray(config.categories)) config.categories = DEFAULT_CATEGORIES.slice();
  const categories = textInput(config.categories.join(", "), (event) => {
    config.categories = event.target.value.split(",").map((c) => c.trim()).filter(Boolean);
    changed();
  }, { class: "categories" });
  const requireCategory = checkbox(Boolean(config.require_category), () => {
    config.require_category = requireCategory.checked;
    changed();
  });
  return [
    field("Error categories", categories, "config.categories", "Separated by commas."),
    field("Every correction needs a category", requireCategory, "config.require_category"),
  ];
}

const KIND_FIELDS = { pairwise: pairwiseFields, ranking: rankingFields, rating: ratingFields, correction: correctionFields };

// --- the list -------------------------------------------------------------------------------------------

function questionCard(question, index) {
  const changed = () => schedulePreview();
  const rerender = () => {
    render();
    schedulePreview();
  };
  const kind = h(
    "select",
    { class: "question-kind", onchange: (event) => {
      question.kind = event.target.value;
      question.config = DEFAULT_CONFIGS[question.kind]();
      rerender();
    } },
    Object.entries(KIND_LABELS).map(([value, label]) => h("option", { value, selected: value === question.kind }, label)),
  );
  kind.value = question.kind;
  const name = textInput(question.name, (event) => {
    question.name = event.target.value;
    changed();
  }, { class: "question-name", maxlength: 64, spellcheck: "false" });
  const prompt = textInput(question.prompt, (event) => {
    question.prompt = event.target.value;
    changed();
  }, { class: "question-prompt", maxlength: 500 });
  const required = checkbox(question.required !== false, () => {
    question.required = required.checked;
    changed();
  });
  const move = (delta) => {
    const target = index + delta;
    if (target < 0 || target >= state.questions.length) return;
    state.questions.splice(index, 1);
    state.questions.splice(target, 0, question);
    state.errors = [];
    rerender();
    const buttons = list.querySelectorAll(`li[data-index="${target}"] .move-${delta < 0 ? "up" : "down"}`);
    if (buttons.length && !buttons[0].disabled) buttons[0].focus();
  };
  const remove = () => {
    const warning = question.id ? " Answers already given to it are deleted with it when you save." : "";
    if (!window.confirm(`Delete question ${index + 1} (${question.name || question.kind})?${warning}`)) return;
    state.questions.splice(index, 1);
    state.errors = [];
    rerender();
  };
  return h(
    "li",
    { class: "question-card", dataset: { index: String(index), kind: question.kind, errorSlot: "" } },
    h(
      "div",
      { class: "question-card-head" },
      h("h3", {}, `Question ${index + 1}`, question.id ? null : h("span", { class: "badge" }, "new")),
      h(
        "div",
        { class: "question-tools" },
        h("button", { type: "button", class: "button small move-up", disabled: index === 0, onclick: () => move(-1), "aria-label": `Move question ${index + 1} up` }, "↑ Up"),
        h("button", { type: "button", class: "button small move-down", disabled: index === state.questions.length - 1, onclick: () => move(1), "aria-label": `Move question ${index + 1} down` }, "↓ Down"),
        h("button", { type: "button", class: "button small danger delete-question", onclick: remove, "aria-label": `Delete question ${index + 1}` }, "Delete"),
      ),
    ),
    h(
      "div",
      { class: "form-grid two" },
      field("Kind", kind, "kind"),
      field("Name", name, "name", "Letters, digits and dashes; exports and imports refer to it."),
      field("Question shown to annotators", prompt, "prompt"),
      field("Required", required, "required"),
      KIND_FIELDS[question.kind] ? KIND_FIELDS[question.kind](question, changed, rerender) : null,
    ),
  );
}

// An error's path inside its question ("config.aspects[0].name"); the slot is the
// longest path prefix that has one, the card itself as the last resort.
function slotFor(card, path) {
  let rest = path;
  for (;;) {
    const slot = Array.from(card.querySelectorAll("[data-error-slot]")).find((el) => el.dataset.errorSlot === rest);
    if (slot) return slot;
    if (!rest) return card;
    const cut = Math.max(rest.lastIndexOf("."), rest.lastIndexOf("["));
    rest = cut > 0 ? rest.slice(0, cut) : "";
  }
}

function showErrors() {
  const general = document.getElementById("question-errors");
  general.replaceChildren();
  for (const error of state.errors) {
    const match = /^questions\[(\d+)\]\.?(.*)$/.exec(error.field || "");
    const card = match ? list.querySelector(`li[data-index="${match[1]}"]`) : null;
    const message = h("p", { class: "field-error", dataset: { errorFor: error.field || "" } }, error.detail);
    if (!card) {
      general.append(message);
      continue;
    }
    const slot = slotFor(card, match[2]);
    if (slot === card) card.querySelector(".question-card-head").after(message);
    else slot.append(message);
    for (const input of slot.querySelectorAll("input, select")) input.setAttribute("aria-invalid", "true");
  }
}

function render() {
  list.replaceChildren(...state.questions.map((question, index) => questionCard(question, index)));
  showErrors();
}

document.getElementById("add-question").addEventListener("click", () => {
  const kind = document.getElementById("new-question-kind").value;
  state.questions.push({ kind, name: uniqueName(kind), prompt: "", required: true, config: DEFAULT_CONFIGS[kind]() });
  render();
  schedulePreview();
  const cards = list.querySelectorAll(".question-card");
  cards[cards.length - 1].querySelector(".question-name").focus();
});

form.addEventListener("submit", () => {
  document.getElementById("questions-json").value = JSON.stringify(state.questions);
});

// --- previews -------------------------------------------------------------------------------------------

function refreshPreview() {
  previewForm.elements.questions.value = JSON.stringify(state.questions);
  previewForm.elements.name.value = document.getElementById("id_name").value;
  previewForm.elements.instructions.value = instructions.value;
  previewForm.submit();
}
const schedulePreview = debounce(refreshPreview, 400);

// The frame is as tall as the page in it, so the page scrolls, not the frame; the
// labeling page grows as questions are answered (strength buttons, corrections).
let frameObserver = null;
function fitFrame() {
  const doc = previewFrame.contentDocument;
  if (doc && doc.documentElement) previewFrame.style.height = `${Math.max(420, doc.documentElement.scrollHeight + 8)}px`;
}

previewFrame.addEventListener("load", () => {
  const doc = previewFrame.contentDocument;
  if (!doc || !doc.body) return;
  if (frameObserver) frameObserver.disconnect();
  frameObserver = new ResizeObserver(fitFrame);
  frameObserver.observe(doc.body);
  const bootEl = doc.getElementById("ballot-boot");
  const leftOut = bootEl ? JSON.parse(bootEl.textContent).preview_left_out || [] : [];
  previewNote.hidden = leftOut.length === 0;
  previewNote.textContent = leftOut.length
    ? `Left out of the preview until their settings are valid: question ${leftOut.map((i) => i + 1).join(", ")}.`
    : "";
  fitFrame();
  document.dispatchEvent(new CustomEvent("setup:preview-loaded"));
});

async function refreshInstructions() {
  const body = new URLSearchParams({ instructions: instructions.value });
  try {
    const response = await fetch(boot.urls.instructions_preview, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body,
    });
    if (!response.ok) throw new Error(`The server answered ${response.status}.`);
    const { html } = await response.json();
    // Not data but the server's sanitised rendering (nh3, the home page's own renderer).
    const parsed = new DOMParser().parseFromString(html, "text/html");
    instructionsPreview.replaceChildren(...parsed.body.childNodes);
    if (!instructions.value.trim()) instructionsPreview.replaceChildren(h("p", { class: "muted" }, "Nothing yet."));
  } catch (error) {
    instructionsPreview.replaceChildren(h("p", { class: "field-error" }, `No preview: ${error.message}`));
  }
}
const scheduleInstructions = debounce(refreshInstructions, 300);

instructions.addEventListener("input", () => {
  scheduleInstructions();
  schedulePreview();
});
document.getElementById("id_name").addEventListener("input", schedulePreview);

render();
refreshInstructions();
refreshPreview();
