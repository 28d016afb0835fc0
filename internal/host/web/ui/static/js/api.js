// api.js — the daemon's JSON API, same-origin, as the banger client uses it.
//
// The session cookie rides along with every fetch (same origin); the
// browser adds the Origin header the web listener checks on state-changing
// requests. A failed request throws an ApiError carrying the daemon's
// api.Error (code, message, field, allowed).

// ApiError is a failed request: the daemon's api.Error, or a transport
// failure (code "unavailable").
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `bangerd answered HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 401 ? 'unauthenticated' : 'internal');
    this.field = e.field || '';
    this.allowed = e.allowed || '';
  }

  // from builds an ApiError from a failed response.
  static async from(res) {
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    const err = new ApiError(res.status, body);
    if (res.status === 401 && !(body && body.error)) {
      err.message = 'this browser is not logged in to bangerd: run `banger web` and open the URL it prints';
    }
    return err;
  }
}

// transportError wraps a fetch that never got an answer.
function transportError(err) {
  if (err.name === 'AbortError') return err;
  const e = new ApiError(0, { error: { code: 'unavailable', message: `bangerd did not answer (${err.message}): is it running? \`banger daemon status\`` } });
  return e;
}

// request sends one API request. body (an object) goes as JSON. It
// resolves to the decoded JSON answer, or null for an empty one.
export async function request(method, path, body, { signal, headers } = {}) {
  const init = { method, signal, headers: { Accept: 'application/json', ...(headers || {}) }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw transportError(err);
  }
  if (!res.ok) throw await ApiError.from(res);
  if (res.status === 204) return null;
  const t = await res.text();
  return t ? JSON.parse(t) : null;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body === undefined ? {} : body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

// enc escapes one path segment.
export const enc = encodeURIComponent;

// open starts a streamed GET and returns the response once its status is
// known (a failure throws as request does).
export async function open(path, { signal, accept = 'application/x-ndjson' } = {}) {
  let res;
  try {
    res = await fetch(path, { signal, headers: { Accept: accept }, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    throw transportError(err);
  }
  if (!res.ok) throw await ApiError.from(res);
  return res;
}

// MAX_LINE bounds one NDJSON line (an operation with its result is far
// below it); a longer line ends the stream with an error.
const MAX_LINE = 8 << 20;

// ndjson yields each JSON object of a streamed NDJSON body as it arrives.
export async function* ndjson(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) yield JSON.parse(line);
      }
      if (buf.length > MAX_LINE) throw new Error(`an event line is longer than ${MAX_LINE} bytes`);
    }
    buf += dec.decode();
    if (buf.trim()) yield JSON.parse(buf);
  } finally {
    reader.cancel().catch(() => {});
  }
}

// textChunks yields the decoded text of a streamed body as it arrives.
export async function* textChunks(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield dec.decode(value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// sleep waits ms, or until signal aborts.
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

// wsURL turns an API path into a same-origin WebSocket URL.
export function wsURL(path) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}
