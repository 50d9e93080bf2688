// Live tail over GET /v1/events/stream, read with fetch() so the bearer credential can be sent.
// It reconnects from the last sequence seen, and stops for good when its signal aborts.

import { ApiError, request, withQuery } from "../api";
import type { EventJson } from "../integrity/types";
import { SseParser } from "./sse";
import type { Filters } from "./filters";

export type TailStatus =
  | { kind: "connecting" }
  | { kind: "live"; afterSeq: number | null }
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
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export async function runLiveTail({ filters, signal, onEvent, onStatus }: Options): Promise<void> {
  let afterSeq: number | null = null;
  let delay = 1000;
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
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.feed(value)) {
          if (message.event === "ready") {
            const ready = JSON.parse(message.data) as { after_seq?: number };
            if (afterSeq === null && typeof ready.after_seq === "number") afterSeq = ready.after_seq;
            delay = 1000;
            onStatus({ kind: "live", afterSeq });
          } else if (message.event === "event") {
            const event = JSON.parse(message.data) as EventJson;
            const seq = message.id !== null ? Number(message.id) : event.integrity?.seq;
            if (typeof seq === "number" && Number.isFinite(seq)) afterSeq = Math.max(afterSeq ?? 0, seq);
            onEvent(event);
          }
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

