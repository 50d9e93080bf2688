import { useEffect, useRef, useState } from "preact/hooks";

import { messageOf } from "../api";
import { startSignIn } from "./oidc";
import { fetchOidcConfig, issuerHost, type OidcConfig } from "./oidcConfig";

interface Props {
  onSignIn: (credential: string) => Promise<void>;
  /** Why the user is here again (a refused key, an expired token, a failed OIDC return). */
  notice: string | null;
}

export function SignIn({ onSignIn, notice }: Props) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [oidc, setOidc] = useState<OidcConfig | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    // Without the endpoint the console still works with API keys.
    fetchOidcConfig().then(setOidc, () => setOidc(null));
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    // The input itself is read: a submit right after typing may come before the re-render.
    const credential = (input.current?.value ?? key).trim();
    if (!credential) {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(credential);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };

  const shown = error ?? notice;
  return (
    <main id="main" class="sign-in">
      <section class="card sign-in-card" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">sealtrail</h1>
        <p class="muted">The auditor's console: a tamper-evident audit trail, checked in your browser.</p>
        <form onSubmit={submit} class="stack">
          <label for="api-key">API key</label>
          <input
            id="api-key"
            ref={input}
            type="password"
            autocomplete="off"
            spellcheck={false}
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            aria-describedby="sign-in-status"
          />
          <button id="sign-in" type="submit" class="primary" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        {oidc && (
          <div class="stack oidc">
            <p class="muted">or</p>
            <button id="sign-in-oidc" type="button" onClick={() => startSignIn(oidc).catch((failure) => setError(messageOf(failure)))}>
              Sign in with {issuerHost(oidc)}
            </button>
          </div>
        )}
        <p id="sign-in-status" class={shown ? "error-text" : "visually-hidden"} role="alert" aria-live="assertive">
          {shown ?? ""}
        </p>
        <p class="muted small">The credential is kept in this tab's session storage only.</p>
      </section>
    </main>
  );
}
