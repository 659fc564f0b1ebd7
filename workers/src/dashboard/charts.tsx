/**
 * @module
 * The dashboard's charts as inline SVG, rendered on the server (no script, no download): ε spent over a population's
 * rounds against its budget, and an API key's calls per day. Geometry comes from chart-geometry.ts; every mark
 * carries its value in a `data-*` attribute so tests and assistive tools read numbers, not pixels.
 */
import type { FC } from "hono/jsx";
import { barChart, formatTick, lineChart, type PlotArea, type Tick } from "./chart-geometry.ts";
import type { EpsilonPoint } from "./epsilon-series.ts";

const Axis: FC<{ area: PlotArea; ticks: Tick[] }> = ({ area, ticks }) => (
  <g class="axis">
    {ticks.map((t) => (
      <g>
        <line x1={area.x0} x2={area.x1} y1={t.y} y2={t.y} class="grid" />
        <text x={area.x0 - 6} y={t.y + 4} text-anchor="end">
          {formatTick(t.value)}
        </text>
      </g>
    ))}
    <line x1={area.x0} x2={area.x1} y1={area.y0} y2={area.y0} class="baseline" />
  </g>
);

/** ε after each charged round (points joined by a line) under the budget's ε_max (a dashed line). */
export const EpsilonChart: FC<{ population: string; series: EpsilonPoint[]; budget: number }> = (props) => {
  const width = 560;
  const height = 200;
  // 5 % headroom above the budget, so its line and label never sit on the frame's edge.
  const g = lineChart(
    props.series.map((p) => p.epsilon),
    { width, height },
    props.budget * 1.05,
  );
  const budgetY = g.area.y0 - ((g.area.y0 - g.area.y1) * props.budget) / g.yMax;
  const first = props.series[0];
  const last = props.series.at(-1);
  return (
    <svg
      class="chart epsilon-chart"
      data-population={props.population}
      data-budget={String(props.budget)}
      viewBox={`0 0 ${width} ${height}`}
      width={width}
      height={height}
      role="img"
      aria-label={`ε spent by ${props.population} over ${props.series.length} rounds, against a budget of ${formatTick(props.budget)}`}
    >
      <Axis area={g.area} ticks={g.ticks} />
      <line x1={g.area.x0} x2={g.area.x1} y1={budgetY} y2={budgetY} class="budget" />
      <text x={g.area.x1} y={budgetY - 5} text-anchor="end" class="budget-label">
        budget ε = {formatTick(props.budget)}
      </text>
      <path d={g.path} class="line" />
      {g.points.map((p) => {
        const point = props.series[p.index]!;
        return (
          <circle cx={p.cx} cy={p.cy} r={3.5} class="point" data-round={point.roundId} data-epsilon={String(p.value)}>
            <title>
              {point.roundId}: ε = {formatTick(p.value)}
            </title>
          </circle>
        );
      })}
      {first && (
        <text x={g.area.x0} y={height - 8} class="x-label">
          {first.roundId}
        </text>
      )}
      {last && last !== first && (
        <text x={g.area.x1} y={height - 8} text-anchor="end" class="x-label">
          {last.roundId}
        </text>
      )}
    </svg>
  );
};

/** Calls per UTC day as bars. */
export const UsageChart: FC<{ keyId: string; days: { day: string; calls: number }[] }> = (props) => {
  const width = 560;
  const height = 160;
  const g = barChart(
    props.days.map((d) => d.calls),
    { width, height },
  );
  const first = props.days[0];
  const last = props.days.at(-1);
  return (
    <svg
      class="chart usage-chart"
      data-key={props.keyId}
      viewBox={`0 0 ${width} ${height}`}
      width={width}
      height={height}
      role="img"
      aria-label={`calls per day of key ${props.keyId}`}
    >
      <Axis area={g.area} ticks={g.ticks} />
      {g.bars.map((b) => {
        const day = props.days[b.index]!;
        return (
          <rect
            x={b.x}
            y={b.y}
            width={b.width}
            height={b.height}
            class="bar"
            data-day={day.day}
            data-calls={String(b.value)}
          >
            <title>
              {day.day}: {b.value} calls
            </title>
          </rect>
        );
      })}
      {first && (
        <text x={g.area.x0} y={height - 8} class="x-label">
          {first.day}
        </text>
      )}
      {last && last !== first && (
        <text x={g.area.x1} y={height - 8} text-anchor="end" class="x-label">
          {last.day}
        </text>
      )}
    </svg>
  );
};
