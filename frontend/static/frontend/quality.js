// The quality page: every chart's data comes from the chart-data API and is drawn by charts.js.
// Values from data are set with textContent only.
import { bars, fetchData, lines } from "./charts.js";

const root = document.getElementById("quality");
const api = root.dataset.api;
const revealUsernames = root.dataset.revealUsernames === "1";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.append(td);
  return td;
}

function number(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function failed(element, error) {
  element.replaceChildren();
  const note = document.createElement("p");
  note.className = "chart-empty";
  note.textContent = `Could not load: ${error.message}`;
  element.append(note);
}

async function agreement() {
  const period = document.getElementById("agreement-period").value;
  const chart = document.getElementById("chart-agreement");
  try {
    const data = await fetchData(`${api}agreement/${period ? `?period=${encodeURIComponent(period)}` : ""}`);
    const body = document.querySelector("#agreement-table tbody");
    body.replaceChildren();
    for (const q of data.questions) {
      const row = document.createElement("tr");
      cell(row, q.question);
      cell(row, q.kind);
      cell(row, q.units, "num");
      cell(row, number(q.krippendorff_alpha), "num");
      cell(row, q.fleiss_kappa ? `${number(q.fleiss_kappa.kappa)} (${q.fleiss_kappa.raters_per_unit} raters)` : "–", "num");
      cell(row, q.cohen_kappa ? `${number(q.cohen_kappa.kappa)} (${q.cohen_kappa.pairs} pairs)` : "–", "num").dataset.cohen = "1";
      cell(row, q.note || "");
      body.append(row);
    }
    const series = [];
    for (const q of data.questions) {
      if (!q.series.length) continue;
      series.push({ name: `${q.question} (cumulative)`, x: q.series.map((p) => p.period), y: q.series.map((p) => p.alpha_cumulative) });
      series.push({ name: `${q.question} (per ${data.period})`, x: q.series.map((p) => p.period), y: q.series.map((p) => p.alpha) });
    }
    lines(chart, series, { xTitle: `${data.period} of the unit's last label`, yTitle: "Krippendorff's alpha", empty: "No unit has two human labels yet." });
  } catch (error) {
    failed(chart, error);
  }
}

function labelChart(container, title, series, options) {
  const box = document.createElement("div");
  box.className = "label-chart";
  const heading = document.createElement("h3");
  heading.textContent = title;
  const chart = document.createElement("div");
  chart.className = "chart";
  chart.dataset.chart = `labels-${title}`;
  box.append(heading, chart);
  container.append(box);
  bars(chart, series, options);
}

async function labels() {
  const container = document.getElementById("label-charts");
  try {
    const data = await fetchData(`${api}label-distributions/`);
    container.replaceChildren();
    for (const q of data.questions) {
      if (q.choice) {
        labelChart(container, `${q.question}: choice`, [
          { name: "human", x: q.choice.map((c) => c.label), y: q.choice.map((c) => c.human) },
          { name: "AI", x: q.choice.map((c) => c.label), y: q.choice.map((c) => c.ai) },
        ], { xTitle: "chosen response (position) or tie", yTitle: "judgements" });
        if (q.strength.length) {
          labelChart(container, `${q.question}: strength`, [
            { name: "strength", x: q.strength.map((c) => c.value), y: q.strength.map((c) => c.count) },
          ], { xTitle: "strength", yTitle: "judgements", xType: "category" });
        }
      }
      if (q.aspects) {
        labelChart(container, `${q.question}: ratings per aspect`, q.aspects.map((a) => ({
          name: a.aspect, x: a.values.map((v) => v.value), y: a.values.map((v) => v.count),
        })), { xTitle: "rating", yTitle: "answers", xType: "category" });
      }
      if (q.top_position) {
        labelChart(container, `${q.question}: position ranked first`, [
          { name: "first", x: q.top_position.map((c) => c.value), y: q.top_position.map((c) => c.count) },
        ], { xTitle: "response position", yTitle: "rankings" });
      }
    }
    if (!container.children.length) {
      const note = document.createElement("p");
      note.className = "chart-empty";
      note.textContent = "No labels yet.";
      container.append(note);
    }
  } catch (error) {
    failed(container, error);
  }
}

async function coverage() {
  const chart = document.getElementById("chart-coverage");
  try {
    const data = await fetchData(`${api}coverage/`);
    document.getElementById("coverage-summary").textContent =
      `${data.items} items, overlap ${data.overlap}: ${data.complete} complete, ${data.partial} partial, ${data.unlabelled} without labels.`;
    bars(chart, [{ name: "items", x: data.histogram.map((b) => String(b.annotations)), y: data.histogram.map((b) => b.items) }],
      { xTitle: "human annotations per item", yTitle: "items", xType: "category" });
  } catch (error) {
    failed(chart, error);
  }
}

async function throughput() {
  const chart = document.getElementById("chart-throughput");
  try {
    const data = await fetchData(`${api}throughput/`);
    lines(chart, [
      { name: "human", x: data.days, y: data.human },
      { name: "AI", x: data.days, y: data.ai },
    ], { xTitle: "day (UTC)", yTitle: "annotations", empty: "No annotations yet." });
  } catch (error) {
    failed(chart, error);
  }
}

async function annotators() {
  const body = document.querySelector("#annotator-table tbody");
  try {
    const data = await fetchData(`${api}annotators/`);
    document.getElementById("annotators-note").textContent =
      `Flagged below the project's quality threshold (${data.quality_threshold}).` +
      (data.reliability_job ? ` Reliability from job #${data.reliability_job}.` : " No reliability job yet.");
    body.replaceChildren();
    for (const a of data.annotators) {
      const row = document.createElement("tr");
      if (a.flagged) row.className = "flagged";
      cell(row, a.annotator);
      if (revealUsernames) cell(row, a.username || "");
      cell(row, a.judgements, "num");
      cell(row, a.agreement_with_majority === null ? "–" : `${number(a.agreement_with_majority, 2)} (${a.agreement_units})`, "num");
      cell(row, a.gold_accuracy === null ? "–" : `${number(a.gold_accuracy, 2)} (${a.gold_items})`, "num");
      cell(row, number(a.median_seconds, 1), "num");
      cell(row, number(a.reliability, 2), "num");
      cell(row, a.reasons.join("; "));
      body.append(row);
    }
    if (!data.annotators.length) {
      const row = document.createElement("tr");
      cell(row, "No human annotations yet.").colSpan = 8;
      body.append(row);
    }
  } catch (error) {
    body.replaceChildren();
    const row = document.createElement("tr");
    cell(row, `Could not load: ${error.message}`).colSpan = 8;
    body.append(row);
  }
}

async function profiles() {
  const chart = document.getElementById("chart-profiles");
  const select = document.getElementById("profile-field");
  try {
    const data = await fetchData(`${api}profile-breakdown/`);
    document.getElementById("profiles-note").textContent =
      `${data.annotators} annotators; values held by fewer than ${data.min_group_size} are pooled as "other/hidden".`;
    select.replaceChildren();
    for (const field of data.fields) {
      const option = document.createElement("option");
      option.value = field.field;
      option.textContent = field.field.replaceAll("_", " ");
      select.append(option);
    }
    const draw = () => {
      const field = data.fields.find((f) => f.field === select.value) || data.fields[0];
      if (!field) return;
      bars(chart, [
        { name: "annotators", x: field.values.map((v) => v.value), y: field.values.map((v) => v.annotators) },
        { name: "judgements", x: field.values.map((v) => v.value), y: field.values.map((v) => v.judgements) },
      ], { xTitle: field.field.replaceAll("_", " "), yTitle: "count", empty: "No annotators yet." });
    };
    select.addEventListener("change", draw);
    draw();
  } catch (error) {
    failed(chart, error);
  }
}

document.getElementById("agreement-period").addEventListener("change", agreement);
await Promise.all([agreement(), labels(), coverage(), throughput(), annotators(), profiles()]);
root.dataset.ready = "1";
