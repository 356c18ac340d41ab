// What the softphone and the console share: the API token (when the server asks for one) and small DOM helpers.

const TOKEN_KEY = "voiceagent-token";
// A link may carry the token (?token=...): taken once, when the page loads, so a token typed later wins.
const linked = new URLSearchParams(location.search).get("token");
if (linked) sessionStorage.setItem(TOKEN_KEY, linked);
let declined = false;  // the user cancelled the token prompt: not asked again until the page is reloaded

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** fetch() under /api/, with the token; asks for one when the server answers 401. */
export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !declined) {
    const given = prompt("This agent asks for an API token:");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given);
      return api(path, options);
    }
    declined = true;
  }
  return response;
}

/** A URL the browser fetches itself (a WebSocket, an <audio> source), with the token as a query parameter. */
export function withToken(url) {
  if (!token()) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token())}`;
}

/** An element with a class and text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function milliseconds(ms) {
  return ms === undefined || ms === null ? "" : `${Math.round(ms)} ms`;
}
