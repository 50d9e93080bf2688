import type { EventJson } from "../integrity/types";
import { eventHref, navigate } from "../router";
import { formatTime } from "../ui/format";
import { OutcomeBadge } from "../ui/OutcomeBadge";

interface Props {
  events: EventJson[];
  /** Events that arrived through the live tail, shown first and marked. */
  live: EventJson[];
}

function Row({ event, live }: { event: EventJson; live: boolean }) {
  const href = eventHref(event.event_id);
  const open = (e: MouseEvent) => {
    // The link is the row's one control (one tab stop, announced as a link with the row's cells);
    // a click elsewhere on the row is only a larger target for the mouse. Selecting text is not.
    if ((e.target as HTMLElement).closest("a") || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    if (window.getSelection()?.toString()) return;
    navigate(href);
  };
  return (
    <tr data-event-id={event.event_id} data-live={live ? "true" : undefined} class={live ? "row live-row" : "row"} onClick={open}>
      <td class="nowrap">
        {live && <span class="badge badge-new">new</span>}
        <a class="event-link" href={href}>
          <time dateTime={String(event.occurred_at)}>{formatTime(event.occurred_at)}</time>
        </a>
      </td>
      <td class="mono">{event.actor.id}</td>
      <td class="mono">{event.action}</td>
      <td>
        <span class="muted">{event.resource.type}</span> <span class="mono">{event.resource.id}</span>
      </td>
      <td>
        <OutcomeBadge status={event.outcome.status} />
      </td>
      <td>{event.classification.category}</td>
    </tr>
  );
}

export function EventTable({ events, live }: Props) {
  return (
    <div class="table-scroll" role="region" aria-label="Events" tabIndex={0}>
      <table data-testid="timeline-table" class="data-table">
        <caption class="visually-hidden">Events, newest first; events that arrived while the live tail is on come first. Open an event with the link on its time.</caption>
        <thead>
          <tr>
            <th scope="col">Time (UTC)</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Resource</th>
            <th scope="col">Outcome</th>
            <th scope="col">Category</th>
          </tr>
        </thead>
        {live.length > 0 && (
          <tbody class="live-body" data-testid="live-events">
            <tr class="group-row">
              <th scope="rowgroup" colSpan={6}>
                Live: {live.length} new event{live.length === 1 ? "" : "s"} since live tail started (newest first)
              </th>
            </tr>
            {live.map((event) => (
              <Row key={`live-${event.event_id}`} event={event} live />
            ))}
          </tbody>
        )}
        <tbody>
          {events.map((event) => (
            <Row key={event.event_id} event={event} live={false} />
          ))}
        </tbody>
      </table>
    </div>
  );
}
