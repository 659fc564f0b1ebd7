/**
 * @module
 * Pure geometry of the dashboard's SVG charts: scales, rounded axis maxima and ticks, and the coordinates of a line
 * chart's points and a bar chart's bars. No I/O, no rendering: charts.tsx draws what these functions return, and the
 * numbers are checked in chart-geometry.test.ts.
 */

/** Size of a chart and the margins that hold its axis labels, in SVG user units. */
export interface ChartFrame {
  width: number;
  height: number;
  /** @default 44 */
  left?: number;
  /** @default 12 */
  right?: number;
  /** @default 12 */
  top?: number;
  /** @default 28 */
  bottom?: number;
}

/** The plotting area inside the margins: x grows rightwards from x0, y grows upwards from y0 (SVG y is flipped). */
export interface PlotArea {
  x0: number;
  x1: number;
  /** The baseline (value 0). */
  y0: number;
  /** The top (value yMax). */
  y1: number;
}

export interface Tick {
  value: number;
  /** SVG y of the tick. */
  y: number;
}

export function plotArea(frame: ChartFrame): PlotArea {
  const { width, height, left = 44, right = 12, top = 12, bottom = 28 } = frame;
  if (!(width > left + right) || !(height > top + bottom)) {
    throw new RangeError(`chart frame ${width}×${height} leaves no room inside its margins`);
  }
  return { x0: left, x1: width - right, y0: height - bottom, y1: top };
}

/** The affine map of [d0, d1] onto [r0, r1]; a degenerate domain maps everything to the middle of the range. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** The smallest 1, 2, 2.5 or 5 × 10ᵏ at or above `max` (1 for a max of 0 or less), so ticks land on round numbers. */
export function niceMax(max: number): number {
  if (!Number.isFinite(max)) throw new RangeError(`niceMax: ${max} is not finite`);
  if (max <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    const candidate = step * magnitude;
    // Guard against 0.30000000000000004-style overshoot of an exact step.
    if (candidate >= max * (1 - 1e-12)) return candidate;
  }
  return 10 * magnitude;
}

/** How many steps split a `niceMax` axis into round ticks: 1 → 0.2, 2 → 0.5, 2.5 → 0.5, 5 → 1 (times 10ᵏ). */
export function tickCount(yMax: number): number {
  const mantissa = yMax / 10 ** Math.floor(Math.log10(yMax));
  return Math.abs(mantissa - 2) < 1e-9 ? 4 : 5;
}

/** `count + 1` evenly spaced ticks from 0 to `yMax`, placed on the plot's y axis. */
export function yTicks(yMax: number, area: PlotArea, count = tickCount(yMax)): Tick[] {
  const y = linearScale(0, yMax, area.y0, area.y1);
  return Array.from({ length: count + 1 }, (_, i) => {
    const value = (yMax * i) / count;
    return { value, y: y(value) };
  });
}

/** A number as an axis label: at most 4 significant digits, no trailing zeros. */
export function formatTick(value: number): string {
  if (value === 0) return "0";
  return String(Number(value.toPrecision(4)));
}

export interface LinePoint {
  index: number;
  value: number;
  cx: number;
  cy: number;
}

export interface LineChartGeometry {
  area: PlotArea;
  yMax: number;
  points: LinePoint[];
  /** SVG path data through the points, in order ("" without points). */
  path: string;
  ticks: Tick[];
}

/**
 * A line chart of `values` (one point per index, left to right) whose y axis reaches at least `floor` (e.g. a budget
 * drawn as a horizontal line) and every value.
 */
export function lineChart(values: readonly number[], frame: ChartFrame, floor = 0): LineChartGeometry {
  for (const v of values) if (!Number.isFinite(v) || v < 0) throw new RangeError(`lineChart: bad value ${v}`);
  const area = plotArea(frame);
  const yMax = niceMax(Math.max(floor, ...values));
  const x = linearScale(0, Math.max(values.length - 1, 1), area.x0, area.x1);
  const y = linearScale(0, yMax, area.y0, area.y1);
  const points = values.map((value, index) => ({
    index,
    value,
    cx: values.length === 1 ? (area.x0 + area.x1) / 2 : x(index),
    cy: y(value),
  }));
  const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${round2(p.cx)} ${round2(p.cy)}`).join(" ");
  return { area, yMax, points, path, ticks: yTicks(yMax, area) };
}

export interface Bar {
  index: number;
  value: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface BarChartGeometry {
  area: PlotArea;
  yMax: number;
  bars: Bar[];
  ticks: Tick[];
}

/** A bar chart of `values`, one bar per slot of equal width with a 20 % gap, bars rising from the baseline. */
export function barChart(values: readonly number[], frame: ChartFrame): BarChartGeometry {
  for (const v of values) if (!Number.isFinite(v) || v < 0) throw new RangeError(`barChart: bad value ${v}`);
  const area = plotArea(frame);
  const yMax = niceMax(Math.max(0, ...values));
  const y = linearScale(0, yMax, area.y0, area.y1);
  const slot = (area.x1 - area.x0) / Math.max(values.length, 1);
  const bars = values.map((value, index) => {
    const top = y(value);
    return { index, value, x: area.x0 + slot * index + slot * 0.1, y: top, width: slot * 0.8, height: area.y0 - top };
  });
  return { area, yMax, bars, ticks: yTicks(yMax, area) };
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
