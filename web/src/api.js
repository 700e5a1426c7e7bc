// Talks to the node. Every /api/ call carries the bearer token kept in sessionStorage; a 401
// asks for the token once (a shared prompt for concurrent calls) and retries the call once.
// Failures are values the views can tell apart: Unreachable (no answer, a timeout, or a
// gateway error from a proxy in front of the node) and ApiError (the node answered an error).

const TOKEN_KEY = 'kgflow-token';
const TIMEOUT_MS = 8000;

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class Unreachable extends Error {}

let tokenPrompt = null;
let pendingPrompt = null;

// fn() -> Promise<string|null>: asks the user for a token (null: cancelled).
export function setTokenPrompt(fn) {
  tokenPrompt = fn;
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function setToken(tok) {
  try {
    sessionStorage.setItem(TOKEN_KEY, tok);
  } catch (_) {
    // Asked again on the next 401 then.
  }
}

async function askToken() {
  if (!tokenPrompt) return null;
  if (!pendingPrompt) {
    pendingPrompt = tokenPrompt().finally(() => {
      pendingPrompt = null;
    });
  }
  return pendingPrompt;
}

async function send(method, path, opts) {
  const headers = new Headers(opts.headers || {});
  const tok = getToken();
  if (tok && path.startsWith('/api/')) headers.set('Authorization', 'Bearer ' + tok);
  let body = opts.body;
  if (opts.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.json);
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeout || TIMEOUT_MS);
  try {
    return await fetch(path, { method, headers, body, signal: ctl.signal, cache: 'no-store' });
  } catch (e) {
    throw new Unreachable(e.name === 'AbortError' ? 'timed out' : e.message);
  } finally {
    clearTimeout(timer);
  }
}

async function parse(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    return { error: text.slice(0, 300) };
  }
}

// Returns the parsed JSON of a 2xx answer; throws ApiError or Unreachable.
// opts: {json, body, headers, timeout, text (return the body as text)}.
export async function request(method, path, opts = {}) {
  let res = await send(method, path, opts);
  if (res.status === 401 && path.startsWith('/api/')) {
    const tok = await askToken();
    if (tok) {
      setToken(tok);
      res = await send(method, path, opts);
    }
  }
  // A proxy in front of a node that is gone answers 502/504: the node is unreachable.
  if (res.status === 502 || res.status === 504) throw new Unreachable('gateway ' + res.status);
  if (opts.text && res.ok) return res.text();
  const data = await parse(res);
  if (!res.ok) {
    const msg = (data && data.error) || res.status + ' ' + res.statusText;
    throw new ApiError(res.status, msg, data);
  }
  return data;
}

export const get = (path, opts) => request('GET', path, opts);
