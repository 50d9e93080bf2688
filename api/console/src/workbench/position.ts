// Where a refused query went wrong: the API's `at` reads "line 2, column 14: token" (1-based,
// columns counted in characters), or just "line 2, column 14", or names no position ("sql").

export interface Position {
  line: number;
  column: number;
  token: string | null;
}

export function parsePosition(at: string | undefined | null): Position | null {
  if (!at) return null;
  const m = /^line (\d+), column (\d+)(?:: ([\s\S]*))?$/.exec(at);
  if (!m) return null;
  const line = Number(m[1]);
  const column = Number(m[2]);
  if (line < 1 || column < 1) return null;
  return { line, column, token: m[3] ?? null };
}

export interface Highlight {
  before: string;
  marked: string;
  after: string;
}

/**
 * Splits the query around the position: the mark covers the token when the text there starts with
 * it, else one character (or nothing past the end of a line).
 */
export function highlight(sql: string, position: Position): Highlight | null {
  const lines = sql.split(/\r\n|\n|\r/);
  if (position.line > lines.length) return null;
  let offset = 0;
  const newlines = sql.match(/\r\n|\n|\r/g) ?? [];
  for (let i = 0; i < position.line - 1; i++) offset += [...lines[i]!].length + [...newlines[i]!].length;
  const chars = [...sql];
  const lineChars = [...lines[position.line - 1]!];
  const col = Math.min(position.column - 1, lineChars.length);
  const start = offset + col;
  const rest = lineChars.slice(col).join("");
  let length = rest.length > 0 ? 1 : 0;
  if (position.token && rest.startsWith(position.token)) length = [...position.token].length;
  else if (position.token && rest.toLowerCase().startsWith(position.token.toLowerCase())) length = [...position.token].length;
  return {
    before: chars.slice(0, start).join(""),
    marked: chars.slice(start, start + length).join(""),
    after: chars.slice(start + length).join(""),
  };
}
