// Authorization code flow with PKCE (RFC 7636, S256) for a public browser client. The verifier and
// state are kept in sessionStorage across the redirect, and used once.

import { clearPending, type OidcConfig } from "./oidcConfig";

const VERIFIER = "sealtrail.oidc.verifier";
const STATE = "sealtrail.oidc.state";

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

export async function startSignIn(config: OidcConfig) {
  const verifier = randomText(48);
  const state = randomText(24);
  sessionStorage.setItem(VERIFIER, verifier);
  sessionStorage.setItem(STATE, state);
  const url = new URL(config.authorization_endpoint);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", config.client_id);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("scope", config.scope || "openid");
  url.searchParams.set("state", state);
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
  clearPending([STATE, VERIFIER]);
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
  const response = await fetch(config.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
    credentials: "omit",
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
  const credential = tokens.id_token ?? tokens.access_token;
  if (!credential) throw new Error("The identity provider answered without an id_token or access_token.");
  return credential;
}
