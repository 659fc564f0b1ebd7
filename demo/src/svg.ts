/**
 * @module
 * A small line-chart writer for the demo's plots, as pure functions: series in, a standalone SVG 1.1 document out.
 * Every text node and attribute value is escaped (`escapeXml`), every number is checked finite and printed with fixed
 * precision, so the output is always well-formed XML whatever the labels hold.
 */

export interface Series {
  /** Legend label. */
  label: string;
  /**
   * Points in data coordinates (non-finite points are skipped). `lo`/`hi` draw a vertical whisker (e.g. the range
   * over seeds).
   */
  points: { x: number; y: number; lo?: number; hi?: number }[];
  /** Stroke colour (a CSS colour: hex, or a plain name). @default a palette colour */
  color?: string;
  /** Dashed line. @default false */
  dashed?: boolean;
  /** Draw the points as markers. @default true */
  markers?: boolean;
}

/** A horizontal line across the whole plot (a baseline), listed in the legend. */
export interface HorizontalLine {
  y: number;
  label: string;
  /** @default a palette colour after the series' */
  color?: string;
  /** @default true */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Horizontal lines (baselines), drawn across the plot and listed in the legend. */
  hlines?: HorizontalLine[];
  /** Axis ranges; default: the data's range (y padded), x from its minimum. */
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Logarithmic x axis (base 2 ticks at `xTicks`, or at the powers of 2 in range). @default false */
  xLog?: boolean;
  /** Tick values of the x axis. @default "nice" ticks of the range */
  xTicks?: number[];
  /** y tick labels as percentages (0.93 → "93%"). @default false */
  yPercent?: boolean;
  /** A horizontal reference line (e.g. the accuracy goal) with its label, drawn thin and grey, not in the legend. */
  reference?: { y: number; label: string };
  /** @default 760 */
  width?: number;
  /** Height of the plot area and axes, without the legend below it. @default 400 */
  height?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
const COLOR_RE = /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,20})$/;

/** Escapes the five XML special characters (text nodes and double-quoted attributes). */
export function escapeXml(text: string): string {
  return (
    String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&apos;")
      // characters XML 1.0 forbids outright
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "")
  );
}

/** A finite number with at most 2 decimals, for coordinates. */
function n(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`non-finite coordinate ${v}`);
  return (Math.round(v * 100) / 100).toString();
}

/** "Nice" tick values covering [lo, hi] (1, 2, 5 × 10^k steps). */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new RangeError("tick range must be finite");
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function fmtTick(v: number): string {
  return Number.isInteger(v)
    ? String(v)
    : String(Number(v.toFixed(Math.min(4, Math.max(0, -Math.floor(Math.log10(Math.abs(v) || 1)) + 1)))));
}

interface El {
  name: string;
  attrs: Record<string, string | number>;
  text?: string;
  children?: El[];
}

function render(el: El, indent = ""): string {
  const attrs = Object.entries(el.attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(typeof v === "number" ? n(v) : v)}"`)
    .join("");
  if (el.children && el.children.length > 0) {
    return `${indent}<${el.name}${attrs}>\n${el.children.map((c) => render(c, indent + "  ")).join("\n")}\n${indent}</${el.name}>`;
  }
  if (el.text !== undefined) return `${indent}<${el.name}${attrs}>${escapeXml(el.text)}</${el.name}>`;
  return `${indent}<${el.name}${attrs}/>`;
}

/** Approximate width of `text` at `size` px in a sans-serif font (for laying out the legend). */
function textWidth(text: string, size: number): number {
  return text.length * size * 0.56;
}

/**
 * Renders a line chart as a standalone SVG document (see the module header). The legend sits below the plot, so it
 * never covers the data.
 */
