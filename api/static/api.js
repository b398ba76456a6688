// Talking to the API: the key from session storage, errors in words, event streams.

const KEY = "capas.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

// An API error: `{"error": {"code", "message", "details": [{field, value, message?}]}}`.
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || [];
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.key}`, ...extra };
}

async function unwrap(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("capas:signed-out"));
    throw error;
  }
  return body;
}

export async function get(path) {
  return unwrap(await fetch(path, { headers: headers() }));
}

// A text answer (a script, a CSV); an error answer is thrown as an ApiError.
export async function getText(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) await unwrap(response);
  return response.text();
}

export async function send(method, path, body) {
  const isForm = body instanceof FormData;
  const response = await fetch(path, {
    method,
    headers: headers(isForm ? {} : { "Content-Type": "application/json" }),
    body: isForm ? body : JSON.stringify(body),
  });
  return unwrap(response);
}

export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) await unwrap(response);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  link.click();
  URL.revokeObjectURL(url);
}

// Server-Sent Events over fetch(): EventSource cannot send the Authorization header.
// Calls onEvent(kind, data, id) for each event; reconnects after a dropped connection from
// the last event id (Last-Event-ID), until the `end` event or until stop() is called.
export function follow(path, onEvent, onEnd = () => {}) {
  const controller = new AbortController();
  let lastId = null;
  let ended = false;

  function dispatch(block) {
    let kind = "message", data = "", id = null;
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;  // a comment: the keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (!data) return;
    if (id !== null) lastId = id;
    const payload = JSON.parse(data);
    if (kind === "end") { ended = true; onEnd(payload); return; }
    onEvent(kind, payload, id);
  }

  async function connect() {
    const extra = lastId === null ? {} : { "Last-Event-ID": lastId };
    const response = await fetch(path, { headers: headers(extra), signal: controller.signal });
    if (!response.ok) await unwrap(response);  // throws the API's error
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  (async () => {
    while (!ended && !controller.signal.aborted) {
      try {
        await connect();
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError) { onEnd({ error }); return; }
      }
      if (!ended) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return { stop: () => controller.abort() };
}
