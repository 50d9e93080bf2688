import type { Me } from "../auth/me";
import { Exports } from "./Exports";
import { Holds } from "./Holds";
import { Retention } from "./Retention";

/** Forms and change buttons exist only for roles that may use them; the API enforces it anyway. */
export function Compliance({ me }: { me: Me }) {
  const p = me.permissions;
  return (
    <div class="screen compliance">
      <h1>Compliance</h1>
      <Holds canChange={p.place_holds} />
      {p.export && <Exports />}
      <Retention canChange={p.change_retention} />
    </div>
  );
}
