// Hash routes: `#/timeline?actor=...`, `#/events/<id>`, `#/compliance`, `#/workbench`,
// `#/verification`. The query after the path is what makes a view linkable.

import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Path segments after `#/`, decoded. */
  segments: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const text = hash.replace(/^#\/?/, "");
  const at = text.indexOf("?");
  const path = at === -1 ? text : text.slice(0, at);
  const query = new URLSearchParams(at === -1 ? "" : text.slice(at + 1));
  const segments = path
    .split("/")
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { segments, query };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const update = () => setHash(location.hash);
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return parseHash(hash);
}

export function eventHref(eventId: string): string {
  return `#/events/${encodeURIComponent(eventId)}`;
}

export function timelineHref(query: Record<string, string>): string {
  const text = new URLSearchParams(query).toString();
  return text ? `#/timeline?${text}` : "#/timeline";
}

export function navigate(href: string) {
  location.hash = href.replace(/^#/, "");
}
