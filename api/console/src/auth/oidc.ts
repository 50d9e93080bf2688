// Authorization code flow with PKCE (RFC 7636, S256) for a public browser client. The verifier and
// state are kept in sessionStorage across the redirect, and used once; the nonce ties the ID token
// to this sign-in, so a token issued for another one (replayed or injected) is refused.

import { clearPending, type OidcConfig } from "./oidcConfig";

const VERIFIER = "sealtrail.oidc.verifier";
const STATE = "sealtrail.oidc.state";
const NONCE = "sealtrail.oidc.nonce";

export function redirectUri(): string {
  return `${location.origin}/console/`;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export async function codeChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/**
 * An endpoint of the provider as a URL the browser may be sent to (or post the code to): https, or
 * http on this machine only; never `javascript:`, `data:` or a URL with credentials in it.
 */
export function providerUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`The identity provider's ${what} is not a URL.`);
  }
  const loopback = url.hostname === "localhost" || url.hostname === "127.0.0.1" || url.hostname === "[::1]";
  if (!(url.protocol === "https:" || (url.protocol === "http:" && loopback)) || url.username || url.password) {
    throw new Error(`The identity provider's ${what} must be an https URL.`);
  }
  return url;
}

/** Whether this tab started a sign-in that a redirect back can finish. */
export function hasPendingSignIn(): boolean {
  try {
    return sessionStorage.getItem(STATE) !== null;
  } catch {
    return false;
  }
}

/** Forgets the state and verifier of a sign-in: each is used once, whatever the outcome. */
export function abandonSignIn() {
  clearPending([STATE, VERIFIER, NONCE]);
}

export async function startSignIn(config: OidcConfig) {
  const url = providerUrl(config.authorization_endpoint, "authorization endpoint");
  providerUrl(config.token_endpoint, "token endpoint");
  const verifier = randomText(48);
  const state = randomText(24);
  sessionStorage.setItem(VERIFIER, verifier);
  const nonce = randomText(24);
  sessionStorage.setItem(STATE, state);
  sessionStorage.setItem(NONCE, nonce);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", config.client_id);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("scope", config.scope || "openid");
  url.searchParams.set("state", state);
  url.searchParams.set("nonce", nonce);
  url.searchParams.set("code_challenge", await codeChallenge(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/** The code and state of a redirect back from the provider, if this page load is one. */
export function pendingRedirect(): { code: string | null; state: string | null; error: string | null } | null {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  return {
    code: params.get("code"),
    state: params.get("state"),
    error: params.get("error_description") ?? params.get("error"),
  };
}

/** Removes ?code=&state= from the address bar, keeping the hash route. */
export function clearRedirect() {
  history.replaceState(null, "", `${location.pathname}${location.hash}`);
}

/** Exchanges the code for tokens; the id_token (or else the access_token) becomes the credential. */
export async function finishSignIn(config: OidcConfig, code: string, state: string | null): Promise<string> {
  const expected = sessionStorage.getItem(STATE);
  const verifier = sessionStorage.getItem(VERIFIER);
  const nonce = sessionStorage.getItem(NONCE);
  clearPending([STATE, VERIFIER, NONCE]);
  if (!expected || !verifier || state !== expected) {
    throw new Error("The sign-in answer does not match the sign-in this tab started (state mismatch); sign in again.");
  }
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri(),
    client_id: config.client_id,
    code_verifier: verifier,
  });
  const response = await fetch(providerUrl(config.token_endpoint, "token endpoint"), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  const tokens = (await response.json().catch(() => ({}))) as {
    id_token?: string;
    access_token?: string;
    error?: string;
    error_description?: string;
  };
  if (!response.ok) {
    throw new Error(`The identity provider refused the sign-in: ${tokens.error_description ?? tokens.error ?? response.status}`);
  }
  if (typeof tokens.id_token === "string" && tokens.id_token !== "") {
    if (!nonce || tokenNonce(tokens.id_token) !== nonce) {
      throw new Error("The identity provider's ID token was not issued for this sign-in (nonce mismatch); sign in again.");
    }
    return tokens.id_token;
  }
  if (typeof tokens.access_token === "string" && tokens.access_token !== "") return tokens.access_token;
  throw new Error("The identity provider answered without an id_token or access_token.");
}

/** The `nonce` claim of a JWT, read without checking its signature (the API checks that). */
export function tokenNonce(token: string): string | null {
  const payload = token.split(".")[1];
  if (payload === undefined) return null;
  try {
    const text = atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "="));
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
    const nonce = typeof claims === "object" && claims !== null ? (claims as { nonce?: unknown }).nonce : undefined;
    return typeof nonce === "string" ? nonce : null;
  } catch {
    return null;
  }
}
