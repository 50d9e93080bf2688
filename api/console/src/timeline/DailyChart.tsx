// Events per day as stacked SVG bars, by category or by outcome. Colours come from classes (the
// CSP forbids inline styles); every bar has a <title>, and the legend is text.

import { useMemo, useState } from "preact/hooks";

import { formatCount } from "../ui/format";

export interface DayCount {
  day: string;
  category: string;
  outcome: string;
  events: number;
}

type Mode = "category" | "outcome";

const OUTCOMES = ["SUCCESS", "FAILURE", "DENIED"];
const MAX_SERIES = 7;
const W = 800;
const H = 240;
const PAD = { left: 44, right: 8, top: 10, bottom: 34 };

interface Series {
  key: string;
  label: string;
  className: string;
}

function seriesFor(mode: Mode, rows: DayCount[]): { series: Series[]; keyOf: (row: DayCount) => string } {
  if (mode === "outcome") {
    return {
      series: OUTCOMES.map((o) => ({ key: o, label: o.toLowerCase(), className: `outcome-fill-${o.toLowerCase()}` })),
      keyOf: (row) => (OUTCOMES.includes(row.outcome) ? row.outcome : "FAILURE"),
    };
  }
  const totals = new Map<string, number>();
  for (const row of rows) totals.set(row.category, (totals.get(row.category) ?? 0) + row.events);
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([c]) => c);
  const shown = ranked.length > MAX_SERIES ? ranked.slice(0, MAX_SERIES - 1) : ranked;
  const series = shown.map((c, i) => ({ key: c, label: c, className: `series-${i}` }));
  if (ranked.length > shown.length) series.push({ key: "\u0000other", label: "other categories", className: "series-other" });
  return { series, keyOf: (row) => (shown.includes(row.category) ? row.category : "\u0000other") };
}

/** A round axis maximum: 1, 2 or 5 times a power of ten. */
function niceMax(n: number): number {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (step * power >= n) return step * power;
  return 10 * power;
}

export function DailyChart({ rows }: { rows: DayCount[] }) {
  const [mode, setMode] = useState<Mode>("category");
  const model = useMemo(() => {
    const { series, keyOf } = seriesFor(mode, rows);
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const counts = new Map<string, Map<string, number>>();
    for (const row of rows) {
      const day = counts.get(row.day) ?? new Map<string, number>();
      const key = keyOf(row);
      day.set(key, (day.get(key) ?? 0) + row.events);
      counts.set(row.day, day);
    }
    const totals = days.map((d) => [...(counts.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0));
    const notSuccess = rows.filter((r) => r.outcome !== "SUCCESS");
    return {
      series,
      days,
      counts,
      max: niceMax(Math.max(0, ...totals)),
      failures: notSuccess.filter((r) => r.outcome === "FAILURE").reduce((a, r) => a + r.events, 0),
      denied: notSuccess.filter((r) => r.outcome === "DENIED").reduce((a, r) => a + r.events, 0),
      total: totals.reduce((a, b) => a + b, 0),
    };
  }, [rows, mode]);

  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = model.days.length ? plotW / model.days.length : plotW;
  const barW = Math.max(1, Math.min(40, slot * 0.8));
  const y = (n: number) => PAD.top + plotH - (n / model.max) * plotH;
  const labelEvery = Math.max(1, Math.ceil(model.days.length / 8));
  const title = `Events per day by ${mode}: ${formatCount(model.total)} events over ${model.days.length} days, ${formatCount(model.failures)} failures, ${formatCount(model.denied)} denied`;

  return (
    <section class="card chart-card" aria-labelledby="chart-title">
      <div class="chart-head">
        <h2 id="chart-title">Events per day</h2>
        <fieldset class="segmented">
          <legend class="visually-hidden">Stack bars by</legend>
          {(["category", "outcome"] as Mode[]).map((m) => (
            <label key={m} class={mode === m ? "selected" : ""}>
              <input type="radio" name="chart-mode" value={m} checked={mode === m} onChange={() => setMode(m)} />
              by {m}
            </label>
          ))}
        </fieldset>
      </div>
      <p class="muted small" data-testid="chart-summary">
        {formatCount(model.total)} events · <span class="text-failure">{formatCount(model.failures)} failures</span> ·{" "}
        <span class="text-denied">{formatCount(model.denied)} denied</span>
      </p>
      <svg data-testid="daily-chart" data-mode={mode} class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="chart-svg-title">
        <title id="chart-svg-title">{title}</title>
        {[0, 0.5, 1].map((f) => (
          <g key={f} class="grid">
            <line x1={PAD.left} x2={W - PAD.right} y1={y(model.max * f)} y2={y(model.max * f)} />
            <text x={PAD.left - 6} y={y(model.max * f) + 4} class="axis-label" text-anchor="end">
              {formatCount(model.max * f)}
            </text>
          </g>
        ))}
        {model.days.map((day, i) => {
          const x = PAD.left + i * slot + (slot - barW) / 2;
          let base = 0;
          return (
            <g key={day} data-day={day}>
              {model.series.map((s) => {
                const n = model.counts.get(day)?.get(s.key) ?? 0;
                if (!n) return null;
                const top = y(base + n);
                const height = y(base) - top;
                base += n;
                return (
                  <rect key={s.key} class={`bar ${s.className}`} x={x} y={top} width={barW} height={Math.max(height, 0.5)}>
                    <title>{`${day} · ${s.label}: ${formatCount(n)}`}</title>
                  </rect>
                );
              })}
              {i % labelEvery === 0 && (
                <text x={x + barW / 2} y={H - PAD.bottom + 16} class="axis-label" text-anchor="middle">
                  {day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <ul class="legend" aria-label="Legend">
        {model.series.map((s) => (
          <li key={s.key}>
            <span class={`swatch ${s.className}`} aria-hidden="true" />
            {s.label}
          </li>
        ))}
      </ul>
    </section>
  );
}
