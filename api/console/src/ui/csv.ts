// CSV (RFC 4180) that is safe to open in a spreadsheet: cells that a spreadsheet would read as a
// formula are prefixed with a single quote. That is a cell starting with = + - @ (or their
// full-width forms, which some spreadsheets fold to ASCII), also after leading spaces or control
// characters (which some importers trim), or starting with a tab, carriage return or line feed.

const FORMULA = /^[\s\u0000-\u001f\u3000]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]|^[\t\r\n]/;

export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  if (FORMULA.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}
