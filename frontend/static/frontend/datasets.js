// The datasets page: follows running export jobs through the jobs API and reloads when one ends.
// Values from the API are set with textContent only.
import { fetchData } from "./charts.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

async function follow(item) {
  const url = item.dataset.jobUrl;
  for (;;) {
    let job;
    try {
      job = await fetchData(url);
    } catch (error) {
      item.querySelector("[data-message]").textContent = `Could not read the job: ${error.message}`;
      return;
    }
    const status = item.querySelector("[data-status]");
    status.textContent = job.status;
    status.className = `badge ${job.status}`;
    item.querySelector("progress").value = job.progress || 0;
    item.querySelector("[data-message]").textContent = job.error || job.message || "";
    if (TERMINAL.has(job.status)) {
      if (job.status === "succeeded") window.location.reload();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}

for (const item of document.querySelectorAll("[data-job-url]")) follow(item);
