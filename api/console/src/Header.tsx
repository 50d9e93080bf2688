import type { Me } from "./auth/me";
import type { Screen } from "./app";

const LABELS: Record<Screen, string> = {
  timeline: "Timeline",
  compliance: "Compliance",
  workbench: "SQL workbench",
  verification: "Verification",
};

interface Props {
  me: Me;
  screens: Screen[];
  active: string;
  onSignOut: () => void;
}

export function Header({ me, screens, active, onSignOut }: Props) {
  return (
    <header class="app-header">
      <div class="brand">
        <span class="brand-mark" aria-hidden="true">◆</span>
        <span>sealtrail</span>
      </div>
      <nav aria-label="Main">
        <ul>
          {screens.map((screen) => (
            <li key={screen}>
              <a href={`#/${screen}`} data-nav={screen} aria-current={active === screen ? "page" : undefined}>
                {LABELS[screen]}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <div class="session">
        <span data-testid="whoami" class="whoami" title={me.subject}>
          <span class="whoami-subject">{me.subject}</span>
          <span class="whoami-sep" aria-hidden="true"> · </span>
          <span class="whoami-tenant">tenant {me.tenant}</span>
          <span class="whoami-sep" aria-hidden="true"> · </span>
          <span class="whoami-roles">{me.roles.join(", ") || "no role"}</span>
        </span>
        <button id="sign-out" type="button" onClick={onSignOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}
