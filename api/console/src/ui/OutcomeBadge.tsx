/** An outcome as a word and a colour, never colour alone. */
export function OutcomeBadge({ status }: { status: string }) {
  const kind = status.toLowerCase();
  return <span class={`badge outcome outcome-${kind}`}>{kind}</span>;
}
