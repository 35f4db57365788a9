// The import page: upload, see the detected format, the first parsed items and the bad
// lines, then confirm; nothing is written before the confirmation.
//
// Uploads go through XMLHttpRequest for its upload progress events; once the bytes
// are sent the page says the server is processing. The confirmation sends the same
// file again (the server keeps nothing between the two steps). All data from the
// file reaches the DOM as text.

const boot = JSON.parse(document.getElementById("import-boot").textContent);
const form = document.getElementById("import-form");
const fileInput = document.getElementById("import-file");
const progressBox = document.getElementById("upload-progress");
const bar = document.getElementById("upload-bar");
const statusEl = document.getElementById("upload-status");
const previewSection = document.getElementById("import-preview");
const resultSection = document.getElementById("import-result");
const confirmButton = document.getElementById("import-confirm");
const checkButton = document.getElementById("import-check");

const state = { busy: false, preview: null };
window.ballotImport = state;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const letter = (position) => (position < 26 ? String.fromCharCode(65 + position) : `R${position + 1}`);

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function clearFieldErrors() {
  for (const el of form.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
}

function fieldError(name, detail) {
  const slot = form.querySelector(`.field-error[data-error-for="${name}"]`);
  if (!slot) return false;
  slot.textContent = detail;
  slot.hidden = false;
  return true;
}

function describeError(entry) {
  if (entry.line) return `Line ${entry.line}: ${entry.detail}`;
  return entry.field ? `${entry.field}: ${entry.detail}` : entry.detail;
}

// POST the form's file and options; resolves with {status, data}. Upload progress
// is shown while the bytes go out, then "processing" until the server answers.
function send(url, verb) {
  const data = new FormData(form);
  if (!document.getElementById("import-skip-invalid").checked) data.delete("skip_invalid");
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    progressBox.hidden = false;
    bar.value = 0;
    bar.max = 100;
    statusEl.textContent = `Uploading ${formatBytes(fileInput.files[0].size)}…`;
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((100 * event.loaded) / event.total);
      bar.value = percent;
      statusEl.textContent = `Uploading: ${percent}% of ${formatBytes(event.total)}`;
    };
    xhr.upload.onload = () => {
      // An indeterminate bar: the server now reads every line.
      bar.removeAttribute("value");
      statusEl.textContent = `Uploaded; the server is ${verb}…`;
    };
    xhr.onload = () => resolve({ status: xhr.status, data: xhr.response || {} });
    xhr.onerror = () => reject(new Error("The connection failed; check it and try again."));
    xhr.send(data);
  });
}

function showPreview(data) {
  state.preview = data;
  const skipInvalid = document.getElementById("import-skip-invalid").checked;
  const summary = [
    h("span", {}, "Detected format: "),
    h("strong", { id: "detected-format" }, data.format),
    ` · ${data.lines} line(s), ${data.items} item(s), ${data.labels} label(s)`,
    data.invalid_count ? ` · ${data.invalid_count} bad line(s)` : "",
  ];
  document.getElementById("import-summary").replaceChildren(...summary);
  const errorsBox = document.getElementById("import-errors");
  errorsBox.hidden = data.invalid_count === 0;
  document.getElementById("import-error-list").replaceChildren(...data.invalid_lines.map((entry) => h("li", { dataset: { line: String(entry.line) } }, describeError(entry))));
  const more = document.getElementById("import-errors-more");
  more.hidden = data.invalid_count <= data.invalid_lines.length && skipInvalid;
  more.textContent =
    (data.invalid_count > data.invalid_lines.length ? `The first ${data.invalid_lines.length} of ${data.invalid_count} are shown. ` : "") +
    (skipInvalid ? "" : "Tick “Leave bad lines out” to import the rest, or fix the file: as it is, the import stops at them.");
  const items = document.getElementById("import-items");
  items.replaceChildren(
    ...data.preview.map((item) =>
      h(
        "article",
        { class: "preview-item", dataset: { line: String(item.line) } },
        h("h3", {}, `Line ${item.line} · ${item.external_id}`, item.is_gold ? " · gold" : ""),
        h("p", { class: "prompt" }, h("strong", {}, "Prompt: "), item.prompt),
        item.turns > 1 ? h("p", { class: "help" }, `${item.turns} messages in the conversation; the last one from the user is shown.`) : null,
        h("ol", { class: "responses" }, item.responses.map((text, position) => h("li", { class: "response" }, h("strong", {}, `Response ${letter(position)}: `), text))),
        item.labels.length
          ? h("ul", { class: "labels" }, item.labels.map((label) => h("li", {}, `${label.annotator} (${label.source}): ${label.answers.join("; ") || "no answers"}`)))
          : h("p", { class: "help" }, "No labels."),
        item.tags.length ? h("p", { class: "help" }, `Tags: ${item.tags.join(", ")}`) : null,
      ),
    ),
  );
  if (!data.preview.length) items.replaceChildren(h("p", { class: "help" }, "No line could be read."));
  previewSection.hidden = false;
  resultSection.hidden = true;
  confirmButton.disabled = data.items === 0;
  confirmButton.focus();
}

