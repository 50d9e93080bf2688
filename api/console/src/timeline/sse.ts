// A server-sent events parser (the WHATWG "event stream" format) for streams read with fetch():
// EventSource cannot send an Authorization header. Feed it decoded text in any chunking.
//
// Memory is bounded whatever the stream holds: a line longer than `maxLine` characters, or a
// message whose data grows beyond `maxMessage`, is dropped (counted in `dropped`) instead of being
// buffered until the tab runs out of memory.

export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

export interface SseLimits {
  /** The longest line kept, in UTF-16 code units. */
  maxLine: number;
  /** The most data one message may gather, in UTF-16 code units. */
  maxMessage: number;
}

export const SSE_LIMITS: SseLimits = { maxLine: 4 * 1024 * 1024, maxMessage: 4 * 1024 * 1024 };

export class SseParser {
  /** Messages dropped because a line or their data was over the limits. */
  dropped = 0;
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private dataSize = 0;
  private id: string | null = null;
  private sawCr = false;
  /** The rest of an over-long line is being skipped, up to its end. */
  private skippingLine = false;
  /** The message being gathered is over the limits: it is dropped at its blank line. */
  private dropping = false;

  constructor(private readonly limits: SseLimits = SSE_LIMITS) {}

  feed(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    if (chunk === "") return out;
    let text = chunk;
    // A CRLF split across chunks: the LF belongs to the CR already taken as a line end.
    if (this.sawCr) {
      this.sawCr = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    const ends = /\r\n|\r|\n/g;
    let start = 0;
    for (let match = ends.exec(text); match; match = ends.exec(text)) {
      const line = this.buffer + text.slice(start, match.index);
      this.buffer = "";
      start = ends.lastIndex;
      if (match[0] === "\r" && start === text.length) this.sawCr = true;
      if (this.skippingLine) {
        this.skippingLine = false;
        continue;
      }
      if (line.length > this.limits.maxLine) {
        this.drop();
        continue;
      }
      const message = this.line(line);
      if (message) out.push(message);
    }
    const rest = text.slice(start);
    if (!this.skippingLine) {
      if (this.buffer.length + rest.length > this.limits.maxLine) {
        this.buffer = "";
        this.skippingLine = true;
        this.drop();
      } else {
        this.buffer += rest;
      }
    }
    return out;
  }

  private drop() {
    this.dropping = true;
    this.data = [];
    this.dataSize = 0;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.dropping) {
        this.dropped++;
        this.dropping = false;
        this.event = "";
        return null;
      }
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message = { event: this.event || "message", data: this.data.join("\n"), id: this.id };
      this.event = "";
      this.data = [];
      this.dataSize = 0;
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") {
      if (this.dropping) return null;
      this.dataSize += value.length + 1;
      if (this.dataSize > this.limits.maxMessage) this.drop();
      else this.data.push(value);
    } else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }
}
