// Live tail over GET /v1/events/stream, read with fetch() so the bearer credential can be sent.
// It reconnects from the last sequence seen, and stops for good when its signal aborts.

import { ApiError, request, withQuery } from "../api";
import type { EventJson } from "../integrity/types";
import { isDisplayable } from "../event/displayable";
import { SseParser } from "./sse";
import type { Filters } from "./filters";

export type TailStatus =
  | { kind: "connecting" }
  | { kind: "live"; afterSeq: number | null; skipped: number }
  | { kind: "reconnecting"; reason: string; inSeconds: number }
  | { kind: "stopped"; reason: string };

interface Options {
  filters: Filters;
  signal: AbortSignal;
  onEvent: (event: EventJson) => void;
  onStatus: (status: TailStatus) => void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

/** A sequence number as the stream states it (decimal digits, exact), or null. */
export function sequenceOf(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value !== "string" || !/^\d{1,16}$/.test(value)) return null;
  const seq = Number(value);
  return Number.isSafeInteger(seq) ? seq : null;
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

export async function runLiveTail({ filters, signal, onEvent, onStatus }: Options): Promise<void> {
  let afterSeq: number | null = null;
  let delay = 1000;
  // Messages that could not be shown (malformed, or over the parser's size limits), for the status.
  let skipped = 0;
  while (!signal.aborted) {
    onStatus({ kind: "connecting" });
    let reason = "the stream ended";
    try {
      const response = await request(withQuery("/v1/events/stream", { ...filters, after_seq: afterSeq ?? undefined }), {
        headers: { Accept: "text/event-stream" },
        signal,
      });
      if (!response.body) throw new ApiError(0, "stream", "this browser cannot read a streamed response");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      let live = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const dropped = parser.dropped;
        for (const message of parser.feed(value)) {
          if (message.event === "ready") {
            const ready = parse(message.data) as { after_seq?: unknown } | undefined;
            const seq = sequenceOf(ready?.after_seq);
            if (afterSeq === null && seq !== null) afterSeq = seq;
            delay = 1000;
            live = true;
            onStatus({ kind: "live", afterSeq, skipped });
          } else if (message.event === "event") {
            const event = parse(message.data);
            if (!isDisplayable(event)) {
              skipped++;
              if (live) onStatus({ kind: "live", afterSeq, skipped });
              continue;
            }
            const seq = sequenceOf(message.id ?? event.integrity.seq);
            if (seq !== null) afterSeq = Math.max(afterSeq ?? 0, seq);
            onEvent(event);
          }
        }
        if (parser.dropped !== dropped) {
          skipped += parser.dropped - dropped;
          if (live) onStatus({ kind: "live", afterSeq, skipped });
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        onStatus({ kind: "stopped", reason: error.message });
        return;
      }
      reason = error instanceof Error ? error.message : String(error);
    }
    if (signal.aborted) return;
    onStatus({ kind: "reconnecting", reason, inSeconds: Math.round(delay / 1000) });
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 15_000);
  }
}