function showFailure(where, data, status) {
  const entries = data.errors && data.errors.length ? data.errors : [{ field: data.field, detail: data.detail || `The server answered ${status}.` }];
  if (where === "check" && entries.length === 1 && fieldError(entries[0].field, entries[0].detail)) return;
  const target = where === "check" ? previewSection : resultSection;
  const list = h("ul", { class: "error-list" }, entries.map((entry) => h("li", { dataset: { line: entry.line ? String(entry.line) : "" } }, describeError(entry))));
  if (where === "check") {
    document.getElementById("import-summary").replaceChildren(h("strong", { class: "error" }, data.detail || "The file could not be read."));
    document.getElementById("import-errors").hidden = true;
    document.getElementById("import-items").replaceChildren(list);
    confirmButton.disabled = true;
    target.hidden = false;
  } else {
    document.getElementById("import-result-stats").replaceChildren();
    document.getElementById("import-result-lines").replaceChildren(h("p", { class: "error" }, data.detail || "Nothing was imported."), list);
    target.hidden = false;
  }
}

const RESULT_FIELDS = [
  ["created", "Created"],
  ["existing", "Already there"],
  ["updated", "Updated"],
  ["conflicts", "Conflicts"],
  ["annotations", "Labels (annotations)"],
  ["skipped_invalid", "Bad lines left out"],
  ["duplicates", "Duplicate lines"],
  ["responses", "Responses"],
];

function showResult(data) {
  document.getElementById("import-result-stats").replaceChildren(
    ...RESULT_FIELDS.map(([key, label]) => h("div", { dataset: { stat: key } }, h("dt", {}, label), h("dd", {}, String(data[key] ?? 0)))),
  );
  const extra = [];
  if (data.questions_created && data.questions_created.length) extra.push(h("p", {}, `Questions added for the imported labels: ${data.questions_created.join(", ")}.`));
  if (data.invalid_lines && data.invalid_lines.length) extra.push(h("h3", {}, "Lines left out"), h("ul", { class: "error-list" }, data.invalid_lines.map((e) => h("li", {}, describeError(e)))));
  if (data.conflict_lines && data.conflict_lines.length) extra.push(h("p", {}, `Lines that conflicted with stored items: ${data.conflict_lines.join(", ")}.`));
  document.getElementById("import-result-lines").replaceChildren(...extra);
  resultSection.hidden = false;
  previewSection.hidden = true;
}

async function run(where) {
  if (state.busy) return;
  clearFieldErrors();
  const file = fileInput.files[0];
  if (!file) {
    fieldError("file", "Choose a JSONL file to import.");
    fileInput.focus();
    return;
  }
  if (file.size > boot.max_bytes) {
    fieldError("file", `The file is ${formatBytes(file.size)}; an import may hold at most ${formatBytes(boot.max_bytes)}.`);
    return;
  }
  state.busy = true;
  if (where === "check") state.preview = null;
  checkButton.disabled = confirmButton.disabled = true;
  try {
    const { status, data } = await send(where === "check" ? boot.urls.preview : boot.urls.run, where === "check" ? "reading the file" : "importing");
    statusEl.textContent = status < 300 ? (where === "check" ? "Checked; nothing written yet." : "Imported.") : "Stopped.";
    bar.value = 100;
    if (status >= 300) showFailure(where, data, status);
    else if (where === "check") showPreview(data);
    else showResult(data);
  } catch (error) {
    statusEl.textContent = error.message;
  } finally {
    state.busy = false;
    checkButton.disabled = false;
    if (where === "check" && state.preview && !previewSection.hidden) confirmButton.disabled = state.preview.items === 0;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  run("check");
});
confirmButton.addEventListener("click", () => run("import"));
document.getElementById("import-cancel").addEventListener("click", () => {
  previewSection.hidden = true;
  fileInput.value = "";
  fileInput.focus();
});
// A changed file or option makes the preview stale: check again before importing.
form.addEventListener("change", () => {
  previewSection.hidden = true;
  state.preview = null;
});
