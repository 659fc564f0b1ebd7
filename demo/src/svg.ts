/**
 * @module
 * A small line-chart writer for the demo's plots, as pure functions: series in, a standalone SVG 1.1 document out.
 * Every text node and attribute value is escaped (`escapeXml`), every number is checked finite and printed with fixed
 * precision, so the output is always well-formed XML whatever the labels hold.
 */

export interface Series {
  /** Legend label. */
  label: string;
  /** Points in data coordinates (non-finite points are skipped). */
  points: { x: number; y: number }[];
  /** Stroke colour (a CSS colour: hex, or a plain name). @default a palette colour */
  color?: string;
  /** Dashed line. @default false */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Axis ranges; default: the data's range (y padded), x from its minimum. */
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Horizontal reference line (e.g. the accuracy goal) with its label. */
  reference?: { y: number; label: string };
  /** @default 720 */
  width?: number;
  /** @default 440 */
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
    : v.toFixed(Math.min(4, Math.max(0, -Math.floor(Math.log10(Math.abs(v) || 1)) + 1)));
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

/** Renders a line chart as a standalone SVG document (see the module header). */
export function lineChartSvg(o: LineChartOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 440;
  const m = { left: 70, right: 20, top: 44, bottom: 58 };
  const pts = o.series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)));
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y).concat(o.reference ? [o.reference.y] : []);
  let [x0, x1] = o.xDomain ?? [xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1];
  let [y0, y1] = o.yDomain ?? [ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1];
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const xt = niceTicks(x0, x1);
  const yt = niceTicks(y0, y1);
  x0 = Math.min(x0, xt[0]!);
  x1 = Math.max(x1, xt.at(-1)!);
  y0 = Math.min(y0, yt[0]!);
  y1 = Math.max(y1, yt.at(-1)!);
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y: number) => H - m.bottom - ((y - y0) / (y1 - y0)) * (H - m.top - m.bottom);

  const children: El[] = [
    { name: "rect", attrs: { x: 0, y: 0, width: W, height: H, fill: "#ffffff" } },
    {
      name: "text",
      attrs: { x: W / 2, y: 24, "text-anchor": "middle", "font-size": 16, "font-weight": "bold" },
      text: o.title,
    },
  ];
  for (const t of yt) {
    children.push({ name: "line", attrs: { x1: m.left, x2: W - m.right, y1: py(t), y2: py(t), stroke: "#e0e0e0" } });
    children.push({
      name: "text",
      attrs: { x: m.left - 8, y: py(t) + 4, "text-anchor": "end", "font-size": 11 },
      text: fmtTick(t),
    });
  }
  for (const t of xt) {
    children.push({
      name: "line",
      attrs: { x1: px(t), x2: px(t), y1: H - m.bottom, y2: H - m.bottom + 5, stroke: "#333333" },
    });
    children.push({
      name: "text",
      attrs: { x: px(t), y: H - m.bottom + 18, "text-anchor": "middle", "font-size": 11 },
      text: fmtTick(t),
    });
  }
  children.push({
    name: "rect",
    attrs: {
      x: m.left,
      y: m.top,
      width: W - m.left - m.right,
      height: H - m.top - m.bottom,
      fill: "none",
      stroke: "#333333",
    },
  });
  children.push({
    name: "text",
    attrs: { x: (m.left + W - m.right) / 2, y: H - 14, "text-anchor": "middle", "font-size": 13 },
    text: o.xLabel,
  });
  children.push({
    name: "text",
    attrs: {
      x: 18,
      y: (m.top + H - m.bottom) / 2,
      "text-anchor": "middle",
      "font-size": 13,
      transform: `rotate(-90 18 ${n((m.top + H - m.bottom) / 2)})`,
    },
    text: o.yLabel,
  });
  if (o.reference && Number.isFinite(o.reference.y)) {
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
  o.series.forEach((s, i) => {
    const color = s.color && COLOR_RE.test(s.color) ? s.color : PALETTE[i % PALETTE.length]!;
    const ok = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (ok.length > 0) {
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
      for (const p of ok) children.push({ name: "circle", attrs: { cx: px(p.x), cy: py(p.y), r: 2.5, fill: color } });
    }
    const ly = m.top + 16 + i * 18;
    const lx = m.left + 12;
    children.push({
      name: "line",
      attrs: {
        x1: lx,
        x2: lx + 24,
        y1: ly - 4,
        y2: ly - 4,
        stroke: color,
        "stroke-width": 2,
        ...(s.dashed ? { "stroke-dasharray": "6 4" } : {}),
      },
    });
    children.push({ name: "text", attrs: { x: lx + 30, y: ly, "font-size": 12 }, text: s.label });
  });
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
