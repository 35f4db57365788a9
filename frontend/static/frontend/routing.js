// The routing page: the budget curve comes from the routing API and is drawn by charts.js.
// Values from data are set with textContent only.
import { fetchData, lines } from "./charts.js";

const root = document.getElementById("routing");
const api = root.dataset.api;
const NAMES = { random: "random", gain: "(a) predicted gain", error: "(b) judge error", prior: "prior" };

async function curve() {
  const chart = document.getElementById("chart-curve");
  try {
    const data = await fetchData(api);
    const strategies = [...new Set(data.curve.map((p) => p.strategy))];
    const series = strategies.map((strategy) => {
      const points = data.curve.filter((p) => p.strategy === strategy).sort((a, b) => a.budget - b.budget);
      return {
        name: NAMES[strategy] || strategy,
        x: points.map((p) => 100 * p.budget),
        y: points.map((p) => (p.label_accuracy === null ? null : 100 * p.label_accuracy)),
      };
    });
    lines(chart, series, {
      xTitle: "human budget (%)",
      yTitle: "label accuracy (%)",
      empty: data.job ? "No item carries both a human and a judge label: the prior routed this job, with nothing to compare." : "No routing job yet.",
    });
  } catch (error) {
    chart.replaceChildren();
    const note = document.createElement("p");
    note.className = "chart-empty";
    note.textContent = `Could not load: ${error.message}`;
    chart.append(note);
  }
}

curve().finally(() => {
  root.dataset.ready = "1";
});
