// Every call to the API goes through here: same-origin relative paths, the bearer credential from
// the session, and API errors ({"error": {code, message, at?}}) turned into ApiError.

import { getCredential } from "./auth/session";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly at?: string,
  ) {
    super(message);
  }
}

/**
 * One path segment, percent-encoded. "." and ".." are refused: a URL parser resolves them (even
 * written %2e), so `/v1/events/..` would be a request, with the credential, for `/v1/`.
 */
export function segment(value: string): string {
  if (value === "" || value === "." || value === "..") {
    throw new ApiError(0, "invalid_id", `"${value}" is not an identifier the API can be asked about.`);
  }
  return encodeURIComponent(value);
}

type Query = Record<string, string | number | undefined | null>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export interface RequestOptions {
  method?: string;
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Send without the credential (public endpoints). */
  anonymous?: boolean;
}

let onUnauthorized: ((error: ApiError) => void) | null = null;

/** Lets the app return to the sign-in screen when the credential is refused mid-session. */
export function setUnauthorizedHandler(handler: ((error: ApiError) => void) | null) {
  onUnauthorized = handler;
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const credential = getCredential();
  if (credential && !options.anonymous) headers["Authorization"] = `Bearer ${credential}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method: options.method ?? "GET",
      headers,
      body: body ?? null,
      signal: options.signal ?? null,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(0, "network", "The API cannot be reached; check your connection and retry.");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !options.anonymous) onUnauthorized?.(error);
    throw error;
  }
  return response;
}

export async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; at?: string } };
    if (body.error?.message) {
      return new ApiError(response.status, body.error.code ?? "error", body.error.message, body.error.at);
    }
  } catch {
    // Not JSON: fall through to the status line.
  }
  return new ApiError(response.status, "http", `The API answered ${response.status} ${response.statusText}`.trim());
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options);
  return (await response.json()) as T;
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}
