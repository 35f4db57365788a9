// The judges page works without scripts; this draws each judge's record per version from
// GET /api/v1/projects/<id>/judges/<judge>/stats/ through charts.js. Values from data are
// set with textContent only.
import { bars, fetchData } from "./charts.js";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.append(td);
}

function share(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

async function draw(card) {
  const chart = card.querySelector(".judge-chart");
  const body = card.querySelector(".judge-stats tbody");
  try {
    const data = await fetchData(chart.dataset.stats);
    body.replaceChildren();
    for (const v of data.versions) {
      const row = document.createElement("tr");
      cell(row, v.version);
      cell(row, v.verdicts, "num");
      cell(row, v.labels, "num");
      cell(row, v.ties, "num");
      cell(row, v.abstentions, "num");
      cell(row, share(v.position_consistency), "num");
      cell(row, v.compared_with_humans ? `${share(v.human_agreement)} of ${v.compared_with_humans}` : "–", "num");
      body.append(row);
    }
    if (!data.versions.length) {
      const row = document.createElement("tr");
      cell(row, "No verdicts yet: label items or test the judge.");
      row.firstChild.colSpan = 7;
      body.append(row);
    }
    const x = data.versions.map((v) => v.version);
    bars(
      chart,
      [
        { name: "agreement with humans", x, y: data.versions.map((v) => v.human_agreement) },
        { name: "position consistency", x, y: data.versions.map((v) => v.position_consistency) },
      ],
      { yTitle: "share", yRange: [0, 1], empty: "No verdicts yet." },
    );
    chart.dataset.drawn = "1";
  } catch (error) {
    chart.replaceChildren();
    const note = document.createElement("p");
    note.className = "chart-empty";
    note.textContent = `Could not load: ${error.message}`;
    chart.append(note);
  }
}

for (const card of document.querySelectorAll(".judge-card")) draw(card);
