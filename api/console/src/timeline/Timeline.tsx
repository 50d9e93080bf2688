import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";

import { api, isAbort, messageOf } from "../api";
import type { Me } from "../auth/me";
import type { EventJson } from "../integrity/types";
import { navigate, timelineHref } from "../router";
import { StatusLine } from "../ui/StatusLine";
import { DailyChart, type DayCount } from "./DailyChart";
import { downloadEvents } from "./downloads";
import { isDisplayable } from "../event/displayable";
import { EventTable } from "./EventTable";
import { FilterForm } from "./FilterForm";
import { filtersFromQuery, filtersKey, type Filters } from "./filters";
import { runLiveTail, type TailStatus } from "./liveTail";

const PAGE = 100;
/**
 * The most events the page keeps from the API's pages (the live tail keeps LIVE_MAX more): beyond
 * it infinite scroll stops, so an open tab's memory stays bounded; downloads and exports are the
 * way to take more.
 */
export const MAX_LOADED = 5000;
const LIVE_MAX = 500;

interface Page {
  events: EventJson[];
  next_cursor: string | null;
}

/** The events of a page the screens can draw, and how many were not. */
function pageEvents(page: Page): { events: EventJson[]; malformed: number } {
  const all: unknown[] = Array.isArray(page?.events) ? page.events : [];
  const events = all.filter(isDisplayable);
  return { events, malformed: all.length - events.length };
}

type Load = { kind: "loading" } | { kind: "ready" } | { kind: "error"; message: string };

