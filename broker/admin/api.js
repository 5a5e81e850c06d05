// api.js — calls dtmq's HTTP API from the admin page. Every failure (no
// answer, a non-200 status, a body that is not JSON) becomes an ApiError whose
// message says what happened in words, for the page's error banner.

// The API lives beside /admin, also behind a proxy's path prefix (/dtmq/admin/).
const BASE = window.location.pathname.replace(/\/admin(\/.*)?$/, '');
const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // HTTP status, 0 when dtmq did not answer
  }
}

function buildUrl(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const qs = params.toString();
  return BASE + path + (qs ? `?${qs}` : '');
}

// What a non-200 answer says: its "message", else the start of the body.
function answerMessage(resp, text) {
  try {
    const data = JSON.parse(text);
    if (data && typeof data.message === 'string' && data.message) return data.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim().slice(0, 300) || resp.statusText || 'no message';
}

async function send(method, url, body) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const resp = await fetch(url, {
      method,
      headers: body === undefined ? {} : {'Content-Type': 'application/json'},
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin', // the browser's login for /admin/ goes along
      signal: controller.signal,
    });
    return {resp, text: await resp.text()};
  } finally {
    clearTimeout(timer);
  }
}

// Calls METHOD path with query parameters (empty ones left out) and an
// optional JSON body; resolves to the parsed JSON answer of a 200.
export async function call(method, path, {query, body} = {}) {
  const what = `${method} ${path}`;
  let answer;
  try {
    answer = await send(method, buildUrl(path, query), body);
  } catch (e) {
    const why = e.name === 'AbortError' ? `no answer within ${TIMEOUT_MS / 1000} s` : e.message;
    throw new ApiError(`Cannot reach dtmq (${what}): ${why}. Is it running?`, 0);
  }
  const {resp, text} = answer;
  if (resp.status === 401) {
    throw new ApiError(`Not logged in (${what} answered 401 unauthorized). Reload the page and ` +
      'log in with any user name and the admin token as the password.', 401);
  }
  if (!resp.ok) {
    throw new ApiError(`${what} answered ${resp.status}: ${answerMessage(resp, text)}`, resp.status);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(`${what} answered 200 but not with JSON: ${text.slice(0, 200)}`, resp.status);
  }
}

export const get = (path, query) => call('GET', path, {query});
export const post = (path, body) => call('POST', path, {body});
