import type { EventJson } from "../integrity/types";
import { objectDiff } from "./flatten";

function Value({ text }: { text: string | null | undefined }) {
  if (text === null || text === undefined) return <span class="muted">(absent)</span>;
  return <code class="value">{text}</code>;
}

export function Changes({ changes }: { changes: EventJson["changes"] }) {
  if (changes.length === 0) return null;
  return (
    <section class="card" aria-labelledby="changes-title" data-testid="changes">
      <h2 id="changes-title">Changes</h2>
      {changes.map((change, i) => {
        const diff = objectDiff(change.before, change.after);
        return (
          <div class="change" key={`${change.field}-${i}`} data-change-field={change.field}>
            <h3 class="mono">{change.field}</h3>
            {diff === null ? (
              <p class="before-after">
                <Value text={change.before} /> <span aria-label="changed to">→</span> <Value text={change.after} />
              </p>
            ) : diff.length === 0 ? (
              <p class="muted">No difference between before and after.</p>
            ) : (
              <div class="table-scroll">
                <table class="data-table diff">
                  <thead>
                    <tr>
                      <th scope="col">Path</th>
                      <th scope="col">Change</th>
                      <th scope="col">Before</th>
                      <th scope="col">After</th>
                    </tr>
                  </thead>
                  <tbody>
                    {diff.map((d) => (
                      <tr key={d.path} data-diff-path={d.path} data-diff-kind={d.kind} class={`diff-${d.kind}`}>
                        <td class="mono">{d.path}</td>
                        <td>{d.kind}</td>
                        <td>
                          <Value text={d.before} />
                        </td>
                        <td>
                          <Value text={d.after} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
        );
      })}
    </section>
  );
}
