// The explanations pages: the training curve of an explanation and a feature's effect by
// annotator group, both from the explanations API and drawn by charts.js. Values from
// data reach the page through Plotly's text and textContent only.
import { fetchData, intervals, lines } from "./charts.js";

function failed(chart, error) {
  chart.replaceChildren();
  const note = document.createElement("p");
  note.className = "chart-empty";
  note.textContent = `Could not load: ${error.message}`;
  chart.append(note);
}

async function history(root) {
  const chart = document.getElementById("chart-history");
  if (!chart || !root.dataset.job) return;
  try {
    const data = await fetchData(`${root.dataset.api}${root.dataset.job}/`);
    const epochs = data.history.map((row) => row.epoch);
    lines(chart, [
      { name: "train", x: epochs, y: data.history.map((row) => row.train_nmse) },
      { name: "held out", x: epochs, y: data.history.map((row) => row.held_out_nmse) },
    ], { xTitle: "epoch", yTitle: "normalised MSE", empty: "No training history." });
  } catch (error) {
    failed(chart, error);
  }
}

async function groups(root) {
  const chart = document.getElementById("chart-groups");
  if (!chart) return;
  try {
    const data = await fetchData(root.dataset.groupsApi);
    const rows = data.group_effects.map((g) => ({
      label: `${g.field} = ${g.value}`,
      value: g.coef,
      low: g.ci_low,
      high: g.ci_high,
      text: `${g.n_annotators} annotators, ${g.n_judgements} judgements, interaction p ${g.interaction_p === null ? "–" : g.interaction_p.toFixed(3)}`,
    }));
    intervals(chart, rows, {
      xTitle: "coefficient (standardised)",
      reference: data.coef,
      empty: "No annotator group is large enough to show.",
    });
  } catch (error) {
    failed(chart, error);
  }
}

const list = document.getElementById("explanations");
const feature = document.getElementById("feature");
const ready = [];
if (list) ready.push(history(list));
if (feature) ready.push(groups(feature));
Promise.allSettled(ready).finally(() => {
  (list || feature).dataset.ready = "1";
});
