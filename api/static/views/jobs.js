// Jobs: the list, kept live by the caller's event stream; cancel; pick to compare.

import { get, send } from "../api.js";
import { listen } from "../live.js";
import {
  FINISHED, coachFlags, el, empty, errorBox, fmt, loading, mount, statusBadge, toast, when,
} from "../ui.js";

function bestMetric(job) {
  const best = job.best_metrics || {};
  for (const name of ["val_accuracy", "accuracy", "val_mae", "mae", "val_loss", "loss"]) {
    if (best[name] !== undefined) return `${name} ${fmt(best[name])}`;
  }
  return "—";
}

export function progress(job) {
  return el("span", { class: "progress" },
    el("progress", { max: job.epochs, value: job.epochs_done,
      "aria-label": `${job.epochs_done} of ${job.epochs} epochs` }),
    ` ${job.epochs_done}/${job.epochs}`);
}

export async function cancelJob(id) {
  try {
    const job = await send("POST", `/jobs/${id}/cancel`);
    toast(job.status === "running" ? "Stopping within a batch…" : `Job ${job.status}`);
    return job;
  } catch (error) {
    toast(error.message);
    return null;
  }
}

export async function render(root) {
  mount(root, loading("Loading jobs"));
  const jobs = new Map();
  const picked = new Set();
  const body = el("tbody");
  const compareLink = el("a", { class: "button", href: "#/compare", "aria-disabled": "true" },
    "Compare selected");
  const nothing = empty("No jobs yet.", el("a", { class: "button primary", href: "#/new" },
    "Define and train a network"));

  function updateCompare() {
    compareLink.textContent = `Compare selected (${picked.size})`;
    const ready = picked.size >= 2;
    compareLink.setAttribute("aria-disabled", String(!ready));
    compareLink.href = ready ? `#/compare/${[...picked].join(",")}` : "#/compare";
  }

  function row(job) {
    const finished = FINISHED.has(job.status);
    return el("tr", { id: `job-${job.id}`, dataset: { status: job.status } },
      el("td", {}, el("input", { type: "checkbox", checked: picked.has(job.id),
        "aria-label": `select job ${job.id} to compare`, onchange: (event) => {
          if (event.target.checked) picked.add(job.id); else picked.delete(job.id);
          updateCompare();
        } })),
      el("td", {}, el("a", { href: `#/jobs/${job.id}` }, el("code", {}, job.id.slice(0, 8))),
        el("div", { class: "muted small" }, when(job.created_at))),
      el("td", {}, job.model_name,
        job.name ? el("div", { class: "job-name" }, job.name) : null,
        job.note ? el("div", { class: "muted small" }, job.note) : null),
      el("td", {}, statusBadge(job.status), " ", coachFlags(job.coach, true),
        job.failure_reason ? el("div", { class: "reason" }, job.failure_reason) : null),
      el("td", {}, job.framework),
      el("td", {}, job.device || job.requested_device),
      el("td", {}, progress(job)),
      el("td", {}, bestMetric(job)),
      el("td", {}, finished ? null : el("button", { type: "button", class: "danger small",
        onclick: async () => { const out = await cancelJob(job.id); if (out) update(out); } },
      "Cancel")));
  }

  // A job's row, replaced in place, or added where its submission time puts it: newest first.
  function update(job) {
    jobs.set(job.id, job);
    const old = document.getElementById(`job-${job.id}`);
    if (old) {
      old.replaceWith(row(job));
    } else {
      const older = [...body.children].find((tr) => jobs.get(tr.id.slice("job-".length))
        .created_at < job.created_at);
      body.insertBefore(row(job), older || null);
    }
    nothing.remove();
  }

  async function refresh(id) {
    try {
      update(await get(`/jobs/${id}`));
    } catch { /* gone, or not ours to see: its row stays as it was */ }
  }

  // A status changes more than the status (device, worker, reason): the job is read again,
  // and one submitted elsewhere appears. An epoch only moves the counter.
  const stop = await listen((kind, data) => {
    const job = jobs.get(data.job_id);
    if (kind === "epoch" && job) {
      update({ ...job, epochs_done: Math.max(job.epochs_done, data.epoch) });
    } else {
      refresh(data.job_id);
    }
  });
  let page;
  try {
    page = await get("/jobs?limit=100");
  } catch (error) {
    stop();
    mount(root, errorBox(error, "The jobs could not be listed"));
    return null;
  }
  // Events may have come while the page loaded: what they brought is newer than the page.
  for (const job of page.items) if (!jobs.has(job.id)) update(job);
  const table = el("table", { class: "jobs" },
    el("thead", {}, el("tr", {}, ["Pick", "Job", "Model", "Status", "Framework", "Device", "Epochs",
      "Best", ""].map((h) => el("th", { scope: "col" }, h)))), body);
  mount(root, el("div", { class: "head" }, el("h1", {}, "Jobs"),
    el("div", { class: "actions" }, compareLink,
      el("a", { class: "button primary", href: "#/new" }, "New job"))),
  el("section", { class: "card" }, el("div", { class: "scroll" }, table)),
  jobs.size ? null : nothing);
  updateCompare();
  return stop;
}
