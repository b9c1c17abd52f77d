// The /v1 API as the pages use it: the session cookie authenticates, and every change carries
// the CSRF token the sign-in returned. Errors arrive as {"error": {"type", "message"}}.

let csrfToken = "";

export function setCsrfToken(token) {
  csrfToken = token ?? "";
}

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export async function api(method, path, body) {
  return (await call(method, path, body)).data;
}

// One page of a paged list (/v1/people, /v1/audit): the rows, whether more follow them, and the
// key of the next page where the list has one (X-Facefind-Next: /v1/people).
export async function getPage(path, query = {}) {
  const { data, headers } = await call("GET", withQuery(path, query));
  return { rows: data, more: headers.get("X-Facefind-More") === "true", next: headers.get("X-Facefind-Next") };
}

// A file the server makes (a zip, a report) as a Blob, or the server's error as for api().
export async function file(method, path, body) {
  return (await call(method, path, body, true)).data;
}

async function call(method, path, body, asFile = false) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") options.headers["X-CSRF-Token"] = csrfToken;
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "Network", "facefind did not answer: is the server running?");
  }
  const json = (response.headers.get("content-type") ?? "").includes("json");
  const data = json ? await response.json() : asFile && response.ok ? await response.blob() : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error?.type ?? "HTTP", data?.error?.message ?? response.statusText);
    if (response.status === 401 && path !== "/ui/session") {
      window.dispatchEvent(new CustomEvent("facefind:signed-out", { detail: error }));
    }
    throw error;
  }
  return { data, headers: response.headers };
}

function withQuery(path, query) {
  const given = Object.entries(query).filter(([, value]) => value !== undefined && value !== null && value !== "");
  return given.length ? `${path}?${new URLSearchParams(given.map(([k, v]) => [k, String(v)]))}` : path;
}

// An image from the API (a whole photo to draw a face on): an object URL for an <img> (the CSP
// allows blob: images) and the response's headers (X-Facefind-Scale). Call `URL.revokeObjectURL`
// when the image is gone.
export async function getImage(path, query = {}) {
  let response;
  try {
    response = await fetch(withQuery(path, query), { credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "Network", "facefind did not answer: is the server running?");
  }
  if (!response.ok) {
    const data = (response.headers.get("content-type") ?? "").includes("json") ? await response.json() : null;
    throw new ApiError(response.status, data?.error?.type ?? "HTTP", data?.error?.message ?? response.statusText);
  }
  return { url: URL.createObjectURL(await response.blob()), headers: response.headers };
}

export function get(path, query = {}) {
  return api("GET", withQuery(path, query));
}
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body ?? {});
export const del = (path) => api("DELETE", path);
