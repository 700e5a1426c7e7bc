// Talks to the node. Every /api/ call carries the bearer token kept in sessionStorage; a 401
// asks for the token once (a shared prompt for concurrent calls) and retries the call once. A
// stored token the node refuses is forgotten before asking; a cancelled prompt stops asking (and
// the shell stops polling /api/) until the user opens the token dialog from the header again.
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
let tokenRequired = false; // the node answered a 401 once: it wants a token
let declined = false; // the user cancelled the prompt: no asking, no polling until they reopen it
let tokenListener = () => {};

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
    if (tok) sessionStorage.setItem(TOKEN_KEY, tok);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // Asked again on the next 401 then.
  }
}

// fn({required, declined, stored}) is called whenever one of them changes.
export function onTokenState(fn) {
  tokenListener = fn;
}

export function tokenState() {
  return { required: tokenRequired, declined, stored: !!getToken() };
}

function changed() {
  tokenListener(tokenState());
}

// The user's choice in the dialog opened from the header: a new token (asking and polling
// resume), or none (forget: the stored token is dropped and nothing is asked until reopened).
export function useToken(tok) {
  setToken(tok || '');
  declined = !tok;
  changed();
}

async function askToken() {
  if (!tokenPrompt || declined) return null;
  if (!pendingPrompt) {
    pendingPrompt = tokenPrompt().then((tok) => {
      if (tok) setToken(tok);
      else declined = true;
      changed();
      return tok;
    }).finally(() => {
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
  const sent = getToken();
  let res = await send(method, path, opts);
  if (res.status === 401 && path.startsWith('/api/')) {
    if (!tokenRequired) {
      tokenRequired = true;
      changed();
    }
    // Forget the refused token, unless another call already stored a newer one meanwhile.
    if (sent && getToken() === sent) setToken('');
    const tok = getToken() || (await askToken());
    if (tok) res = await send(method, path, opts);
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
