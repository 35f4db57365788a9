// Every chart in the workspace is drawn here, through Plotly (from the installed `plotly`
// Python package, served as /static/vendor/plotly.min.js: no CDN). Pages pass plain data
// (the same JSON the chart-data API serves) and never call Plotly themselves, so the
// library can be swapped in one place.

const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["sendDataToCloud"] };
const FONT = { family: "system-ui, -apple-system, 'Segoe UI', sans-serif", size: 12 };

function plotly() {
  if (!window.Plotly) throw new Error("Plotly is not loaded: include the charts loader block");
  return window.Plotly;
}

function layout(options = {}) {
  return {
    font: FONT,
    margin: { l: 48, r: 16, t: options.title ? 36 : 12, b: 44 },
    title: options.title ? { text: options.title, font: { size: 14 } } : undefined,
    // xType "category" keeps numeric labels (ratings, counts) as evenly spaced categories.
    xaxis: { title: { text: options.xTitle || "" }, automargin: true, type: options.xType },
    yaxis: { title: { text: options.yTitle || "" }, automargin: true, range: options.yRange },
    barmode: options.barmode || "group",
    showlegend: options.showLegend ?? true,
    legend: { orientation: "h", y: -0.2 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
  };
}

function empty(element, message) {
  element.replaceChildren();
  const note = document.createElement("p");
  note.className = "chart-empty";
  note.textContent = message || "No data yet.";
  element.append(note);
}

/** A histogram of one or more series: `series` is [{name, values}]. */
export function histogram(element, series, options = {}) {
  if (!series.some((s) => s.values && s.values.length)) return empty(element, options.empty);
  const traces = series.map((s) => ({ type: "histogram", name: s.name, x: s.values, opacity: 0.75, nbinsx: options.bins || 30 }));
  return plotly().react(element, traces, layout({ barmode: "overlay", ...options }), CONFIG);
}

/** Bars: `series` is [{name, x: [...categories], y: [...values]}]. */
export function bars(element, series, options = {}) {
  if (!series.some((s) => s.x && s.x.length)) return empty(element, options.empty);
  const traces = series.map((s) => ({ type: "bar", name: s.name, x: s.x, y: s.y }));
  return plotly().react(element, traces, layout({ showLegend: series.length > 1, ...options }), CONFIG);
}

/** Lines over x (dates or numbers): `series` is [{name, x, y}]. */
export function lines(element, series, options = {}) {
  if (!series.some((s) => s.x && s.x.length)) return empty(element, options.empty);
  const traces = series.map((s) => ({ type: "scatter", mode: "lines+markers", name: s.name, x: s.x, y: s.y }));
  return plotly().react(element, traces, layout({ showLegend: series.length > 1, ...options }), CONFIG);
}

/**
 * Points: `series` is [{name, x, y, text}]; `text` is shown on hover as plain text.
 * SVG "scatter", not WebGL "scattergl": Plotly's WebGL traces compile code with
 * `new Function`, which the Content-Security-Policy (no 'unsafe-eval') blocks.
 */
export function scatter(element, series, options = {}) {
  if (!series.some((s) => s.x && s.x.length)) return empty(element, options.empty);
  const traces = series.map((s) => ({
    type: "scatter", mode: "markers", name: s.name, x: s.x, y: s.y, text: s.text,
    hoverinfo: "x+y+text", marker: { size: 6, opacity: 0.7 },
  }));
  return plotly().react(element, traces, layout(options), CONFIG);
}

/**
 * A histogram binned on the server: `edges` are the bin edges (bins + 1) and `series`
 * is [{name, counts}], one count per bin, stacked.
 */
export function binned(element, edges, series, options = {}) {
  if (!edges || edges.length < 2 || !series.some((s) => s.counts.some((c) => c > 0))) return empty(element, options.empty);
  const centers = edges.slice(0, -1).map((low, i) => (low + edges[i + 1]) / 2);
  const widths = edges.slice(0, -1).map((low, i) => edges[i + 1] - low);
  const traces = series.map((s) => ({ type: "bar", name: s.name, x: centers, y: s.counts, width: widths, opacity: 0.8 }));
  return plotly().react(element, traces, layout({ barmode: "stack", ...options }), CONFIG);
}

/**
 * Box plots from summaries computed on the server: `groups` is
 * [{name, n, min, q1, median, q3, max, mean}]; groups with n = 0 are left out.
 */
export function boxes(element, groups, options = {}) {
  const shown = groups.filter((g) => g.n > 0);
  if (!shown.length) return empty(element, options.empty);
  const traces = shown.map((g) => ({
    type: "box", name: `${g.name} (n=${g.n})`, x: [`${g.name} (n=${g.n})`],
    q1: [g.q1], median: [g.median], q3: [g.q3], lowerfence: [g.min], upperfence: [g.max], mean: [g.mean],
    boxpoints: false,
  }));
  return plotly().react(element, traces, layout({ showLegend: false, ...options }), CONFIG);
}

/**
 * Estimates with intervals, one row each: `rows` is [{label, value, low, high, text}];
 * `options.reference` draws a dashed line at that value (e.g. a pooled estimate).
 * Rows read top to bottom in the order given; labels are shown as plain text.
 */
export function intervals(element, rows, options = {}) {
  const shown = rows.filter((r) => r.value !== null && r.value !== undefined);
  if (!shown.length) return empty(element, options.empty);
  const labels = shown.map((r) => r.label);
  const trace = {
    type: "scatter", mode: "markers", orientation: "h", x: shown.map((r) => r.value), y: labels,
    text: shown.map((r) => r.text || ""), hoverinfo: "x+y+text", marker: { size: 9 },
    error_x: {
      type: "data", symmetric: false,
      array: shown.map((r) => (r.high ?? r.value) - r.value),
      arrayminus: shown.map((r) => r.value - (r.low ?? r.value)),
    },
  };
  const base = layout({ showLegend: false, ...options });
  base.yaxis = { ...base.yaxis, type: "category", autorange: "reversed", automargin: true };
  base.height = Math.max(220, 60 + 28 * shown.length);
  if (options.reference !== undefined && options.reference !== null) {
    base.shapes = [{
      type: "line", xref: "x", yref: "paper", x0: options.reference, x1: options.reference, y0: 0, y1: 1,
      line: { dash: "dash", width: 1 },
    }];
  }
  return plotly().react(element, [trace], base, CONFIG);
}

/** Fetch chart data as JSON from the API (same origin, session cookie). */
export async function fetchData(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}