export function Timeline({ query }: { me: Me; query: URLSearchParams }) {
  const filters = useMemo(() => filtersFromQuery(query), [query.toString()]);
  const key = filtersKey(filters);
  const [events, setEvents] = useState<EventJson[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [moreError, setMoreError] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [reload, setReload] = useState(0);
  const [days, setDays] = useState<DayCount[] | null>(null);
  const [daysError, setDaysError] = useState<string | null>(null);
  const [tail, setTail] = useState(false);
  const [tailStatus, setTailStatus] = useState<TailStatus | null>(null);
  const [live, setLive] = useState<EventJson[]>([]);
  const [malformed, setMalformed] = useState(0);

  // First page and per-day counts, whenever the filters change.
  useEffect(() => {
    const abort = new AbortController();
    setLoad({ kind: "loading" });
    setEvents([]);
    setCursor(null);
    setMoreError(null);
    setLive([]);
    setMalformed(0);
    api<Page>("/v1/events", { query: { ...filters, order: "desc", limit: PAGE }, signal: abort.signal })
      .then((page) => {
        const shown = pageEvents(page);
        setMalformed(shown.malformed);
        setEvents(shown.events);
        setCursor(page.next_cursor ?? null);
        setLoad({ kind: "ready" });
      })
      .catch((error) => isAbort(error) || setLoad({ kind: "error", message: messageOf(error) }));
    setDays(null);
    setDaysError(null);
    api<{ days: DayCount[] }>("/v1/events/per-day", { query: filters, signal: abort.signal })
      .then((answer) => setDays(answer.days))
      .catch((error) => isAbort(error) || setDaysError(messageOf(error)));
    return () => abort.abort();
  }, [key, reload]);

  const moreAbort = useRef<AbortController | null>(null);
  useEffect(() => () => moreAbort.current?.abort(), [key]);

  const capped = events.length >= MAX_LOADED;
  const loadMore = useCallback(async () => {
    if (!cursor || loadingMore || capped) return;
    moreAbort.current?.abort();
    const abort = new AbortController();
    moreAbort.current = abort;
    setLoadingMore(true);
    setMoreError(null);
    try {
      const page = await api<Page>("/v1/events", { query: { ...filters, order: "desc", limit: PAGE, cursor }, signal: abort.signal });
      const shown = pageEvents(page);
      setMalformed((n) => n + shown.malformed);
      setEvents((current) => {
        const seen = new Set(current.map((e) => e.event_id));
        return [...current, ...shown.events.filter((e) => !seen.has(e.event_id))].slice(0, MAX_LOADED);
      });
      setCursor(page.next_cursor ?? null);
    } catch (error) {
      if (!isAbort(error)) setMoreError(messageOf(error));
    } finally {
      if (!abort.signal.aborted) setLoadingMore(false);
    }
  }, [cursor, loadingMore, capped, key]);

  // Infinite scroll: the sentinel below the table asks for the next page when it comes into view.
  const sentinel = useRef<HTMLDivElement>(null);
  const loadMoreRef = useRef(loadMore);
  loadMoreRef.current = loadMore;
  useEffect(() => {
    const node = sentinel.current;
    if (!node || typeof IntersectionObserver === "undefined") return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void loadMoreRef.current();
      },
      { rootMargin: "300px" },
    );
    observer.observe(node);
    return () => observer.disconnect();
  }, [load.kind]);

  // Live tail: runs while the box is ticked and these filters are shown; aborted otherwise.
  useEffect(() => {
    if (!tail) {
      setTailStatus(null);
      return;
    }
    const abort = new AbortController();
    void runLiveTail({
      filters,
      signal: abort.signal,
      onStatus: setTailStatus,
      onEvent: (event) =>
        setLive((current) => (current.some((e) => e.event_id === event.event_id) ? current : [event, ...current].slice(0, LIVE_MAX))),
    });
    return () => abort.abort();
  }, [tail, key]);

  const shown = useMemo(() => [...live, ...events], [live, events]);

  let state;
  if (load.kind === "loading") state = <StatusLine testId="timeline-state" state="loading" message="Loading events…" />;
  else if (load.kind === "error") {
    state = <StatusLine testId="timeline-state" state="error" message={load.message} onRetry={() => setReload((n) => n + 1)} />;
  } else if (shown.length === 0) state = <StatusLine testId="timeline-state" state="empty" message="No events match" />;
  else {
    const more = cursor ? (capped ? `; more match, but this page keeps at most ${MAX_LOADED}: narrow the filters or request an export` : "; more available") : "";
    const bad = malformed ? `; ${malformed} malformed event${malformed === 1 ? "" : "s"} from the API not shown` : "";
    state = (
      <StatusLine
        testId="timeline-state"
        state="ok"
        message={`${shown.length} event${shown.length === 1 ? "" : "s"} shown${more}${bad}`}
      />
    );
  }

  return (
    <div class="screen timeline">
      <h1>Timeline</h1>
      <FilterForm filters={filters} onApply={(applied: Filters) => {
        const href = timelineHref(applied);
        if (`#${location.hash.replace(/^#/, "")}` === href) setReload((n) => n + 1);
        else navigate(href);
      }} />
      {days && days.length > 0 && <DailyChart rows={days} />}
      {daysError && <p class="muted small" data-testid="chart-state">The per-day chart is unavailable: {daysError}</p>}
      <section class="card" aria-labelledby="results-title">
        <div class="toolbar">
          <h2 id="results-title">Events</h2>
          <label class="checkbox">
            <input id="live-tail" type="checkbox" checked={tail} onChange={(e) => setTail(e.currentTarget.checked)} />
            Live tail
          </label>
          <TailIndicator status={tailStatus} />
          <span class="spacer" />
          <button id="download-csv" type="button" disabled={shown.length === 0} onClick={() => downloadEvents(shown, "csv")}>
            Download CSV
          </button>
          <button id="download-ndjson" type="button" disabled={shown.length === 0} onClick={() => downloadEvents(shown, "ndjson")}>
            Download NDJSON
          </button>
        </div>
        {state}
        {shown.length > 0 && <EventTable events={events} live={live} />}
        <div ref={sentinel} class="sentinel" aria-hidden="true" />
        {moreError && <StatusLine testId="load-more-state" state="error" message={moreError} />}
        {cursor && load.kind === "ready" && !capped && (
          <div class="actions center">
            <button id="load-more" type="button" onClick={() => void loadMore()} disabled={loadingMore}>
              {loadingMore ? "Loading…" : "Load more"}
            </button>
          </div>
        )}
      </section>
    </div>
  );
}

function TailIndicator({ status }: { status: TailStatus | null }) {
  if (!status) return null;
  const text =
    status.kind === "connecting"
      ? "Connecting…"
      : status.kind === "live"
        ? `Live: new events appear at the top${status.skipped ? ` (${status.skipped} malformed or oversized message${status.skipped === 1 ? "" : "s"} skipped)` : ""}`
        : status.kind === "reconnecting"
          ? `Reconnecting in ${status.inSeconds} s (${status.reason})`
          : `Live tail stopped: ${status.reason}`;
  return (
    <span class={`tail-status tail-${status.kind}`} data-testid="live-tail-state" data-state={status.kind} role="status" aria-live="polite">
      {text}
    </span>
  );
}
