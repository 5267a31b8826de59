// The Command Center console: live job progress and the telemetry charts (inline SVG).
// Reads the operator API with the session cookie; loads nothing from anywhere else.
"use strict";

const FINISHED = ["succeeded", "partial", "failed", "cancelled"];

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

// "12 of 50 skill(s) done" while a job runs (its heartbeat records the progress every second);
// "3 of 1000 organisation(s) done" for a job over every tenant (its units).
function progressText(progress) {
  if (progress.total) {
    return progress.done + " of " + progress.total + " " + (progress.of || "skill(s)") + " done";
  }
  return progress.recorded + " skill(s) recorded";
}

function watchJob(box) {
  const id = box.dataset.jobId;
  const wasFinished = FINISHED.includes(box.dataset.status);
  if (wasFinished) return;
  const tick = async () => {
    try {
      const job = await getJSON("/api/v1/jobs/" + id);
      const status = document.getElementById("job-status");
      status.textContent = job.status;
      status.className = "status-" + job.status;
      document.getElementById("job-progress").textContent = progressText(job.progress);
      const bar = document.getElementById("job-bar");
      if (job.progress.total) {
        bar.max = job.progress.total;
        bar.value = job.progress.done;
      }
      if (FINISHED.includes(job.status)) {
        window.location.reload(); // the per-skill results and errors, rendered by the server
        return;
      }
    } catch (err) {
      console.warn(err);
    }
    window.setTimeout(tick, 1000);
  };
  window.setTimeout(tick, 500);
}

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function format(metric, value) {
  if (metric === "failure_rate") return (value * 100).toFixed(1) + "%";
  if (metric === "cost_usd") return "$" + value.toFixed(2);
  return String(Math.round(value));
}

function barChart(target, metric, rows) {
  const width = 640, height = 180, pad = 36;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img",
                          "aria-label": metric + " per day", "data-points": rows.length });
  const values = rows.map((r) => Number(r[metric] || 0));
  const max = Math.max(...values, metric === "failure_rate" ? 0.01 : 1);
  const step = rows.length ? (width - 2 * pad) / rows.length : 0;
  svg.appendChild(el("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
  svg.appendChild(el("text", { x: 2, y: pad - 8, class: "label" }, format(metric, max)));
  rows.forEach((row, i) => {
    const h = ((height - 2 * pad) * values[i]) / max;
    const bar = el("rect", { x: pad + i * step + 1, y: height - pad - h, width: Math.max(step - 2, 1), height: h, class: "bar" });
    bar.appendChild(el("title", {}, `${row.day}: ${format(metric, values[i])}`));
    svg.appendChild(bar);
  });
  if (rows.length) {
    svg.appendChild(el("text", { x: pad, y: height - 8, class: "label" }, rows[0].day));
    svg.appendChild(el("text", { x: width - pad, y: height - 8, class: "label end" }, rows[rows.length - 1].day));
  } else {
    svg.appendChild(el("text", { x: width / 2, y: height / 2, class: "label middle" }, "nothing in the period"));
  }
  target.replaceChildren(svg);
}

// A section of charts reads one API route (its data-url: per UTC day rows); each chart draws
// one metric of the rows.
async function drawCharts(section) {
  const rows = await getJSON(section.dataset.url);
  for (const chart of section.querySelectorAll(".chart")) barChart(chart, chart.dataset.metric, rows);
}

document.addEventListener("DOMContentLoaded", () => {
  const job = document.getElementById("job");
  if (job) watchJob(job);
  const charts = document.getElementById("charts");
  if (charts) drawCharts(charts).catch((err) => console.warn(err));
  const confirm = document.getElementById("confirm");
  if (confirm) {
    confirm.addEventListener("submit", (event) => {
      const what = document.getElementById("confirm-button").textContent.trim();
      if (!window.confirm(what + "?")) event.preventDefault();
    });
  }
});
