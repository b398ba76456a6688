// The caller's one live event stream (GET /events): the status and epoch events of all their
// jobs (everyone's, for an admin), shared by the views that listen. It opens with the first
// listener, resumes by itself after a dropped connection (api.js `follow`, from the last event
// id), and closes with the last listener, or at sign-out.

import { follow } from "./api.js";

// How long a view waits for the stream to open before it loads anyway.
const OPEN_WAIT_MS = 2000;
const listeners = new Set();
let stream = null;
let opened = Promise.resolve();

function open() {
  let positioned;
  opened = new Promise((resolve) => { positioned = resolve; });
  stream = follow("/events", (kind, data) => {
    // The stream's first event says where it starts: what happens from then on will come.
    if (kind === "position") { positioned(); return; }
    for (const listener of listeners) listener(kind, data);
  }, () => { stream = null; positioned(); });
}

export function close() {
  if (stream) stream.stop();
  stream = null;
  listeners.clear();
}

// Calls onEvent(kind, data) for each event from now on, `data.job_id` naming the job, until
// the returned stop() is called. Resolves once the stream is open: what a view loads after
// that, it either has or will hear of.
export async function listen(onEvent) {
  if (!stream) open();
  listeners.add(onEvent);
  await Promise.race([opened, new Promise((resolve) => setTimeout(resolve, OPEN_WAIT_MS))]);
  return () => {
    listeners.delete(onEvent);
    if (!listeners.size) close();
  };
}
