// Every request the page makes to the sidecar goes through here (no fetch and no WebSocket is made
// anywhere else: viewer/tests/modules.test.mjs checks it), with the token in a header.
//
// The token comes once in the address bar (the printed URL is http://HOST:PORT/#token=TOKEN; the
// fragment is never sent to the server nor put in a Referer; ?token= is accepted too), is moved to
// localStorage, which is scoped to scheme, host and port (a cookie would be shared by every port of
// the host, so two sidecars would clobber each other's), and is taken out of the address bar.
// No cookie: REST calls send `Authorization: Bearer`, the WebSocket offers the token as a
// subprotocol (a browser cannot put a header on a WebSocket), the long poll is a fetch like the rest.
//
// Paths are the sidecar's own ("/api/runs", "/ws") and are asked for relative to the page's folder,
// never to the host's root: behind a reverse proxy the page is at https://lab.example/tb/ and so is
// the API (at /tb/api/runs), whatever prefix the proxy added, known to the sidecar or not.

export const TOKEN_KEY = "tailboard.token";
export const WS_SUBPROTOCOL = "tailboard";
export const WS_TOKEN_PREFIX = "tailboard.token.";

/** The failure of a request the server refused for want of a valid token. */
export class Unauthorized extends Error {
  constructor(path) {
    super(`${path}: the token was refused`);
    this.name = "Unauthorized";
  }
}

let memory = null; // where the token lives when localStorage is not available (blocked storage)
let onUnauthorized = () => {};

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export function getToken() {
  try {
    return storage()?.getItem(TOKEN_KEY) ?? memory;
  } catch {
    return memory;
  }
}

export function setToken(token) {
  memory = token || null;
  try {
    if (token) storage()?.setItem(TOKEN_KEY, token); else storage()?.removeItem(TOKEN_KEY);
  } catch {
    // storage full or blocked: the token lives in memory for this page
  }
}

/** Called (once per refusal) when the server answers 401: the page asks for a token again. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * The token in a URL (`#token=` first, then `?token=`) and the same URL without it, every other part
 * kept (the view state lives in the query). Pure, for tests: `href` is a full URL.
 */
export function splitToken(href) {
  const url = new URL(href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const token = hash.get("token") || url.searchParams.get("token") || null;
  if (!hash.has("token") && !url.searchParams.has("token")) return { token: null, cleaned: null };
  if (hash.has("token")) {
    hash.delete("token");
    const rest = hash.toString();
    url.hash = rest ? `#${rest}` : "";
  }
  if (url.searchParams.has("token")) url.searchParams.delete("token");
  return { token, cleaned: `${url.pathname}${url.search}${url.hash}` };
}

/** On load: a token in the address bar is stored and taken out of the address bar. */
export function takeTokenFromAddressBar() {
  const { token, cleaned } = splitToken(location.href);
  if (cleaned != null) history.replaceState(history.state, "", cleaned);
  if (token) setToken(token);
  return token;
}

/** base64url of the UTF-8 bytes of `text`, without padding. */
export function b64url(text) {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The subprotocols the WebSocket is opened with: the one the server answers, and the token. */
export function wsProtocols(token = getToken()) {
  return token ? [WS_SUBPROTOCOL, WS_TOKEN_PREFIX + b64url(token)] : [WS_SUBPROTOCOL];
}

/**
 * The URL of the sidecar's `path` ("/api/runs") for a page at `base` (a Location or URL): below the
 * page's folder, so "/api/runs" of http://h/tb/?q#t is http://h/tb/api/runs. `base` may also be
 * just {protocol, host} (the server's root).
 */
export function sidecarURL(path, base = location) {
  const page = base.href || `${base.protocol}//${base.host}/`;
  return new URL(`.${path.startsWith("/") ? "" : "/"}${path}`, page);
}

/** ws:// or wss:// URL of a path on this server (below the page's folder, as sidecarURL). */
export function wsURL(path, base = location) {
  const url = sidecarURL(path, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** A WebSocket to `path` on this server, offering the token as a subprotocol. */
export function openSocket(path, base = location) {
  return new WebSocket(wsURL(path, base), wsProtocols());
}

/**
 * GET `path` (params: an object or URLSearchParams): the Response once its status is a success.
 * Throws Unauthorized on 401 (the page asks for the token again), an Error naming the status else.
 */
async function get(path, params, signal) {
  const q = params == null ? "" : String(params instanceof URLSearchParams ? params : new URLSearchParams(params));
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  // credentials "omit": nothing ambient rides along, the header is the only credential
  const url = sidecarURL(path);
  url.search = q;
  const res = await fetch(url, { headers, signal, credentials: "omit", cache: "no-store" });
  if (res.status === 401) {
    onUnauthorized();
    throw new Unauthorized(path);
  }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res;
}

/** GET `path` (params: an object or URLSearchParams) as JSON. Throws Unauthorized on 401. */
export async function getJSON(path, params = null, { signal } = {}) {
  return (await get(path, params, signal)).json();
}

/**
 * GET `path` as a Blob of its bytes and its Content-Type (an image: the token is a header, so an
 * <img> cannot fetch it itself; show it through URL.createObjectURL). Errors as getJSON.
 */
export async function getBlob(path, params = null, { signal } = {}) {
  return (await get(path, params, signal)).blob();
}

/**
 * POST `body` as JSON to `path` (the stop control). Resolves to {status, ok, body}: the answer's
 * JSON, or null when it has none; a refusal is an answer, not an exception (the caller says it in
 * one line). On 401 the page asks for the token again, as for getJSON.
 */
export async function postJSON(path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(sidecarURL(path), {
    method: "POST", headers, body: JSON.stringify(body), credentials: "omit", cache: "no-store",
  });
  if (res.status === 401) onUnauthorized();
  let answer = null;
  try {
    answer = await res.json();
  } catch {
    // no JSON body (a proxy's own error page): the status says what happened
  }
  return { status: res.status, ok: res.ok, body: answer };
}