export function lineChartSvg(o: LineChartOptions): string {
  const W = o.width ?? 760;
  const plotH = o.height ?? 400;
  const m = { left: 70, right: 24, top: 44, bottom: 58 };
  const hlines = (o.hlines ?? []).filter((h) => Number.isFinite(h.y));
  const tx = (x: number) => (o.xLog ? Math.log2(x) : x);
  const finite = (p: { x: number; y: number }) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.xLog || p.x > 0);
  const pts = o.series.flatMap((s) => s.points.filter(finite));
  const xs = pts.map((p) => p.x);
  const ys = pts
    .flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y])
    .concat(
      hlines.map((h) => h.y),
      o.reference ? [o.reference.y] : [],
    );
  let [x0, x1] = o.xDomain ?? [xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1];
  let [y0, y1] = o.yDomain ?? [ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1];
  if (o.xLog) {
    x0 = Math.log2(x0 > 0 ? x0 : 1);
    x1 = Math.log2(x1 > 0 ? x1 : 2);
  }
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const xt = o.xTicks
    ? o.xTicks.filter((t) => Number.isFinite(t) && (!o.xLog || t > 0)).map(tx)
    : o.xLog
      ? niceTicks(Math.ceil(x0), Math.floor(x1)).filter(Number.isInteger)
      : niceTicks(x0, x1);
  const yt = niceTicks(y0, y1);
  // percent labels with as many decimals as the tick step needs (a step of 0.5% shows one)
  const yDecimals = yt.length > 1 ? Math.max(0, -Math.floor(Math.log10((yt[1]! - yt[0]!) * 100) + 1e-9)) : 0;
  if (!o.xTicks && xt.length) {
    x0 = Math.min(x0, xt[0]!);
    x1 = Math.max(x1, xt.at(-1)!);
  }
  if (!o.yDomain) {
    y0 = Math.min(y0, yt[0]!);
    y1 = Math.max(y1, yt.at(-1)!);
  }
  const px = (x: number) => m.left + ((tx(x) - x0) / (x1 - x0)) * (W - m.left - m.right);
  const pxt = (t: number) => m.left + ((t - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y: number) => plotH - m.bottom - ((y - y0) / (y1 - y0)) * (plotH - m.top - m.bottom);
  const inY = (y: number) => y >= y0 - 1e-12 && y <= y1 + 1e-12;

  // legend entries: series then horizontal lines, laid out in rows below the plot
  const colorOf = (c: string | undefined, i: number) => (c && COLOR_RE.test(c) ? c : PALETTE[i % PALETTE.length]!);
  const entries = [
    ...o.series.map((s, i) => ({
      label: s.label,
      color: colorOf(s.color, i),
      dashed: !!s.dashed,
      marker: s.markers !== false,
    })),
    ...hlines.map((h, i) => ({
      label: h.label,
      color: colorOf(h.color, o.series.length + i),
      dashed: h.dashed !== false,
      marker: false,
    })),
  ];
  const legend: { x: number; y: number; e: (typeof entries)[number] }[] = [];
  {
    let lx = m.left;
    let ly = plotH + 4;
    for (const e of entries) {
      const w = 34 + textWidth(e.label, 12) + 18;
      if (lx > m.left && lx + w > W - m.right) {
        lx = m.left;
        ly += 20;
      }
      legend.push({ x: lx, y: ly, e });
      lx += w;
    }
  }
  const H = plotH + (legend.length ? legend.at(-1)!.y - plotH + 16 : 0);

  const children: El[] = [
    { name: "rect", attrs: { x: 0, y: 0, width: W, height: H, fill: "#ffffff" } },
    {
      name: "text",
      attrs: { x: W / 2, y: 24, "text-anchor": "middle", "font-size": 16, "font-weight": "bold" },
      text: o.title,
    },
  ];
  for (const t of yt) {
    if (!inY(t)) continue;
    children.push({ name: "line", attrs: { x1: m.left, x2: W - m.right, y1: py(t), y2: py(t), stroke: "#e0e0e0" } });
    children.push({
      name: "text",
      attrs: { x: m.left - 8, y: py(t) + 4, "text-anchor": "end", "font-size": 11 },
      text: o.yPercent ? `${(t * 100).toFixed(yDecimals)}%` : fmtTick(t),
    });
  }
  for (const t of xt) {
    if (t < x0 - 1e-9 || t > x1 + 1e-9) continue;
    children.push({
      name: "line",
      attrs: { x1: pxt(t), x2: pxt(t), y1: plotH - m.bottom, y2: plotH - m.bottom + 5, stroke: "#333333" },
    });
    children.push({
      name: "text",
      attrs: { x: pxt(t), y: plotH - m.bottom + 18, "text-anchor": "middle", "font-size": 11 },
      text: fmtTick(o.xLog ? Number((2 ** t).toPrecision(12)) : t),
    });
  }
  children.push({
    name: "rect",
    attrs: {
      x: m.left,
      y: m.top,
      width: W - m.left - m.right,
      height: plotH - m.top - m.bottom,
      fill: "none",
      stroke: "#333333",
    },
  });
  children.push({
    name: "text",
    attrs: { x: (m.left + W - m.right) / 2, y: plotH - 14, "text-anchor": "middle", "font-size": 13 },
    text: o.xLabel,
  });
  children.push({
    name: "text",
    attrs: {
      x: 18,
      y: (m.top + plotH - m.bottom) / 2,
      "text-anchor": "middle",
      "font-size": 13,
      transform: `rotate(-90 18 ${n((m.top + plotH - m.bottom) / 2)})`,
    },
    text: o.yLabel,
  });
  if (o.reference && Number.isFinite(o.reference.y) && inY(o.reference.y)) {
    const y = py(o.reference.y);
    children.push({
      name: "line",
      attrs: { x1: m.left, x2: W - m.right, y1: y, y2: y, stroke: "#888888", "stroke-dasharray": "2 4" },
    });
    children.push({
      name: "text",
      attrs: { x: W - m.right - 4, y: y - 4, "text-anchor": "end", "font-size": 11, fill: "#555555" },
      text: o.reference.label,
    });
  }
  hlines.forEach((h, i) => {
    if (!inY(h.y)) return;
    const e = entries[o.series.length + i]!;
    children.push({
      name: "line",
      attrs: {
        x1: m.left,
        x2: W - m.right,
        y1: py(h.y),
        y2: py(h.y),
        stroke: e.color,
        "stroke-width": 2,
        ...(e.dashed ? { "stroke-dasharray": "6 4" } : {}),
      },
    });
  });
  o.series.forEach((s, i) => {
    const color = entries[i]!.color;
    const ok = s.points.filter(finite);
    if (ok.length === 0) return;
    const d = ok.map((p, k) => `${k === 0 ? "M" : "L"}${n(px(p.x))} ${n(py(p.y))}`).join(" ");
    children.push({
      name: "path",
      attrs: {
        d,
        fill: "none",
        stroke: color,
        "stroke-width": 2,
        ...(s.dashed ? { "stroke-dasharray": "6 4" } : {}),
      },
    });
    for (const p of ok) {
      if (Number.isFinite(p.lo) && Number.isFinite(p.hi)) {
        const x = px(p.x);
        children.push({
          name: "path",
          attrs: {
            d: `M${n(x)} ${n(py(p.lo!))} L${n(x)} ${n(py(p.hi!))} M${n(x - 4)} ${n(py(p.lo!))} L${n(x + 4)} ${n(py(p.lo!))} M${n(x - 4)} ${n(py(p.hi!))} L${n(x + 4)} ${n(py(p.hi!))}`,
            stroke: color,
            "stroke-width": 1.2,
            fill: "none",
          },
        });
      }
      if (s.markers !== false)
        children.push({ name: "circle", attrs: { cx: px(p.x), cy: py(p.y), r: 3, fill: color } });
    }
  });
  for (const { x, y, e } of legend) {
    children.push({
      name: "line",
      attrs: {
        x1: x,
        x2: x + 26,
        y1: y + 8,
        y2: y + 8,
        stroke: e.color,
        "stroke-width": 2,
        ...(e.dashed ? { "stroke-dasharray": "6 4" } : {}),
      },
    });
    if (e.marker) children.push({ name: "circle", attrs: { cx: x + 13, cy: y + 8, r: 3, fill: e.color } });
    children.push({ name: "text", attrs: { x: x + 32, y: y + 12, "font-size": 12 }, text: e.label });
  }
  const svg: El = {
    name: "svg",
    attrs: {
      xmlns: "http://www.w3.org/2000/svg",
      version: "1.1",
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      "font-family": "sans-serif",
    },
    children,
  };
  return `<?xml version="1.0" encoding="UTF-8"?>\n${render(svg)}\n`;
}
