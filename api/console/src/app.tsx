import { useCallback, useEffect, useRef, useState } from "preact/hooks";

import { messageOf, setUnauthorizedHandler } from "./api";
import { fetchMe, type Me } from "./auth/me";
import { abandonSignIn, clearRedirect, finishSignIn, hasPendingSignIn, pendingRedirect } from "./auth/oidc";
import { fetchOidcConfig } from "./auth/oidcConfig";
import { clearSession, getCredential, setCredential } from "./auth/session";
import { SignIn } from "./auth/SignIn";
import { Compliance } from "./compliance/Compliance";
import { EventDetail } from "./event/EventDetail";
import { Header } from "./Header";
import { useRoute } from "./router";
import { Timeline } from "./timeline/Timeline";
import { StatusLine } from "./ui/StatusLine";
import { Verification } from "./verification/Verification";
import { Workbench } from "./workbench/Workbench";

type Phase = { kind: "starting" } | { kind: "signed-out"; notice: string | null } | { kind: "signed-in"; me: Me };

export type Screen = "timeline" | "compliance" | "workbench" | "verification";

const TITLES: Record<string, string> = {
  timeline: "Timeline",
  compliance: "Compliance",
  workbench: "SQL workbench",
  verification: "Verification",
};

export function allowedScreens(me: Me): Screen[] {
  const p = me.permissions;
  const screens: Screen[] = [];
  if (p.read_events) screens.push("timeline");
  if (p.read_events || p.export || p.place_holds || p.change_retention) screens.push("compliance");
  if (p.query) screens.push("workbench");
  if (p.verify) screens.push("verification");
  return screens;
}

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: "starting" });

  const signOut = useCallback((notice: string | null = null) => {
    clearSession();
    setPhase({ kind: "signed-out", notice });
  }, []);

  useEffect(() => {
    setUnauthorizedHandler((error) => signOut(`Signed out: ${error.message}`));
    return () => setUnauthorizedHandler(null);
  }, [signOut]);

  useEffect(() => {
    const start = async () => {
      const redirect = pendingRedirect();
      if (redirect) {
        // The code leaves the address bar (and history) before anything else happens.
        clearRedirect();
        if (!hasPendingSignIn()) {
          // Not the answer to a sign-in this tab started (a crafted link, or a reload after the
          // first answer was used): ignored, so it can neither sign in nor sign out anyone.
          if (!getCredential()) {
            setPhase({ kind: "signed-out", notice: "The sign-in answer does not match a sign-in started in this tab; sign in again." });
            return;
          }
        } else if (redirect.error || !redirect.code) {
          abandonSignIn();
          throw new Error(`The identity provider did not sign you in: ${redirect.error ?? "no code"}`);
        } else {
          const config = await fetchOidcConfig().catch((error) => {
            abandonSignIn();
            throw error;
          });
          if (!config) {
            abandonSignIn();
            throw new Error("This API has no OpenID Connect sign-in configured.");
          }
          setCredential(await finishSignIn(config, redirect.code, redirect.state));
        }
      }
      if (!getCredential()) {
        setPhase({ kind: "signed-out", notice: null });
        return;
      }
      setPhase({ kind: "signed-in", me: await fetchMe() });
    };
    start().catch((error) => signOut(messageOf(error)));
  }, [signOut]);

  const signIn = async (credential: string) => {
    setCredential(credential);
    try {
      const me = await fetchMe();
      setPhase({ kind: "signed-in", me });
    } catch (error) {
      clearSession();
      throw error;
    }
  };

  if (phase.kind === "starting") {
    return (
      <main id="main" class="sign-in">
        <StatusLine testId="app-state" state="loading" message="Starting…" />
      </main>
    );
  }
  if (phase.kind === "signed-out") return <SignIn onSignIn={signIn} notice={phase.notice} />;
  return <SignedIn me={phase.me} onSignOut={() => signOut()} />;
}

function SignedIn({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const route = useRoute();
  const screens = allowedScreens(me);
  const [first, second] = route.segments;
  let current: string = first ?? screens[0] ?? "none";
  if (current === "events" && !me.permissions.read_events) current = "none";
  const known = current === "events" || (screens as string[]).includes(current);

  let body;
  if (!known) {
    body = (
      <StatusLine
        testId="route-state"
        state="empty"
        message={screens.length ? "This page does not exist or your role cannot use it." : "Your role has no console screens."}
      />
    );
  } else if (current === "events") {
    body = second ? <EventDetail key={second} eventId={second} me={me} /> : <Timeline me={me} query={route.query} />;
  } else if (current === "timeline") {
    body = <Timeline me={me} query={route.query} />;
  } else if (current === "compliance") {
    body = <Compliance me={me} />;
  } else if (current === "workbench") {
    body = <Workbench />;
  } else {
    body = <Verification />;
  }
  const active = current === "events" ? "timeline" : current;

  // A route change replaces the whole screen: say so. The title names the screen, and focus moves
  // to <main> (not on the first load, which leaves focus where the browser put it), so keyboard and
  // screen reader users start at the new content instead of on a link that no longer exists.
  const path = route.segments.join("/");
  const firstPath = useRef(true);
  useEffect(() => {
    const screen = current === "events" ? (second ? "Event" : "Timeline") : TITLES[current] ?? "Not found";
    document.title = `${screen} · sealtrail`;
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    document.getElementById("main")?.focus({ preventScroll: false });
  }, [path]);

  return (
    <>
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <Header me={me} screens={screens} active={active} onSignOut={onSignOut} />
      <main id="main" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}
