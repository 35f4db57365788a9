// The jobs page: live progress of queued and running jobs (polling the jobs API), cancel and
// retry, and launch forms built server-side from the job-kind registry. A form is posted as
// JSON to the jobs API; its 400 names `params.<key>`, shown next to that key's input.
// Values from data are set with textContent only.
import { RequestFailed, requestWithRetry } from "./net.js";

const POLL_MS = 1500;
const ACTIVE = new Set(["queued", "running"]);
const root = document.getElementById("jobs");
const api = root.dataset.api;
const live = document.getElementById("jobs-live");
let timer = null;

function stamp(cell, value) {
  cell.replaceChildren();
  if (!value) {
    cell.textContent = "–";
    return;
  }
  const time = document.createElement("time");
  time.dateTime = value;
  const date = new Date(value);
  const pad = (n) => String(n).padStart(2, "0");
  time.textContent = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  cell.append(time);
}

function render(row, job) {
  row.dataset.status = job.status;
  const badge = row.querySelector("[data-field=status]");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  const bar = row.querySelector("[data-field=progress]");
  bar.value = Math.round(100 * (job.progress || 0));
  bar.textContent = `${bar.value}%`;
  row.querySelector("[data-field=message]").textContent = job.status === "failed" ? (job.error || "").slice(0, 160) : job.message || "";
  stamp(row.querySelector("[data-field=started_at]"), job.started_at);
  stamp(row.querySelector("[data-field=finished_at]"), job.finished_at);
  row.querySelector("[data-action=cancel]").hidden = !ACTIVE.has(job.status);
  row.querySelector("[data-action=retry]").hidden = !(job.status === "failed" || job.status === "cancelled");
}

function activeRows() {
  return [...root.querySelectorAll("tr[data-job]")].filter((row) => ACTIVE.has(row.dataset.status));
}

async function poll() {
  timer = null;
  const rows = activeRows();
  await Promise.all(
    rows.map(async (row) => {
      try {
        const { data } = await requestWithRetry(`${api}${row.dataset.job}/`, { method: "GET" });
        render(row, data);
      } catch (error) {
        live.textContent = `Could not refresh job ${row.dataset.job}: ${error.message}`;
      }
    }),
  );
  schedule();
}

function schedule() {
  const count = activeRows().length;
  live.textContent = count ? `Watching ${count} active job${count > 1 ? "s" : ""}…` : "";
  if (count && timer === null) timer = setTimeout(poll, POLL_MS);
}

root.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr[data-job]");
  button.disabled = true;
  try {
    const { data } = await requestWithRetry(`${api}${row.dataset.job}/${button.dataset.action}/`, { method: "POST" });
    render(row, data);
    schedule();
  } catch (error) {
    live.textContent = `Job ${row.dataset.job}: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

// ------------------------------------------------------------------------------ launch forms

function valueOf(param) {
  const input = param.querySelector("input, select, textarea");
  const widget = param.dataset.widget;
  const nullable = param.dataset.nullable === "1";
  const raw = input.type === "checkbox" ? null : input.value.trim();
  if (widget === "checkbox") return { value: input.checked };
  if (widget === "list") return { value: raw.split(",").map((s) => s.trim()).filter(Boolean) };
  if (raw === "") return nullable ? { value: null } : { omit: true };
  if (widget === "number") {
    const number = Number(raw);
    // Text that is no number goes as typed, so the API's 400 names the field.
    return { value: Number.isFinite(number) ? number : raw };
  }
  if (widget === "json") {
    try {
      return { value: JSON.parse(raw) };
    } catch {
      return { value: raw };
    }
  }
  return { value: raw };
}

function clearErrors(form) {
  for (const note of form.querySelectorAll("[data-error-for]")) {
    note.textContent = "";
    note.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function showError(form, field, message) {
  const key = (field || "").replace(/^params\./, "").split(".")[0];
  let note = key ? form.querySelector(`[data-error-for="${CSS.escape(key)}"]`) : null;
  if (!note) note = form.querySelector('[data-error-for="form"]');
  note.textContent = message;
  note.hidden = false;
  const param = note.closest("[data-param]");
  if (param) {
    const input = param.querySelector("input, select, textarea");
    input.setAttribute("aria-invalid", "true");
    const folded = param.closest("details.selection");
    if (folded) folded.open = true;
    input.focus();
  }
}

for (const form of root.querySelectorAll("form.launch-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const params = {};
    for (const param of form.querySelectorAll("[data-param]")) {
      const { value, omit } = valueOf(param);
      if (!omit) params[param.dataset.param] = value;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { data } = await requestWithRetry(api, { method: "POST", body: { kind: form.dataset.kind, params } });
      // The server renders the new row (with who launched it); polling goes on from there.
      window.location.assign(`${window.location.pathname}?launched=${data.id}#job-${data.id}`);
    } catch (error) {
      if (error instanceof RequestFailed && error.body && (error.body.errors || []).length) {
        for (const item of error.body.errors) showError(form, item.field, item.detail);
      } else {
        showError(form, error.body ? error.body.field : null, error.message);
      }
      button.disabled = false;
    }
  });
}

schedule();
