// A job's results page: while the job is queued or running, poll it and reload once it ends;
// for scoring jobs (FiFA, suspect labels) draw the charts from the job-charts API via charts.js;
// for reliability jobs the reliability-against-agreement scatter from the job-reliability API.
import { binned, boxes, fetchData, scatter } from "./charts.js";

const POLL_MS = 1500;
const root = document.getElementById("job-detail");

async function watch() {
  try {
    const job = await fetchData(root.dataset.apiJob);
    const badge = document.getElementById("job-status");
    badge.textContent = job.status;
    badge.className = `badge ${job.status}`;
    const bar = document.getElementById("job-progress");
    bar.value = Math.round(100 * (job.progress || 0));
    document.getElementById("job-message").textContent = job.message || "";
    if (job.status !== "queued" && job.status !== "running") {
      window.location.reload();
      return;
    }
  } catch {
    // A lost answer: look again at the next tick.
  }
  setTimeout(watch, POLL_MS);
}

function failed(element, error) {
  element.replaceChildren();
  const note = document.createElement("p");
  note.className = "chart-empty";
  note.textContent = `Could not load: ${error.message}`;
  element.append(note);
}

async function charts() {
  const histogram = document.getElementById("chart-importance");
  try {
    const data = await fetchData(root.dataset.apiCharts);
    binned(histogram, data.importance.edges, [
      { name: "kept", counts: data.importance.kept },
      { name: "dropped", counts: data.importance.dropped },
    ], { xTitle: "importance", yTitle: "pairs", empty: "No scored pairs." });
    for (const group of data.groups) {
      const element = root.querySelector(`.chart[data-metric="${group.metric}"]`);
      if (!element) continue;
      boxes(element, [
        { name: "kept", ...group.kept },
        { name: "dropped", ...group.dropped },
      ], { yTitle: group.metric });
    }
  } catch (error) {
    failed(histogram, error);
  }
}

async function reliability() {
  const chart = document.getElementById("chart-reliability");
  try {
    const data = await fetchData(root.dataset.apiReliability);
    const series = data.fits.map((fit) => {
      const points = fit.annotators.filter((a) => a.agreement_with_majority !== null);
      return {
        name: fit.aspect ? `${fit.question} / ${fit.aspect}` : fit.question,
        x: points.map((a) => a.agreement_with_majority),
        y: points.map((a) => a.reliability),
        text: points.map((a) => `${a.annotator} (${a.votes} votes)`),
      };
    });
    scatter(chart, series, {
      xTitle: "agreement with the majority of the others",
      yTitle: "reliability",
      showLegend: series.length > 1,
      empty: "No annotator had a vote others could confirm.",
    });
  } catch (error) {
    failed(chart, error);
  }
}

if (root.dataset.status === "queued" || root.dataset.status === "running") setTimeout(watch, POLL_MS);
if (root.dataset.scored === "1") charts();
if (root.dataset.fitted === "1") reliability();
