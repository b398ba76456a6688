// Where the value a field path names (`model.layers[2].pool_size`) lies in a JSON text, so that
// an error can point at its line in the editor.

// "model.layers[2].pool_size" → ["model", "layers", 2, "pool_size"]
export function pathSteps(field) {
  return [...field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined
    ? Number(m[2]) : m[1]));
}

// {start, end, line} (line counted from 1) of the value at `steps`, or of the deepest part of
// the path that the text has (a missing key points at the object that lacks it); null when the
// text is not JSON.
export function locate(text, steps) {
  let at = 0;
  const space = () => { while (/\s/.test(text[at] || "")) at += 1; };
  const string = () => {
    const start = at;
    at += 1;
    while (at < text.length && text[at] !== '"') at += text[at] === "\\" ? 2 : 1;
    at += 1;
    return JSON.parse(text.slice(start, at));
  };
  // Skips one value; on the path (`depth` steps matched so far) it descends instead.
  function value(depth) {
    space();
    const start = at;
    let found = null;
    if (text[at] === "{" || text[at] === "[") {
      const isObject = text[at] === "{";
      const close = isObject ? "}" : "]";
      at += 1;
      for (let index = 0; ; index += 1) {
        space();
        if (text[at] === close) break;
        let key = index;
        if (isObject) {
          key = string();
          space();
          at += 1; // the colon
        }
        const inner = depth < steps.length && key === steps[depth] ? value(depth + 1) : skip();
        if (inner) found = inner;
        space();
        if (text[at] === ",") at += 1;
        else if (text[at] !== close) throw new SyntaxError(`unexpected ${text[at]}`);
      }
      at += 1;
    } else if (text[at] === '"') {
      string();
    } else {
      const scalar = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(at));
      if (!scalar) throw new SyntaxError(`unexpected ${text[at]}`);
      at += scalar[0].length;
    }
    return depth === steps.length || !found ? { start, end: at, depth } : found;
  }
  function skip() {
    value(steps.length + 1); // deeper than the path: nothing on it
    return null;
  }
  try {
    const found = value(0);
    return { start: found.start, end: found.end,
      line: text.slice(0, found.start).split("\n").length };
  } catch {
    return null;
  }
}
