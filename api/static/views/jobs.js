// Jobs: the list, kept live by each unfinished job's event stream; cancel; pick to compare.

import { follow, get, send } from "../api.js";
import {
  FINISHED, el, empty, errorBox, fmt, loading, mount, statusBadge, toast, when,
} from "../ui.js";

const REFRESH_MS = 5000;  // how soon a job submitted elsewhere shows up
// A browser opens at most six HTTP/1.1 connections to one host: streams beyond a few would
// starve every other request of the page. Jobs not streamed are kept up by the refresh.
const MAX_STREAMS = 3;

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
  const streams = new Map();
  const picked = new Set();
  const body = el("tbody");
  const compareLink = el("a", { class: "button", href: "#/compare", "aria-disabled": "true" },
    "Compare selected");

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
      el("td", {}, job.model_name),
      el("td", {}, statusBadge(job.status),
        job.failure_reason ? el("div", { class: "reason" }, job.failure_reason) : null),
      el("td", {}, job.framework),
      el("td", {}, job.device || job.requested_device),
      el("td", {}, progress(job)),
      el("td", {}, bestMetric(job)),
      el("td", {}, finished ? null : el("button", { type: "button", class: "danger small",
        onclick: async () => { const out = await cancelJob(job.id); if (out) update(out); } },
      "Cancel")));
  }

  function update(job) {
    jobs.set(job.id, job);
    const old = document.getElementById(`job-${job.id}`);
    if (old) old.replaceWith(row(job)); else body.prepend(row(job));
    watchMore();
  }

  // Streams the unfinished jobs, running ones first, up to MAX_STREAMS at once.
  function watchMore() {
    const waiting = [...jobs.values()].filter((j) => !FINISHED.has(j.status) && !streams.has(j.id))
      .sort((a, b) => (a.status === "running" ? 0 : 1) - (b.status === "running" ? 0 : 1));
    for (const job of waiting.slice(0, MAX_STREAMS - streams.size)) watch(job.id);
  }

  function watch(id) {
    const refresh = async () => update(await get(`/jobs/${id}`));
    streams.set(id, follow(`/jobs/${id}/events`, (kind, data) => {
      const job = jobs.get(id);
      if (kind === "epoch") update({ ...job, epochs_done: Math.max(job.epochs_done, data.epoch) });
      else refresh();
    }, () => { streams.delete(id); refresh(); }));
  }

  async function load() {
    const page = await get("/jobs?limit=100");
    for (const job of [...page.items].reverse()) {
      const known = jobs.get(job.id);
      if (!known || known.status !== job.status
        || (!streams.has(job.id) && known.epochs_done !== job.epochs_done)) update(job);
    }
    return page.items.length;
  }

  let count;
  try {
    count = await load();
  } catch (error) {
    mount(root, errorBox(error, "The jobs could not be listed"));
    return null;
  }
  const table = el("table", { class: "jobs" },
    el("thead", {}, el("tr", {}, ["Pick", "Job", "Model", "Status", "Framework", "Device", "Epochs",
      "Best", ""].map((h) => el("th", { scope: "col" }, h)))), body);
  const nothing = empty("No jobs yet.", el("a", { class: "button primary", href: "#/new" },
    "Define and train a network"));
  mount(root, el("div", { class: "head" }, el("h1", {}, "Jobs"),
    el("div", { class: "actions" }, compareLink,
      el("a", { class: "button primary", href: "#/new" }, "New job"))),
  el("section", { class: "card" }, el("div", { class: "scroll" }, table)),
  count ? null : nothing);
  updateCompare();
  const timer = setInterval(async () => {
    try {
      if (await load()) nothing.remove();
    } catch { /* the next tick tries again */ }
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    for (const stream of streams.values()) stream.stop();
  };
}
