// Talking to the server: CSRF, JSON, and retries that can never submit twice.
//
// A submission carries one Idempotency-Key for its assignment, reused by every
// retry, so a request that reached the server but whose answer was lost is
// replayed by the server (200) instead of stored again.

const RETRY_DELAYS_MS = [300, 800, 1600, 3200];

export class RequestFailed extends Error {
  constructor(status, body) {
    super((body && body.detail) || `The server answered ${status}.`);
    this.status = status;
    this.body = body || {};
  }
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export function newIdempotencyKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address lacks one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function once(url, { method = "GET", body, headers = {} }) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...(method !== "GET" ? { "X-CSRFToken": csrfToken() } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: `Unexpected answer from the server (${response.status}).` };
    }
  }
  return { status: response.status, data };
}

/**
 * Send a request, retrying network failures and 5xx/429 answers with backoff.
 * `onRetry(attempt, total, error)` lets the page tell the annotator what is going on.
 * Resolves with {status, data} for 2xx; rejects with RequestFailed otherwise.
 */
export async function requestWithRetry(url, options, onRetry = () => {}) {
  const total = RETRY_DELAYS_MS.length + 1;
  for (let attempt = 1; ; attempt += 1) {
    let result = null;
    let failure = null;
    try {
      result = await once(url, options);
    } catch (error) {
      failure = new RequestFailed(0, { detail: "The server could not be reached." });
      failure.cause = error;
    }
    if (result && result.status < 300) return result;
    if (result && result.status !== 429 && result.status < 500) throw new RequestFailed(result.status, result.data);
    failure = failure || new RequestFailed(result.status, result.data);
    if (attempt >= total) throw failure;
    onRetry(attempt, total, failure);
    await sleep(RETRY_DELAYS_MS[attempt - 1]);
  }
}
